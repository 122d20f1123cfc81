package envelope_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/envelope/internal/format"
	"github.com/sealbus/sealbus/envelope/internal/vectors"
)

// FuzzParse: the strict parser never panics, and whatever it accepts re-encodes to exactly
// the input (one encoding per value). Inspect agrees with it.
func FuzzParse(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.Envelope)
	}
	// reused is parsed into again and again, as Open does with its pooled envelopes: whatever
	// an earlier input left in it must not change how the next one parses.
	reused := new(format.Envelope)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := format.Parse(data)
		info, ierr := envelope.Inspect(data)
		rerr := format.ParseInto(reused, data)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Parse and ParseInto into a used envelope disagree: %v, %v", err, rerr)
		}
		if err == nil && !bytes.Equal(reused.Marshal(), data) {
			t.Fatal("ParseInto into a used envelope does not round-trip")
		}
		if err != nil {
			if ierr == nil {
				t.Fatalf("Inspect accepted what Parse refused: %v", err)
			}
			return
		}
		if got := e.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("parse/encode round trip differs:\n in  %x\n out %x", data, got)
		}
		if e.HeaderLen > e.SignedLen || e.SignedLen > len(data) {
			t.Fatalf("offsets out of order")
		}
		if ierr != nil || info.Size != len(data) || info.PathLen != len(e.Path) {
			t.Fatalf("Inspect disagrees with Parse: %v", ierr)
		}
	})
}

// honest reports whether a vector's envelope is an unmodified product of a sealer: the valid
// vectors, and those rejected only for how or to whom they were delivered.
func honest(v *vectors.Vector) bool {
	switch envelope.Reason(v.Reason) {
	case envelope.ReasonNotRecipient, envelope.ReasonAccountMismatch, envelope.ReasonSubjectMismatch,
		envelope.ReasonStale, envelope.ReasonExpired, envelope.ReasonTooLarge:
		return !strings.HasPrefix(v.Name, "altered-")
	}
	return v.Expect == "ok"
}

// FuzzOpen: starting from the vectors, no mutation of a valid envelope opens. The opener holds
// every vector identity and is shared across inputs, so its root and key caches are warm, as in
// production; the only inputs it may accept are the honest vectors' envelopes byte for byte.
func FuzzOpen(f *testing.F) {
	vs := loadVectors(f)
	var valid [][]byte
	var ids []*envelope.Identity
	seen := map[string]bool{}
	for _, v := range vs {
		f.Add(v.Envelope)
		if !honest(v) {
			continue
		}
		valid = append(valid, v.Envelope)
		if !seen[v.IdentityUserSeed] {
			seen[v.IdentityUserSeed] = true
			id, err := envelope.NewIdentity([]byte(v.IdentityUserSeed), []byte(v.IdentityCurveSeed))
			if err != nil {
				f.Fatal(err)
			}
			ids = append(ids, id)
		}
	}
	ref := vs[0]
	for _, v := range vs {
		if v.Name == "ok-single" {
			ref = v
		}
	}
	stored := vectors.T.Add(1500 * time.Millisecond)
	o, err := envelope.NewOpener(ids, trust(ref.Sender), envelope.WithClock(func() time.Time { return stored }))
	if err != nil {
		f.Fatal(err)
	}
	subjects := []string{"orders.created", "orders.updated"}
	// Warm the caches with every valid envelope.
	for _, data := range valid {
		opened := false
		for _, s := range subjects {
			if _, err := o.Open(data, envelope.Delivery{Account: ref.DeliveryAccount, Subject: s, Stored: stored}); err == nil {
				opened = true
			}
		}
		if !opened {
			f.Fatalf("a valid vector does not open in the fuzz setup")
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range subjects {
			got, err := o.Open(data, envelope.Delivery{Account: ref.DeliveryAccount, Subject: s, Stored: stored})
			if err == nil {
				for _, v := range valid {
					if bytes.Equal(v, data) {
						return
					}
				}
				t.Fatalf("a mutated envelope opened (id %s, %d bytes)", got.ID, len(data))
			}
			if _, ok := envelope.ReasonOf(err); !ok {
				t.Fatalf("rejection is not a *RejectError: %v", err)
			}
		}
	})
}

// FuzzParseRecipient: never panics; accepted keys round-trip through String.
func FuzzParseRecipient(f *testing.F) {
	f.Add("XAL7JNZL6HSPHZOH5MLVHBBD5XWKSCTJQNPMJW7GQMVLBXWV5IWRH7U6")
	f.Add("X")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := envelope.ParseRecipient(s)
		if err == nil && r.String() != s {
			t.Fatalf("round trip %q -> %q", s, r.String())
		}
	})
}
