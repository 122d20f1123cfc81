// Package sealbusprom exports sealbus metrics to Prometheus: a [prometheus.Collector] for a
// service's client ([NewClientCollector]), one for each consumption
// ([NewConsumptionCollector]) and one for the operator's monitor ([NewMonitorCollector]). A
// program registers them in a registry of its own; nothing here touches the global registry,
// and packages bus, consumers and operator do not depend on the Prometheus client: only
// programs that import this package do.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(sealbusprom.NewClientCollector(client))
//	reg.MustRegister(sealbusprom.NewConsumptionCollector(consumption))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// # Names and labels
//
// Every metric starts with "sealbus_", is in base units (seconds, messages) and counters end
// in "_total". Where the OpenTelemetry messaging semantic conventions define a metric, the
// name is that metric's Prometheus form with the sealbus prefix:
//
//	messaging.client.sent.messages      sealbus_client_sent_messages_total
//	messaging.client.consumed.messages  sealbus_client_consumed_messages_total
//	messaging.process.duration          sealbus_process_duration_seconds
//
// Labels are of low cardinality only: the account (its name), the service, the stream and
// durable consumer of a consumption, a reason code from a fixed set, a result, an alert kind,
// an evidence source, a server name. No label
// ever holds a subject, a message id, a user key or a client address: those belong in the
// audit trail (docs/MONITORING.md lists every metric).
package sealbusprom
