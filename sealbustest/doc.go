// Package sealbustest is the test kit for sealbus users' own tests, and the one sealbus's own
// tests use: real, secured NATS servers with an operator, accounts, streams and services
// provisioned in a few lines, the way the operator provisions production.
//
// # Harnesses
//
// A [Harness] is a running server (or cluster) with its keystore and the operator's
// provisioning actions. [StartSandbox] starts one in-process: the embedded dev server (TLS
// only, operator mode, encrypted JetStream, 127.0.0.1 only) in a sealbus home. The container
// helpers of the integration module (natstest.StartServer, natstest.StartCluster) return
// harnesses too, so a test written against a Harness runs unchanged against the embedded
// server or real nats-server containers. [Connect] connects a service of a harness with the
// SDK; [InsiderConn] connects it with plain nats.go, as an insider holding the service's creds
// and the stock nats CLI would, to attack it.
//
// # The demo world
//
// [ProvisionWorld] provisions the world of `sealbus demo` (two tenants, their streams and
// seven services) on a harness; [NewWorld] starts a sandbox and provisions it there. It is a
// ready fixture for tests of publishing, consuming, rotation, revocation and attacks.
//
// # Attacks
//
// An [Insider] ([NewInsider]) is a service of a harness turned hostile: with its own valid
// creds and plain nats.go it does what its permissions allow (create consumers, flood the
// directory's reply path, hold connections, flood or fill streams, publish crafted records
// and envelopes). [AttackDirectory], [AttackConnections] and [AttackStream] run the insider
// issue's attacks and report what honest services saw meanwhile; [FreshStart] times a fresh
// client's start; [RunEvidenceAttacks] runs the attacks on audit records and dead letters as
// subtests. Users run them against their own deployments to check they still hold.
//
// # Checks
//
// [RefusesPlaintext] checks, as a plaintext NATS client would, that a server refuses to talk
// without TLS.
//
// Guarantees: everything the dev server guarantees; credentials files are written 0600; by
// default a sandbox's keystore is unencrypted (tests and development only), with a passphrase
// it is encrypted; Close shuts a sandbox down and removes its home only when it created it.
package sealbustest

import "errors"

// ErrInvalidOption reports invalid options or arguments.
var ErrInvalidOption = errors.New("sealbustest: invalid option")
