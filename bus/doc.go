// Package bus is the sealbus client: it connects a service to NATS JetStream, keeps a verified
// directory of the services of its account, and publishes sealed envelopes.
//
// # Guarantees
//
//   - Security is on and cannot be turned off: the connection is TLS only (optionally mutual
//     TLS), authenticated with the service's creds, with a private inbox prefix; there is no
//     default trust, the operator keys are given with [WithTrustedOperator].
//   - The [Directory] uses only entries that verify up to a trusted operator; storage is not
//     trusted. It reads the account's directory view (a read-only mirror of the account's part
//     of the operator account's directory) with single-key gets and polls it
//     ([WithDirectoryPoll], every 500 ms by default), so a revocation or a rotation takes
//     effect within about a second. It holds no consumer on the directory. It is monotonic:
//     the newest verified account JWT and, per service, the newest verified card win, whatever
//     order they arrive in; delete and purge markers and values that do not verify never
//     remove or hide a verified entry. They are ignored, counted and reported as audit events.
//   - [Client.Publish] encrypts to exactly the audience of the subject: every valid,
//     non-revoked card whose subscribe permissions match it. A subject the service's own card
//     does not allow ([ErrForbidden]) or that nobody may read ([ErrNoAudience]) is refused
//     before anything is sent. The envelope's message id is the Nats-Msg-Id, and retries send
//     the same envelope, so JetStream stores it once. Concurrent publishes are signed in
//     batches (one Ed25519 signature per batch); a lone publish is never delayed.
//   - Publishing survives reconnects at full speed: publishes whose acks were lost when the
//     connection dropped, and publishes made while it was down (nothing is buffered then),
//     are all sent again as soon as it is back, together, with the same envelopes. The
//     client waits only while the server is unavailable (connection down, or no stream
//     answering), with one short backoff per round of failures, not per message. An envelope
//     is never sent again once it is older than the freshness window minus a quarter of it
//     (receivers would reject it as stale): its publish fails with [ErrPublishExpired].
//   - The client pings its server every [DefaultPingInterval] and leaves a server that stops
//     answering (hung, paused) after [DefaultMaxPingsOutstanding] missed pings
//     ([WithPingInterval]).
//   - Audit events ([Event], CloudEvents-style JSON) go to the account's SEALBUS_AUDIT
//     stream as records signed by the service (envelope/RECORD.md), on the service's own
//     subject, whose secret token only its user JWT names; they never carry payloads or
//     secrets. A record the server refuses because the service's quota is full
//     ([ErrEvidenceRefused]) is counted and reported on the service's overflow subject
//     ([EventEvidenceRefused]). Logging goes to the caller's slog.Logger.
//
// # Rotation
//
// A rotated service connects with its new creds and names the old ones with
// [WithPreviousCreds]: envelopes sealed to its previous curve key open while its card lists
// that key inside the grace period. Receivers keep accepting envelopes signed by the previous
// user key if they were created before the rotation, until the grace period ends.
//
// # Taking a service out of use
//
// Revoke it: `sealbus service revoke ACCOUNT NAME --push` adds its user key to the account
// JWT's revocations, the server disconnects it, and every client stops encrypting to it and
// accepting its envelopes as soon as the new account JWT reaches the directory. Deleting or
// purging its card in the directory does nothing: any service of the account can get a
// delete marker stored there (JetStream API replies go to the subject the requester names), so
// a deletion proves nothing, and clients keep the last verified card until a revocation, its
// expiry, or a newer card for the same service.
//
// # Reading audit events
//
// The operator reads them with operator.AuditLog (`sealbus audit tail`), which verifies every
// record up to the trusted operator before it shows it; services only write them.
package bus
