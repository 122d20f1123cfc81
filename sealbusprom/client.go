package sealbusprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
)

const namespace = "sealbus"

// metric is one metric of a collector: its description and how to read it from a snapshot.
type metric[S any] struct {
	desc    *prometheus.Desc
	collect func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S)
}

func counter[S any](d *prometheus.Desc, v func(S) uint64) metric[S] {
	return metric[S]{d, func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v(s)))
	}}
}

func gauge[S any](d *prometheus.Desc, v func(S) float64) metric[S] {
	return metric[S]{d, func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v(s))
	}}
}

// byLabel is a counter with one variable label, from a map of counts.
func byLabel[S any](d *prometheus.Desc, v func(S) map[string]uint64) metric[S] {
	return metric[S]{d, func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
		for k, n := range v(s) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), k)
		}
	}}
}

func histogram[S any](d *prometheus.Desc, v func(S) bus.Histogram) metric[S] {
	return metric[S]{d, func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
		h := v(s)
		buckets := make(map[float64]uint64, len(h.Bounds))
		for i, b := range h.Bounds {
			if i < len(h.Counts) {
				buckets[b] = h.Counts[i]
			}
		}
		ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
	}}
}

// collector reads a snapshot once per scrape and emits its metrics.
type collector[S any] struct {
	metrics  []metric[S]
	snapshot func() S
}

func (c *collector[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

func (c *collector[S]) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	for _, m := range c.metrics {
		m.collect(ch, m.desc, s)
	}
}

// clientSnapshot is what one scrape of a client reads.
type clientSnapshot struct {
	m    bus.Metrics
	conn bus.ConnectionInfo
}

// NewClientCollector returns a collector of c's own metrics: publishing (sent messages,
// failures, resends, batch signatures and sizes), opened envelopes, audit writes, the
// directory (cards, updates, ignored entries by reason), the age of the sealer's epoch key
// and the connection. Every metric carries the constant labels account (the account name from
// its verified account JWT, or its public key when the JWT names none) and service (the
// service name). What consumptions running on c count is exported by their own
// [NewConsumptionCollector], not here, so that sums over both are not doubled.
func NewClientCollector(c *bus.Client) prometheus.Collector {
	labels := prometheus.Labels{"account": accountName(c), "service": c.Name()}
	d := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "client", name), help, variable, labels)
	}
	type S = clientSnapshot
	return &collector[S]{
		snapshot: func() S { return S{m: c.Metrics(), conn: c.Connection()} },
		metrics: []metric[S]{
			counter(d("sent_messages_total", "Envelopes published and acknowledged by JetStream (OpenTelemetry messaging.client.sent.messages)."),
				func(s S) uint64 { return s.m.Published }),
			counter(d("publish_failures_total", "Publishes that failed after the checks passed."),
				func(s S) uint64 { return s.m.PublishFailed }),
			counter(d("resends_total", "Envelopes sent again, same bytes and message id, after a failed or unanswered attempt."),
				func(s S) uint64 { return s.m.Resent }),
			counter(d("batch_signatures_total", "Batch signatures made (one Ed25519 signature covers a batch of envelopes)."),
				func(s S) uint64 { return s.m.Signatures }),
			histogram(d("batch_size_messages", "Envelopes covered by one batch signature."),
				func(s S) bus.Histogram { return s.m.BatchSizes }),
			counter(d("opened_messages_total", "Envelopes verified and decrypted."),
				func(s S) uint64 { return s.m.Opened }),
			metric[S]{d("audit_events_total", "Audit events, by result: written (acknowledged by JetStream) or failed (lost).", "result"),
				func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
					ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(s.m.AuditWritten), "written")
					ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(s.m.AuditFailed), "failed")
				}},
			gauge(d("directory_cards", "Valid identity cards of the service's own account in its directory view."),
				func(s S) float64 { return float64(s.m.DirectoryCards) }),
			counter(d("directory_updates_total", "Directory changes applied (verified account JWTs and cards)."),
				func(s S) uint64 { return s.m.DirectoryUpdates }),
			byLabel(d("directory_ignored_total", "Directory entries ignored, by reason (markers, entries that do not verify, rollbacks).", "reason"),
				func(s S) map[string]uint64 { return s.m.UnverifiableByReason }),
			gauge(d("epoch_age_seconds", "How long the sealer's current epoch key has been live; 0 when there is none."),
				func(s S) float64 { return s.m.EpochAge.Seconds() }),
			gauge(d("connected", "1 while the client is connected to a server, else 0."),
				func(s S) float64 { return bool01(s.conn.Connected) }),
			counter(d("reconnects_total", "Reconnections since Connect."),
				func(s S) uint64 { return s.conn.Reconnects }),
		},
	}
}

