package main

import "testing"

// TestDemo runs the demo: the honest envelope must open and every tamper must be rejected.
func TestDemo(t *testing.T) {
	if err := run(); err != nil {
		t.Fatal(err)
	}
}
