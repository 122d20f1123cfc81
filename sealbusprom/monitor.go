package sealbusprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealbus/sealbus/operator"
)

// NewMonitorCollector returns a collector of the monitor's metrics: incidents opened (alerts)
// and open now by kind, evidence read by source, failed server requests, alerts not
// recorded, the monitor's own lag on each recorded stream, every durable consumer's pending,
// unacknowledged and redelivered messages, and every server's connections and message
// counters (from its STATSZ; they restart from zero when the server does).
func NewMonitorCollector(m *operator.Monitor) prometheus.Collector {
	d := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, variable, nil)
	}
	type S = operator.MonitorStats
	consumer := func(name, help string, v func(operator.ConsumerStats) uint64) metric[S] {
		return metric[S]{d(name, help, "account", "stream", "consumer"), func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
			for _, c := range s.Consumers {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v(c)), nameOr(c.AccountName, c.Account), c.Stream, c.Consumer)
			}
		}}
	}
	server := func(name, help string, vt prometheus.ValueType, v func(operator.ServerStats) float64) metric[S] {
		return metric[S]{d(name, help, "server"), func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
			for _, sv := range s.Servers {
				ch <- prometheus.MustNewConstMetric(d, vt, v(sv), sv.Name)
			}
		}}
	}
	return &collector[S]{
		snapshot: m.Stats,
		metrics: []metric[S]{
			{d("sealbus_monitor_alerts_total", "Incidents opened (each reported once, then updated and resolved), by kind.", "kind"),
				func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
					for _, k := range operator.AlertKinds {
						ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(s.Opened[k]), string(k))
					}
				}},
			{d("sealbus_monitor_incidents_open", "Incidents open now, by kind.", "kind"),
				func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
					for _, k := range operator.AlertKinds {
						ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(s.Open[k]), string(k))
					}
				}},
			byLabel(d("sealbus_monitor_events_total", "Evidence read, by source (auth_error, connect, disconnect, audit, dlq, poll, unreadable).", "source"),
				func(s S) map[string]uint64 { return s.Events }),
			counter(d("sealbus_monitor_poll_errors_total", "Requests to the servers that failed or went unanswered."),
				func(s S) uint64 { return s.PollErrors }),
			counter(d("sealbus_monitor_alerts_unrecorded_total", "Alerts that could not be recorded as audit events in the operator account."),
				func(s S) uint64 { return s.AlertsUnrecorded }),
			{d("sealbus_monitor_source_pending_messages", "Recorded messages the monitor has not read yet, by source (system_events, audit, dlq) and account.", "source", "account"),
				func(ch chan<- prometheus.Metric, d *prometheus.Desc, s S) {
					for _, src := range s.Sources {
						ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(src.Pending), src.Kind, nameOr(src.AccountName, src.Account))
					}
				}},
			gauge(d("sealbus_monitor_last_poll_timestamp_seconds", "When the monitor last read the servers' state (Unix time)."),
				func(s S) float64 {
					if s.LastPoll.IsZero() {
						return 0
					}
					return float64(s.LastPoll.UnixNano()) / 1e9
				}),
			consumer("sealbus_monitor_consumer_pending_messages", "Messages a durable consumer has not had delivered yet (its lag).",
				func(c operator.ConsumerStats) uint64 { return c.Pending }),
			consumer("sealbus_monitor_consumer_ack_pending_messages", "Messages delivered to a durable consumer and not acknowledged yet.",
				func(c operator.ConsumerStats) uint64 { return c.AckPending }),
			consumer("sealbus_monitor_consumer_redelivered_messages", "Messages redelivered to a durable consumer and not acknowledged yet.",
				func(c operator.ConsumerStats) uint64 { return c.Redelivered }),
			server("sealbus_server_connections", "Client connections of a server.", prometheus.GaugeValue,
				func(s operator.ServerStats) float64 { return float64(s.Connections) }),
			server("sealbus_server_received_messages_total", "Messages a server received (clients, routes), since it started.", prometheus.CounterValue,
				func(s operator.ServerStats) float64 { return float64(s.InMsgs) }),
			server("sealbus_server_sent_messages_total", "Messages a server sent, since it started.", prometheus.CounterValue,
				func(s operator.ServerStats) float64 { return float64(s.OutMsgs) }),
			server("sealbus_server_received_bytes_total", "Bytes a server received, since it started.", prometheus.CounterValue,
				func(s operator.ServerStats) float64 { return float64(s.InBytes) }),
			server("sealbus_server_sent_bytes_total", "Bytes a server sent, since it started.", prometheus.CounterValue,
				func(s operator.ServerStats) float64 { return float64(s.OutBytes) }),
			server("sealbus_server_slow_consumers_total", "Clients a server cut off as slow consumers, since it started.", prometheus.CounterValue,
				func(s operator.ServerStats) float64 { return float64(s.SlowConsumers) }),
		},
	}
}

func nameOr(name, key string) string {
	if name != "" {
		return name
	}
	return key
}
