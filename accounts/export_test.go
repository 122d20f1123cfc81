package accounts

import "testing"

// StartServer exposes startServer to the external test package: the dev server trusting op
// with accts preloaded. It returns the client URL and CA file.
func StartServer(t testing.TB, op *Operator, accts ...*Account) (url, caFile string) {
	addr, ca, _ := startServer(t, op, accts...)
	return "tls://" + addr, ca
}
