// Package consumers runs durable consumption of sealed envelopes: a handler receives only
// verified, decrypted messages, and nothing is silently dropped.
//
// # Guarantees
//
//   - A handler sees a message only after its envelope passed every check of DESIGN §6, in
//     order (size, parse, version and suite, account and subject, freshness against the
//     server's stored time, sender card known, valid, not revoked and allowed on the subject,
//     a recipient entry for this service, signature, unwrap, key commitment, decryption), and
//     after the replay guard.
//   - A message is acknowledged only after the handler returns nil ([Consume]). A handler
//     failure is retried with backoff ([Retry]); after the consumer's last delivery it is
//     dead-lettered with reason max_deliveries.
//   - A rejected envelope is copied byte for byte to the account's SEALBUS_DLQ stream with its
//     reason and source in Sealbus-* headers ([DeadLetter]), terminated at its source so it
//     never blocks the messages behind it, counted, and recorded as an audit event.
//   - Stop and Drain flush acknowledgements before Done closes: a consumer restarted on the same
//     durable resumes where the last one stopped, with no loss and no repeated handler call for
//     messages that were acknowledged.
//
// # Middleware
//
// A [Handler] is wrapped by [Middleware] (func(Handler) Handler), one per file: [DeadLetter],
// [Verify], [ReplayGuard], [Retry]. [Consume] always installs them in that order, outermost
// first; middleware given with [WithMiddleware] runs inside them, on verified messages.
//
// # Dead letters
//
// [DeadLetters] lists, shows and replays dead letters (for `sealbus dlq`); it needs a
// connection allowed to read SEALBUS_DLQ, normally an admin connection.
package consumers
