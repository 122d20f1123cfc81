package envelope_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/envelope/internal/vectors"
)

func loadVectors(t testing.TB) []*vectors.Vector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*"+vectors.Ext))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	var out []*vectors.Vector
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := vectors.Parse(strings.TrimSuffix(filepath.Base(p), vectors.Ext), data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, v)
	}
	return out
}

// openerFor builds the opener a vector prescribes: its identity, trusting exactly its sender,
// the clock at the stored time, default options except max-size.
func openerFor(t testing.TB, v *vectors.Vector) *envelope.Opener {
	t.Helper()
	id, err := envelope.NewIdentity([]byte(v.IdentityUserSeed), []byte(v.IdentityCurveSeed))
	if err != nil {
		t.Fatalf("%s: identity: %v", v.Name, err)
	}
	opts := []envelope.Option{envelope.WithClock(func() time.Time { return v.DeliveryStored })}
	if v.MaxSize != 0 {
		opts = append(opts, envelope.WithMaxSize(v.MaxSize))
	}
	o, err := envelope.NewOpener([]*envelope.Identity{id}, trust(v.Sender), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func delivery(v *vectors.Vector) envelope.Delivery {
	return envelope.Delivery{Account: v.DeliveryAccount, Subject: v.DeliverySubject, Stored: v.DeliveryStored}
}

func TestVectors(t *testing.T) {
	vs := loadVectors(t)
	if len(vs) < 30 {
		t.Fatalf("%d vectors, want at least 30", len(vs))
	}
	hit := map[envelope.Reason]int{}
	ok := 0
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			got, err := openerFor(t, v).Open(v.Envelope, delivery(v))
			info, ierr := envelope.Inspect(v.Envelope)
			if v.Expect == "ok" {
				if err != nil {
					t.Fatalf("want ok, got %v", err)
				}
				sum := sha256.Sum256(got.Payload)
				if hex.EncodeToString(sum[:]) != v.PayloadSHA256 {
					t.Fatalf("payload hash %x, want %s", sum, v.PayloadSHA256)
				}
				if got.Sender != v.Sender || got.Subject != v.DeliverySubject || got.Account != v.DeliveryAccount {
					t.Fatalf("opened header differs from the delivery")
				}
				if ierr != nil || info.ID != got.ID || info.LeafIndex != got.LeafIndex || info.TreeSize != got.TreeSize {
					t.Fatalf("inspect disagrees with open: %v", ierr)
				}
				ok++
				return
			}
			want := envelope.Reason(v.Reason)
			if !want.Valid() {
				t.Fatalf("vector names unknown reason %q", v.Reason)
			}
			if got != nil {
				t.Fatalf("opened, want reject %s", want)
			}
			r, isReject := envelope.ReasonOf(err)
			if !isReject || r != want {
				t.Fatalf("got %v, want reject %s", err, want)
			}
			hit[r]++
			// Inspect refuses exactly what the parse stages refuse.
			switch want {
			case envelope.ReasonMalformed, envelope.ReasonVersion, envelope.ReasonSuite:
				if ir, _ := envelope.ReasonOf(ierr); ir != want {
					t.Fatalf("inspect: %v, want %s", ierr, want)
				}
			case envelope.ReasonTooLarge:
			default:
				if ierr != nil {
					t.Fatalf("inspect rejects a well-formed envelope: %v", ierr)
				}
			}
		})
	}
	if ok < 8 {
		t.Errorf("only %d valid vectors", ok)
	}
	// Every reason a vector can express (all but the policy's revoked/forbidden, which need a
	// policy other than "trust this sender") has at least one vector.
	for _, r := range envelope.AllReasons() {
		if r == envelope.ReasonSenderRevoked || r == envelope.ReasonSenderForbidden {
			continue
		}
		if hit[r] == 0 {
			t.Errorf("no vector for reason %s", r)
		}
	}
}

// TestVectorsUpToDate regenerates the vectors in memory and fails if testdata differs: run
// `go generate ./envelope/` after a deliberate format change.
func TestVectorsUpToDate(t *testing.T) {
	vs, err := vectors.Generate()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, v := range vs {
		want[v.Name+vectors.Ext] = v.Marshal()
	}
	checkGenerated(t, "testdata", want)
}

// checkGenerated fails unless dir holds exactly the vector files of want, byte for byte.
func checkGenerated(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "*"+vectors.Ext))
	have := map[string]bool{}
	for _, p := range paths {
		name := filepath.Base(p)
		have[name] = true
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("%s is not generated any more", p)
			continue
		}
		if !bytes.Equal(data, w) {
			t.Errorf("%s differs from the generator's output (run go generate ./envelope/)", p)
		}
	}
	for name := range want {
		if !have[name] {
			t.Errorf("%s/%s is generated but not committed", dir, name)
		}
	}
}

func TestVectorFileIsStrict(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "ok-single"+vectors.Ext))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	bad := map[string]string{
		"unknown key":    strings.Replace(s, "comment:", "remark:", 1),
		"repeated key":   strings.Replace(s, "sender:", "sender: x\nsender:", 1),
		"out of order":   swapLines(s, "sender:", "delivery-account:"),
		"reason with ok": strings.Replace(s, "expect: ok\n", "expect: ok\nreason: stale\n", 1),
		"no blank line":  strings.Replace(s, "\n\n", "\n", 1),
		"bad base64":     strings.Replace(s, "\n\nAQ", "\n\n!Q", 1),
		"rewrapped":      strings.Replace(s, "\n", "", 12) + "",
		"trailing space": strings.Replace(s, "expect: ok", "expect: ok ", 1),
		"no final nl":    strings.TrimSuffix(s, "\n"),
	}
	for name, b := range bad {
		if _, err := vectors.Parse("x", []byte(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := vectors.Parse("x", data); err != nil {
		t.Fatal(err)
	}
}

func swapLines(s, a, b string) string {
	lines := strings.Split(s, "\n")
	ia, ib := -1, -1
	for i, l := range lines {
		if strings.HasPrefix(l, a) {
			ia = i
		}
		if strings.HasPrefix(l, b) {
			ib = i
		}
	}
	lines[ia], lines[ib] = lines[ib], lines[ia]
	return strings.Join(lines, "\n")
}
