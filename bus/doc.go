// Package bus is the sealbus client: it connects a service to NATS JetStream, keeps a verified
// directory of the services of its account, and publishes sealed envelopes.
//
// # Guarantees
//
//   - Security is on and cannot be turned off: the connection is TLS only (optionally mutual
//     TLS), authenticated with the service's creds, with a private inbox prefix; there is no
//     default trust, the operator keys are given with [WithTrustedOperator].
//   - The [Directory] uses only entries that verify up to a trusted operator; storage is not
//     trusted. It watches the bucket, so a revocation or a rotation takes effect as soon as the
//     server delivers it (normally well under a second). Unverifiable entries are ignored and
//     reported as audit events.
//   - [Client.Publish] encrypts to exactly the audience of the subject: every valid,
//     non-revoked card whose subscribe permissions match it. A subject the service's own card
//     does not allow ([ErrForbidden]) or that nobody may read ([ErrNoAudience]) is refused
//     before anything is sent. The envelope's message id is the Nats-Msg-Id, and retries send
//     the same envelope, so JetStream stores it once. Concurrent publishes are signed in
//     batches (one Ed25519 signature per batch); a lone publish is never delayed.
//   - Audit events ([Event], CloudEvents-style JSON) go to the account's SEALBUS_AUDIT
//     stream; they never carry payloads or secrets. Logging goes to the caller's slog.Logger.
//
// # Rotation
//
// A rotated service connects with its new creds and names the old ones with
// [WithPreviousCreds]: envelopes sealed to its previous curve key open while its card lists
// that key inside the grace period. Receivers keep accepting envelopes signed by the previous
// user key if they were created before the rotation, until the grace period ends.
//
// # Reading audit events
//
// [AuditLog] tails and follows SEALBUS_AUDIT (for `sealbus audit tail`); it needs a connection
// allowed to read that stream, normally an admin connection.
package bus
