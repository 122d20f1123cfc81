package accounts

import "testing"

// StartRenderedServer exposes startRendered to the external test package: an in-process
// nats-server running the configuration Render writes. It returns the client URL and CA file.
func StartRenderedServer(t testing.TB, op *Operator, accts ...*Account) (url, caFile string) {
	s, ca, _ := startRendered(t, op, accts...)
	return "tls://" + s.Addr().String(), ca
}