// NewConsumptionCollector returns a collector of one consumption's metrics: consumed
// deliveries, handled messages, handler failures and duration, deduplicated redeliveries,
// retries, rejections and dead letters by reason, failed dead-letter writes, and
// acknowledgements by result. Every metric carries the constant labels account, service,
// stream and consumer (the durable's name).
func NewConsumptionCollector(cs *consumers.Consumption) prometheus.Collector {
	c := cs.Client()
	labels := prometheus.Labels{"account": accountName(c), "service": c.Name(), "stream": cs.Stream(), "consumer": cs.Durable()}
	d := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, variable, labels)
	}
	type S = consumers.Metrics
	return &collector[S]{
		snapshot: cs.Metrics,
		metrics: []metric[S]{
			counter(d("sealbus_client_consumed_messages_total", "Deliveries received, redeliveries included (OpenTelemetry messaging.client.consumed.messages)."),
				func(s S) uint64 { return s.Received }),
			counter(d("sealbus_consumer_handled_messages_total", "Messages the handler processed successfully, then acknowledged."),
				func(s S) uint64 { return s.Delivered }),
			counter(d("sealbus_consumer_handler_failures_total", "Handler calls that returned an error (retried, or dead-lettered after the last delivery)."),
				func(s S) uint64 { return s.HandlerFailed }),
			histogram(d("sealbus_process_duration_seconds", "Time the handler took per call (OpenTelemetry messaging.process.duration)."),
				func(s S) bus.Histogram { return s.HandlerDuration }),
			counter(d("sealbus_consumer_deduplicated_total", "Redeliveries of messages already handled, acknowledged without calling the handler."),
				func(s S) uint64 { return s.Deduplicated }),
			counter(d("sealbus_consumer_retries_total", "Deliveries scheduled for a retry with backoff."),
				func(s S) uint64 { return s.Retried }),
			byLabel(d("sealbus_consumer_rejected_total", "Envelopes that failed verification, by reason code.", "reason"),
				func(s S) map[string]uint64 { return s.Rejected }),
			byLabel(d("sealbus_consumer_dead_letters_total", "Dead letters written, by reason code (rejections and max_deliveries).", "reason"),
				func(s S) map[string]uint64 { return s.DeadLettered }),
			counter(d("sealbus_consumer_dead_letter_failures_total", "Dead letters that could not be written (the message was left for redelivery)."),
				func(s S) uint64 { return s.DLQFailed }),
			counter(d("sealbus_consumer_guard_unavailable_total", "Deliveries left unhandled for a later redelivery because the replay guard's store could not be written or read (a server fault, or the store is full)."),
				func(s S) uint64 { return s.GuardUnavailable }),
			metric[S]{d("sealbus_consumer_acks_total", "Acknowledgements, by result: confirmed by the server or unconfirmed after every attempt.", "result"),
				func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
					ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(s.AckConfirmed), "confirmed")
					ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(s.AckUnconfirmed), "unconfirmed")
				}},
		},
	}
}

// accountName is the name in c's verified account JWT, else the account public key.
func accountName(c *bus.Client) string {
	if ac := c.Directory().AccountClaims(); ac != nil && ac.Name != "" {
		return ac.Name
	}
	return c.Account()
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
