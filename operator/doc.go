// Package operator is what the operator of a sealbus deployment does from Go, and what the
// `sealbus` CLI, the test kit (sealbustest) and the container helpers (natstest) do through it:
// one copy of the operator's logic.
//
// # Provisioning
//
// A [Provisioner] combines a keystore (accounts.Keystore), its operator and a server
// [Target]: it creates, edits, revokes and rotates accounts and services in the keystore and
// pushes them to the server (account JWTs through the system account, cards into each
// account's directory, durables for the services' consumers). The directory lives in the
// operator account ([Provisioner.OperatorAccount], [SetupOperatorAccount]); each tenant reads
// its part through its own read-only view ([SetupAccount], [WaitView]).
// [Provisioner.SyncPeers] links the directories of accounts that share a stream. The
// lower-level calls ([PushAccount], [SetupAccount], [PutAccountJWT], [PublishCard], [AddStream],
// [AddConsumer], [PutPeer]) take a connection.
//
// # Limits
//
// [StartConnectionGuard] enforces each service's connection quota, which NATS cannot; see
// docs/PERMISSIONS.md, "Per-service limits". Application streams refuse new messages when
// full instead of removing others' ([StreamSpec]).
//
// # Servers
//
// [ServerConfig] renders the configuration of a stock nats-server that trusts the operator:
// operator mode with a full resolver, TLS required, encrypted JetStream storage, optionally a
// cluster.
//
// # Reading what services wrote
//
// [AuditLog] tails and follows an account's audit stream; [DeadLetters] lists, shows and
// replays its dead letters. Both verify every record up to the trusted operator
// ([RecordVerifier]) and report its [Verification] state; nothing that does not verify is
// evidence. A replay is never the operator's deputy: it re-sends only a verified dead letter's
// signed envelope, onto its own application subject and stream, over a connection allowed that
// one publish, under a replay authorization the consumer accepts once ([DeadLetters.Replay]).
// [SetupEvidence] gives each writer its own subjects and quota. The [Provisioner] writes a
// signed admin event for every administrative action.
//
// # Monitoring
//
// The operator account is the home of the operator's monitoring, set up with it and with every
// tenant ([Provisioner.SetupOperatorAccount], [Provisioner.SetupAccount]; [Provisioner.SetupMonitoring]
// for all at once): the servers' auth-error and connection events recorded, and the
// operator-wide, read-only view of every account's audit and dead-letter records, built by
// stream sourcing over private exports ([AuditView] reads it, verifying each record with its
// account's [RecordVerifier]). A [Monitor] ([NewMonitor], [ConnectMonitor]) raises
// de-duplicated alerts from them and from the servers' JetStream and connection state
// ([AlertKind], [MonitorConfig]), each recorded as a signed admin event of the operator account
// in the view; docs/MONITORING.md lists every alert and threshold.
//
// # Guarantees
//
//   - Every connection uses TLS ([ErrNoTLS] otherwise): the target's root CA when given, the
//     system roots otherwise, and the client certificate when given (mTLS).
//   - Pushes are checked: a server that refuses an account JWT returns a [*PushError], and an
//     account JWT not signed by the provisioner's operator is never pushed.
//   - [ConnectAdmin] mints its user JWT in memory, valid for [AdminValidity], and never writes
//     it or its key anywhere.
//   - Application streams always keep a duplicate window of at least the envelope freshness
//     window, so a replay inside the window is deduplicated by the server.
//   - Every call that talks to the server takes a context first and honours it; with no
//     deadline, [DefaultTimeout] applies.
//   - Errors wrap the sentinels of this package ([ErrInvalidSpec], [ErrNoTLS],
//     [ErrPushRejected], [ErrNoDirectory], [ErrNotFound]) or those of the packages it builds
//     on, and are matched with errors.Is.
package operator
