// Package natstest runs real NATS servers in Docker containers for sealbus tests, with
// testcontainers-go: a single node ([StartServer]) or a JetStream cluster ([StartCluster]), in
// operator mode, with TLS and JetStream storage encryption, and the sealbus example services as
// separate containers ([RunService]).
//
// # Images
//
// No image is ever pulled. [NATSImage] builds nats-server from the version the sealbus root
// module pins, statically (CGO_ENABLED=0), into an image FROM scratch tagged
// sealbus/nats-server:<version>; the image is kept and reused, so it is built once per machine.
// [ExamplesImage] does the same for the example services under examples/, tagged by the hash of
// the binaries.
//
// # Isolation and cleanup
//
// Every port is published on 127.0.0.1 only; containers reach each other only on a Docker
// network the test creates. Containers and networks are removed in t.Cleanup. Because the
// testcontainers reaper (Ryuk) image cannot be pulled on these machines, the package sets
// TESTCONTAINERS_RYUK_DISABLED=true and TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 when they are
// unset (in its init function), before testcontainers reads its configuration.
//
// # Docker
//
// Every helper calls [RequireDocker] first: without a reachable Docker engine the test is
// skipped, unless the CI environment variable is set, in which case it fails.
package natstest
