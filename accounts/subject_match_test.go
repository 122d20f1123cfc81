package accounts

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// matchBySplit is the textbook NATS matching rule over split tokens: the reference the
// allocation-free SubjectMatches is held against.
func matchBySplit(pattern, subject string) bool {
	if !validSubject(subject, false) || !validSubject(pattern, true) {
		return false
	}
	pt, st := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, p := range pt {
		if p == ">" {
			return len(st) > i
		}
		if i >= len(st) || p != "*" && p != st[i] {
			return false
		}
	}
	return len(pt) == len(st)
}

// TestSubjectMatchesAgreesWithSplit compares SubjectMatches with the split-based rule on
// random patterns and subjects over a small alphabet (so that matches are frequent), and
// checks that matching allocates nothing.
func TestSubjectMatchesAgreesWithSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	toks := []string{"a", "b", "ab", "*", ">", "", "a*"}
	gen := func(wild bool) string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			if wild {
				parts[i] = toks[rng.IntN(len(toks))]
			} else {
				parts[i] = toks[rng.IntN(3)]
			}
		}
		return strings.Join(parts, ".")
	}
	matches := 0
	for range 200000 {
		p, s := gen(true), gen(rng.IntN(10) == 0)
		got, want := SubjectMatches(p, s), matchBySplit(p, s)
		if got != want {
			t.Fatalf("SubjectMatches(%q, %q) = %v, split rule says %v", p, s, got, want)
		}
		if got {
			matches++
		}
	}
	if matches < 1000 {
		t.Fatalf("only %d matches: the generator does not exercise matching", matches)
	}
	if n := testing.AllocsPerRun(100, func() { SubjectMatches("orders.*.new.>", "orders.eu.new.x.y") }); n != 0 {
		t.Fatalf("SubjectMatches allocates %v times", n)
	}
}
