// Package consumers runs durable consumption of sealed envelopes: a handler receives only
// verified, decrypted messages, and nothing is silently dropped.
//
// # Guarantees
//
//   - A handler sees a message only after its envelope passed every check of
//     docs/ARCHITECTURE.md ("Receiving"), in order (size, parse, version and suite, account
//     and subject, freshness against the server's stored time, sender card known, valid, not
//     revoked and allowed on the subject, a recipient entry for this service, signature,
//     unwrap, key commitment, decryption), and after the replay guard.
//   - A message is acknowledged only after the handler returns nil ([Consume]), and the ack
//     is confirmed by the server (JetStream's double ack, one reply per ack, tried a few
//     times). A handler failure
//     is retried with backoff ([Retry]); after the consumer's last delivery it is dead-lettered
//     with reason max_deliveries. Nothing is lost: a message is settled only by a confirmed
//     ack after success, a dead letter, or not at all (then JetStream delivers it again).
//   - Exactly one successful handler call per message across every process that consumes
//     the durable and across their restarts, through server restarts, leader moves, partitions
//     and reconnects. Before calling the handler, a process claims the message's id in the
//     durable's guard store (a JetStream stream the operator creates with the durable, written
//     with compare-and-set); when the server does not confirm the ack at once, it records
//     that the handler returned nil before sending the ack again. A redelivery (its ack was
//     lost), wherever it arrives, is acknowledged without a handler call (counted in
//     bus.Metrics.Deduplicated); one that arrives while another process is still working on
//     the message waits for that call's outcome (for one claim lease, then it is returned to
//     the server, which may deliver it to that process). A handler failure releases
//     the id, so the retry runs wherever it is delivered. A process that crashes after claiming
//     loses nothing: once its heartbeat in the store is older than the claim lease
//     ([WithClaimLease]), another process takes the claim over, at the risk of a second call
//     if the crashed call had finished.
//
// # Redelivery or replay
//
// The replay guard tells the two apart by stream position. A redelivery is the same stored
// message again: the same stream sequence (Delivered > 1). It is acknowledged without a
// handler call if a handler already returned nil for its id, handled if earlier calls failed
// (a retry). A replay is the same envelope (same message id, verified signature) stored again
// at another stream sequence, for example republished under a new Nats-Msg-Id: it is refused
// with reason replay and dead-lettered, whether or not the original was handled, by whichever
// process receives it and however long after a restart, as long as a copy could still be
// stored (the envelope's signed creation time plus the freshness window; older copies are
// refused as stale). An envelope stored under another Nats-Msg-Id than its own message id is
// a copy whatever the store remembers (publishers store each envelope under its id, and
// JetStream drops a second copy under that id within the duplicate window), so it is refused
// even after the store's entry of the original has expired. An id is only recorded after verification, so a forged envelope can
// neither block a genuine id nor have its redeliveries acknowledged. The store's entries are
// named by keyed hashes of the ids (the key is in the durable's metadata), so no other service
// can name, and so pre-claim, the entry of an id it has seen.
//   - A rejected envelope is copied byte for byte to the account's SEALBUS_DLQ stream, in a
//     dead-letter record the service signs with its reason and source ([DeadLetter],
//     [DeadLetterMeta]) on its own subject, terminated at its source so it never blocks the
//     messages behind it, counted, and recorded as an audit event in which what an envelope
//     that did not verify claims about itself is labelled as claimed.
//   - An operator's replay of a dead letter, with a signed replay authorization, is accepted
//     after the freshness window once, with every other check ([Verify], [Message].Replay).
//   - Stop and Drain wait for acknowledgements to be confirmed (or given up) before Done
//     closes: a consumer restarted on the same durable resumes where the last one stopped,
//     with no loss and no repeated handler call for messages whose ack was confirmed.
//
// # Middleware
//
// A [Handler] is wrapped by [Middleware] (func(Handler) Handler), one per file: [DeadLetter],
// [Verify], the replay guard (bound to the durable's store, so only Consume installs it),
// [Retry]. [Consume] always installs them in that order, outermost first; middleware given
// with [WithMiddleware] runs inside them, on verified messages.
//
// # Dead letters
//
// The operator lists, shows and replays dead letters with operator.DeadLetters (`sealbus
// dlq`), which verifies every record before it shows or replays it; services only write them.
package consumers
