package operator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// MonitorConfig holds the thresholds of the monitor ([NewMonitor]). The zero value of a
// field means its default ([DefaultMonitorConfig]); docs/MONITORING.md lists every field
// with its default and the alert it drives. It loads from a JSON file with
// [LoadMonitorConfig] (durations as Go duration strings, "90s", "5m").
type MonitorConfig struct {
	// BruteForce: an incident when Failures authentication failures for one user key or from
	// one client address happen within Window (revoked and expired keys are their own
	// alerts).
	BruteForce struct {
		Failures int      `json:"failures,omitempty"` // default 10
		Window   Duration `json:"window,omitempty"`   // default 1m
	} `json:"brute_force"`
	// StaleKey: an incident when a revoked or expired user key tries to connect Attempts times
	// within Window.
	StaleKey struct {
		Attempts int      `json:"attempts,omitempty"` // default 3
		Window   Duration `json:"window,omitempty"`   // default 10m
	} `json:"stale_key"`
	// Rejections: an incident when an account's rejections of one reason within one Interval
	// number at least MinCount and more than Factor times their moving average (an
	// exponentially weighted moving average with weight Alpha per interval).
	Rejections struct {
		Interval Duration `json:"interval,omitempty"` // default 10s
		Spike
	} `json:"rejections"`
	// PublishRate: an incident when a service's publish rate (messages per second, from the
	// servers' connection counters) or a stream's ingest rate (from its last sequence) is at
	// least MinCount per second and more than Factor times its moving average. Rates are
	// sampled every Poll.
	PublishRate Spike `json:"publish_rate"`
	// ConsumerLag: an incident when a durable consumer has at least Pending messages not yet
	// delivered for For.
	ConsumerLag struct {
		Pending uint64   `json:"pending,omitempty"` // default 10000
		For     Duration `json:"for,omitempty"`     // default 2m
	} `json:"consumer_lag"`
	// Redelivery: an incident when a consumer's redelivered messages grow by at least Growth
	// within Window.
	Redelivery Growth `json:"redelivery"`
	// DeadLetters: an incident when an account's dead-letter stream grows by at least Growth
	// messages within Window.
	DeadLetters Growth `json:"dead_letters"`
	// ForgedRecords: an incident when an audit or dead-letter record of the operator-wide view
	// does not decode or does not verify (one is enough).
	ForgedRecords struct {
		Records int `json:"records,omitempty"` // default 1
	} `json:"forged_records"`
	// Poll is how often the servers' JetStream and connection state is read (default 10s).
	Poll Duration `json:"poll,omitempty"`
	// Quiet closes an incident after no new evidence for that long (default 5m); the
	// resolved alert carries the final count.
	Quiet Duration `json:"quiet,omitempty"`
	// Repeat is how often an open incident whose count grew is reported again (default 15m).
	Repeat Duration `json:"repeat,omitempty"`
	// Backfill is how far back a monitor with no saved state starts reading recorded events
	// (default 1h).
	Backfill Duration `json:"backfill,omitempty"`
}

// Spike is a rule against a moving baseline: a sample is a spike when it is at least
// MinCount and more than Factor times the exponentially weighted moving average of the
// samples before it.
type Spike struct {
	MinCount float64 `json:"min_count,omitempty"` // floor: per interval for Rejections (default 20), per second for PublishRate (default 200)
	Factor   float64 `json:"factor,omitempty"`    // times the baseline (default 4 for Rejections, 10 for PublishRate)
	Alpha    float64 `json:"alpha,omitempty"`     // EWMA weight of the newest sample, 0 < Alpha ≤ 1 (default 0.1)
	// Warmup is how many samples a baseline needs before it can spike (PublishRate, default
	// 3, so a service that starts busy is not an alert); negative means none. Rejections
	// have none: any burst over MinCount from a quiet account is a spike.
	Warmup int `json:"warmup,omitempty"`
}

// Growth is a rule on how much a counter grows within a window.
type Growth struct {
	Growth uint64   `json:"growth,omitempty"` // default 100
	Window Duration `json:"window,omitempty"` // default 5m
}

// Duration is a time.Duration that reads and writes JSON as a Go duration string ("90s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string ("90s", "5m").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: a duration is a string such as \"90s\": %v", ErrInvalidSpec, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%w: duration %q: %v", ErrInvalidSpec, s, err)
	}
	*d = Duration(v)
	return nil
}

// DefaultMonitorConfig returns the thresholds used for fields left zero.
func DefaultMonitorConfig() MonitorConfig {
	var c MonitorConfig
	c.BruteForce.Failures, c.BruteForce.Window = 10, Duration(time.Minute)
	c.StaleKey.Attempts, c.StaleKey.Window = 3, Duration(10*time.Minute)
	c.Rejections.Interval = Duration(10 * time.Second)
	c.Rejections.Spike = Spike{MinCount: 20, Factor: 4, Alpha: 0.1, Warmup: -1}
	c.PublishRate = Spike{MinCount: 200, Factor: 10, Alpha: 0.1, Warmup: 3}
	c.ConsumerLag.Pending, c.ConsumerLag.For = 10000, Duration(2*time.Minute)
	c.Redelivery = Growth{Growth: 100, Window: Duration(5 * time.Minute)}
	c.DeadLetters = Growth{Growth: 100, Window: Duration(5 * time.Minute)}
	c.ForgedRecords.Records = 1
	c.Poll = Duration(10 * time.Second)
	c.Quiet = Duration(5 * time.Minute)
	c.Repeat = Duration(15 * time.Minute)
	c.Backfill = Duration(time.Hour)
	return c
}

