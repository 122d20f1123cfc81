package suite

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestExpand32MatchesHKDF(t *testing.T) {
	for i := 0; i < 50; i++ {
		prk := sha256.Sum256([]byte{byte(i)})
		id := prk[:16]
		for _, label := range []string{LabelCommit, LabelPayload} {
			want, err := hkdf.Expand(sha256.New, prk[:], label+string(id), 32)
			if err != nil {
				t.Fatal(err)
			}
			got, err := expand32(prk[:], label, id)
			if err != nil || string(got[:]) != string(want) {
				t.Fatalf("expand32 differs from crypto/hkdf for %q", label)
			}
		}
	}
	if _, err := expand32(make([]byte, 31), LabelCommit, nil); err == nil {
		t.Fatal("short prk accepted")
	}
}

func TestSharedSecretRejectsLowOrder(t *testing.T) {
	// Covered with real keys in the envelope tests; here only the all-zero point.
	priv := mustPriv(t)
	if _, err := SharedSecret(priv, make([]byte, 32)); err != ErrLowOrder {
		t.Fatalf("zero point: %v", err)
	}
	if _, err := SharedSecret(priv, make([]byte, 31)); err != ErrLowOrder {
		t.Fatalf("short point: %v", err)
	}
}

func mustPriv(t *testing.T) *ecdh.PrivateKey {
	t.Helper()
	seed := sha256.Sum256([]byte("suite test"))
	k, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// statementCases returns statements of many sizes and roots, including the worst case for the
// prefix: a size and root that are themselves printable ASCII, so that without the prefix the
// statement would be valid UTF-8 text.
func statementCases() [][]byte {
	var out [][]byte
	sizes := []uint32{0, 1, 2, 3, 4, 63, 64, 65, 127, 128, 255, 256, 4096, 65535, 65536, 0x41414141, 0x7f7f7f7f, 0x80808080, 0xffffffff}
	var roots [][32]byte
	for i := 0; i < 64; i++ {
		roots = append(roots, sha256.Sum256([]byte{byte(i), 'r'}))
	}
	var ascii, zero, high [32]byte
	for i := range ascii {
		ascii[i] = 'A' + byte(i%26)
		high[i] = 0xff
	}
	roots = append(roots, ascii, zero, high)
	for _, n := range sizes {
		for _, r := range roots {
			out = append(out, Statement(n, r))
		}
	}
	return out
}

func TestStatementLayout(t *testing.T) {
	root := sha256.Sum256([]byte("root"))
	st := Statement(0x01020304, root)
	want := append([]byte{0xff}, LabelRoot...)
	want = append(want, 0, 1, 2, 3, 4)
	want = append(want, root[:]...)
	if !bytes.Equal(st, want) || len(st) != StatementLen {
		t.Fatalf("statement %x, want %x (%d bytes)", st, want, StatementLen)
	}
}

// TestStatementNeverUTF8 is the property SPEC.md §5.3 relies on: no statement is valid UTF-8,
// so none can be the nonce a NATS client signs (a JSON string, valid UTF-8 once decoded).
func TestStatementNeverUTF8(t *testing.T) {
	for _, st := range statementCases() {
		if utf8.Valid(st) {
			t.Fatalf("statement %x is valid UTF-8", st)
		}
		if st[0] != StatementPrefix {
			t.Fatalf("statement %x does not start with the prefix", st)
		}
	}
	// Random sizes and roots, as a malicious server grinding a batch would try them.
	r := sha256.Sum256([]byte("grind"))
	for i := 0; i < 100_000; i++ {
		r = sha256.Sum256(r[:])
		if st := Statement(binary.BigEndian.Uint32(r[:4]), r); utf8.Valid(st) {
			t.Fatalf("statement %x is valid UTF-8", st)
		}
	}
}

// TestStatementNotANonce sends each statement as a NATS server would send a nonce (a JSON
// string in INFO) and decodes it as nats.go does (encoding/json into a string): what the
// client would sign is never the statement.
func TestStatementNotANonce(t *testing.T) {
	for _, st := range statementCases() {
		info, err := json.Marshal(map[string]string{"nonce": string(st)})
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Nonce string `json:"nonce"`
		}
		if err := json.Unmarshal(info, &got); err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(got.Nonce) {
			t.Fatalf("decoded nonce is not valid UTF-8")
		}
		if bytes.Equal([]byte(got.Nonce), st) {
			t.Fatalf("statement %x survives as a NATS nonce", st)
		}
	}
}

// FuzzStatement checks the no-UTF-8 property for arbitrary sizes and roots.
func FuzzStatement(f *testing.F) {
	f.Add(uint32(1), bytes.Repeat([]byte{'A'}, 32))
	f.Add(uint32(0x41414141), []byte("0123456789abcdef0123456789abcdef"))
	f.Fuzz(func(t *testing.T, n uint32, root []byte) {
		var r [32]byte
		copy(r[:], root)
		st := Statement(n, r)
		if utf8.Valid(st) || len(st) != StatementLen {
			t.Fatalf("statement %x is valid UTF-8 or of length %d", st, len(st))
		}
	})
}
