package demo

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// The monitor watches the whole demo, as `sealbus monitor` would: it reads the servers'
// authentication events and the operator-wide audit view of the operator account, and the
// demo ends with what it saw.

// Demo-only attacks that the monitor, not the envelope checks, is for.
const (
	guesses = 30 // logins with a copied JWT and the wrong key
	junk    = 25 // garbage messages an insider stores in ORDERS
)

// startMonitor runs an operator.Monitor against the sandbox until the demo ends.
func (d *run) startMonitor(ctx context.Context) error {
	ops, err := d.sb.Provisioner().OperatorAccount()
	if err != nil {
		return err
	}
	sys, opsNC, err := operator.ConnectMonitor(ctx, d.sb.Target(), d.sb.Operator(), ops)
	if err != nil {
		return fmt.Errorf("demo: monitor: %w", err)
	}
	var cfg operator.MonitorConfig
	cfg.Poll = operator.Duration(time.Second)
	log := d.opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := operator.NewMonitor(sys, operator.WithOperatorAccount(opsNC, ops), operator.WithMonitorConfig(cfg), operator.WithMonitorLogger(log))
	if err != nil {
		sys.Close()
		opsNC.Close()
		return err
	}
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(mctx)
	}()
	d.monitor = m
	d.closers = append(d.closers, func() {
		cancel()
		<-done
		sys.Close()
		opsNC.Close()
	})
	return nil
}

// attackGuessing: someone who copied checkout's user JWT (not its seed) tries to log in with
// keys of their own.
func (d *run) attackGuessing(ctx context.Context, _ *bus.Client) error {
	creds, err := accounts.ReadCredsFile(d.sb.CredsPath(sealbustest.Shop, sealbustest.Checkout))
	if err != nil {
		return err
	}
	clear(creds.UserSeed)
	clear(creds.CurveSeed)
	refused := 0
	for i := range guesses {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return err
		}
		seed, _ := kp.Seed()
		nc, err := nats.Connect(d.sb.URL(), nats.RootCAs(d.sb.CAFile()), nats.UserJWTAndSeed(creds.UserJWT, string(seed)),
			nats.Name(fmt.Sprintf("guess-%d", i)), nats.NoReconnect(), nats.Timeout(2*time.Second))
		if err == nil {
			nc.Close()
			continue
		}
		refused++
	}
	d.attacks = append(d.attacks, attackResult{name: fmt.Sprintf("password guessing (%d logins with checkout's copied JWT and other keys)", guesses),
		outcome: fmt.Sprintf("server refused %d of %d: the JWT is worthless without its seed", refused, guesses), ok: refused == guesses})
	return nil
}

// attackJunk: an insider with checkout's creds stores garbage in ORDERS; both consumers reject
// every message and dead-letter it, and valid traffic goes on.
func (d *run) attackJunk(ctx context.Context, _ *bus.Client) error {
	in, err := d.insider(ctx, sealbustest.Checkout)
	if err != nil {
		return err
	}
	rejected := func() uint64 {
		var n uint64
		for _, c := range d.clients {
			for _, v := range c.Metrics().Rejected {
				n += v
			}
		}
		return n
	}
	before := rejected()
	stored := 0
	for i := range junk {
		if _, err := inject(ctx, in.JS, fmt.Sprintf("orders.eu.junk.%d", i), []byte("junk")); err == nil {
			stored++
		}
	}
	// Each junk message is delivered to billing and shipping (orders.eu.>).
	err = poll(ctx, "the junk to be rejected", func() bool { return rejected()-before >= uint64(2*stored) })
	outcome := fmt.Sprintf("%d stored; rejected by billing and shipping (%d rejections), each dead-lettered", stored, rejected()-before)
	d.attacks = append(d.attacks, attackResult{name: fmt.Sprintf("junk flood (%d garbage messages in ORDERS)", junk), outcome: outcome, ok: err == nil && stored == junk})
	return nil
}

// monitorView waits until the monitor reports the incidents the attacks made and prints them
// with their counts, and the signed audit events recording them in the operator-wide view.
func (d *run) monitorView(ctx context.Context) error {
	d.printf("\n6. the monitor's view (operator.Monitor, as `sealbus monitor` runs it)\n")
	want := []struct {
		kind    operator.AlertKind
		account string
		min     uint64
	}{
		{operator.AlertBruteForce, "", guesses},
		{operator.AlertRevokedKey, sealbustest.Shop, 3},
		{operator.AlertRejectionSpike, sealbustest.Shop, 20},
		{operator.AlertForgedRecord, sealbustest.Shop, 1},
	}
	seen := func(in []operator.Alert) bool {
		for _, w := range want {
			if !slices.ContainsFunc(in, func(a operator.Alert) bool {
				return a.Kind == w.kind && a.Count >= w.min && (w.account == "" || a.AccountName == w.account)
			}) {
				return false
			}
		}
		return true
	}
	var open []operator.Alert
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err := poll(wctx, "the monitor's alerts", func() bool {
		open = d.monitor.Incidents()
		return seen(open)
	})
	cancel()
	for _, a := range open {
		d.printf("   %-16s count %-3d %s\n", a.Kind, a.Count, operator.Printable(a.Summary))
	}
	if err != nil {
		return fmt.Errorf("%w: the monitor did not report every attack: %v", ErrFailed, err)
	}
	view, done, err := d.sb.Provisioner().AuditView(ctx)
	if err != nil {
		return err
	}
	defer done()
	var verified, records int
	err = poll(ctx, "the alerts recorded in the view", func() bool {
		recs, _, err := view.Tail(ctx, 0, operator.ViewFilter{Account: accounts.OperatorAccountName, Service: accounts.AdminWriter})
		if err != nil {
			return false
		}
		verified, records = 0, 0
		for _, r := range recs {
			if strings.HasPrefix(r.Type(), operator.AlertEventPrefix) {
				records++
				if r.Verification().Verified() {
					verified++
				}
			}
		}
		return records >= len(open)
	})
	if err != nil {
		return err
	}
	d.printf("   each recorded as a signed audit event of the operator account: %d in the operator-wide view, %d verified (`sealbus audit tail --all`)\n", records, verified)
	if verified != records {
		return fmt.Errorf("%w: %d of %d alert records verify", ErrFailed, verified, records)
	}
	return nil
}