// withDefaults fills zero fields from DefaultMonitorConfig.
func (c MonitorConfig) withDefaults() MonitorConfig {
	d := DefaultMonitorConfig()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setU := func(v *uint64, def uint64) {
		if *v == 0 {
			*v = def
		}
	}
	setF := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	setD := func(v *Duration, def Duration) {
		if *v == 0 {
			*v = def
		}
	}
	rate := func(r *Spike, def Spike) {
		setF(&r.MinCount, def.MinCount)
		setF(&r.Factor, def.Factor)
		setF(&r.Alpha, def.Alpha)
		setInt(&r.Warmup, def.Warmup)
	}
	setInt(&c.BruteForce.Failures, d.BruteForce.Failures)
	setD(&c.BruteForce.Window, d.BruteForce.Window)
	setInt(&c.StaleKey.Attempts, d.StaleKey.Attempts)
	setD(&c.StaleKey.Window, d.StaleKey.Window)
	setD(&c.Rejections.Interval, d.Rejections.Interval)
	rate(&c.Rejections.Spike, d.Rejections.Spike)
	rate(&c.PublishRate, d.PublishRate)
	setU(&c.ConsumerLag.Pending, d.ConsumerLag.Pending)
	setD(&c.ConsumerLag.For, d.ConsumerLag.For)
	setU(&c.Redelivery.Growth, d.Redelivery.Growth)
	setD(&c.Redelivery.Window, d.Redelivery.Window)
	setU(&c.DeadLetters.Growth, d.DeadLetters.Growth)
	setD(&c.DeadLetters.Window, d.DeadLetters.Window)
	setInt(&c.ForgedRecords.Records, d.ForgedRecords.Records)
	setD(&c.Poll, d.Poll)
	setD(&c.Quiet, d.Quiet)
	setD(&c.Repeat, d.Repeat)
	setD(&c.Backfill, d.Backfill)
	return c
}

// Validate checks the configuration after defaults are applied: counts and durations
// positive, factors above 1, EWMA weights in (0, 1]. Errors wrap [ErrInvalidSpec].
func (c MonitorConfig) Validate() error {
	c = c.withDefaults()
	type check struct {
		ok   bool
		what string
	}
	rate := func(name string, r Spike) []check {
		return []check{
			{r.MinCount > 0, name + ".min_count must be positive"},
			{r.Factor > 1, name + ".factor must be above 1"},
			{r.Alpha > 0 && r.Alpha <= 1, name + ".alpha must be in (0, 1]"},
		}
	}
	checks := []check{
		{c.BruteForce.Failures > 0, "brute_force.failures must be positive"},
		{c.BruteForce.Window > 0, "brute_force.window must be positive"},
		{c.StaleKey.Attempts > 0, "stale_key.attempts must be positive"},
		{c.StaleKey.Window > 0, "stale_key.window must be positive"},
		{c.ConsumerLag.For > 0, "consumer_lag.for must be positive"},
		{c.Redelivery.Window > 0, "redelivery.window must be positive"},
		{c.DeadLetters.Window > 0, "dead_letters.window must be positive"},
		{c.ForgedRecords.Records > 0, "forged_records.records must be positive"},
		{c.Poll >= Duration(100*time.Millisecond), "poll must be at least 100ms"},
		{c.Quiet > 0, "quiet must be positive"},
		{c.Repeat > 0, "repeat must be positive"},
		{c.Backfill > 0, "backfill must be positive"},
		{c.BruteForce.Failures <= maxWindowEntries, fmt.Sprintf("brute_force.failures must be at most %d", maxWindowEntries)},
		{c.StaleKey.Attempts <= maxWindowEntries, fmt.Sprintf("stale_key.attempts must be at most %d", maxWindowEntries)},
	}
	checks = append(checks, check{c.Rejections.Interval > 0, "rejections.interval must be positive"})
	checks = append(checks, rate("rejections", c.Rejections.Spike)...)
	checks = append(checks, rate("publish_rate", c.PublishRate)...)
	for _, ch := range checks {
		if !ch.ok {
			return fmt.Errorf("%w: monitor: %s", ErrInvalidSpec, ch.what)
		}
	}
	return nil
}

// LoadMonitorConfig reads a JSON configuration file (fields as in [MonitorConfig]; unknown
// fields are refused) and validates it. Fields the file leaves out keep their defaults.
func LoadMonitorConfig(path string) (MonitorConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return MonitorConfig{}, fmt.Errorf("operator: monitor config: %w", err)
	}
	var c MonitorConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return MonitorConfig{}, fmt.Errorf("%w: monitor config %s: %v", ErrInvalidSpec, path, err)
	}
	if err := c.Validate(); err != nil {
		return MonitorConfig{}, err
	}
	return c.withDefaults(), nil
}
