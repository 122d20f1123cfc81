// Package integration holds sealbus's end-to-end tests against real nats-server processes in
// Docker containers (see package natstest for the helpers): isolation between services running
// as separate containers, server-side authorization, attacks end to end, cluster faults,
// restarts and auth-failure events. It is its own Go module so users of the SDK never download
// Docker libraries.
//
// Run them with `make test-integration` (or `cd integration && go test ./...`). Without Docker
// they skip, unless CI is set, in which case they fail. docs/TESTING.md records their sizes and
// durations.
package integration
