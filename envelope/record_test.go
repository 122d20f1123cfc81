package envelope_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/envelope/internal/format"
	"github.com/sealbus/sealbus/envelope/internal/suite"
	"github.com/sealbus/sealbus/envelope/internal/vectors"
)

func loadRecordVectors(t testing.TB) []*vectors.RecordVector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", vectors.RecordDir, "*"+vectors.Ext))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	var out []*vectors.RecordVector
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := vectors.ParseRecordVector(strings.TrimSuffix(filepath.Base(p), vectors.Ext), data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		t.Fatal("no record vectors")
	}
	return out
}

// vectorPolicy is the reader a record vector prescribes: it trusts exactly v.Writer, for any
// account, and reports it revoked for records at or after v.RevokedAt.
func vectorPolicy(v *vectors.RecordVector) envelope.RecordPolicy {
	return envelope.RecordPolicyFunc(func(r *envelope.Record) error {
		if r.Writer != v.Writer {
			return fmt.Errorf("%w: %s", envelope.ErrWriterUnknown, r.Writer)
		}
		if !v.RevokedAt.IsZero() && !r.Time.Before(v.RevokedAt) {
			return fmt.Errorf("%w: at %s", envelope.ErrWriterRevoked, v.RevokedAt)
		}
		return nil
	})
}

func hexSum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// TestRecordVectors runs every record vector (RECORD.md §8) against VerifyRecord, and checks
// that ParseRecord refuses exactly what the parse stages refuse.
func TestRecordVectors(t *testing.T) {
	hit := map[envelope.RecordReason]int{}
	ok := 0
	for _, v := range loadRecordVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			r, err := envelope.VerifyRecord(v.Record, vectorPolicy(v), v.MaxSize)
			pr, perr := envelope.ParseRecord(v.Record)
			if v.Expect == "ok" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if r.Kind.String() != v.Kind || r.ID.String() != v.RecordID || hexSum(r.Payload) != v.PayloadSHA256 ||
					hexSum(r.Attachment) != v.AttachmentSHA256 || r.Writer != v.Writer || r.Size != len(v.Record) {
					t.Fatalf("verified record differs from the vector: %+v", r)
				}
				if perr != nil || pr.ID != r.ID {
					t.Fatalf("parse disagrees with verify: %v", perr)
				}
				ok++
				return
			}
			want := envelope.RecordReason(v.Reason)
			if r != nil {
				t.Fatalf("verified, want %s", want)
			}
			got, isRec := envelope.RecordReasonOf(err)
			if !isRec || got != want {
				t.Fatalf("got %v, want %s", err, want)
			}
			hit[got]++
			switch want {
			case envelope.RecordMalformed, envelope.RecordUnknownVersion:
				if pr, _ := envelope.RecordReasonOf(perr); pr != want {
					t.Fatalf("parse: %v, want %s", perr, want)
				}
			case envelope.RecordTooLarge:
			default:
				if perr != nil {
					t.Fatalf("parse refuses a well-formed record: %v", perr)
				}
			}
		})
	}
	if ok < 6 {
		t.Errorf("only %d valid record vectors", ok)
	}
	for _, r := range []envelope.RecordReason{envelope.RecordTooLarge, envelope.RecordMalformed, envelope.RecordUnknownVersion,
		envelope.RecordBadSignature, envelope.RecordWriterUnknown, envelope.RecordWriterRevoked} {
		if hit[r] == 0 {
			t.Errorf("no record vector for reason %s", r)
		}
	}
}

// TestRecordVectorsUpToDate regenerates the record vectors in memory and fails if
// testdata/records differs (run `go generate ./envelope/` after a deliberate change).
func TestRecordVectorsUpToDate(t *testing.T) {
	vs, err := vectors.GenerateRecords()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, v := range vs {
		want[v.Name+vectors.Ext] = v.Marshal()
	}
	checkGenerated(t, filepath.Join("testdata", vectors.RecordDir), want)
}

func TestRecordVectorFileIsStrict(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", vectors.RecordDir, "ok-dead-letter"+vectors.Ext))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for name, b := range map[string]string{
		"unknown key":      strings.Replace(s, "comment:", "remark:", 1),
		"reason with ok":   strings.Replace(s, "expect: ok\n", "expect: ok\nreason: malformed\n", 1),
		"ok without kind":  strings.Replace(s, "kind: dead_letter\n", "", 1),
		"no blank line":    strings.Replace(s, "\n\n", "\n", 1),
		"trailing space":   strings.Replace(s, "expect: ok", "expect: ok ", 1),
		"upper-case hex":   strings.Replace(s, "record-id: cc", "record-id: CC", 1),
		"no final newline": strings.TrimSuffix(s, "\n"),
	} {
		if _, err := vectors.ParseRecordVector("x", []byte(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// recordFixture is a service identity with a valid signed dead letter.
func recordFixture(t testing.TB) (*envelope.Identity, []byte) {
	t.Helper()
	id := ident(t, "record-writer")
	data, err := id.SignRecord(envelope.Record{
		Kind: envelope.RecordDeadLetter, Account: testAccountKey(t), WriterName: "billing",
		Credential: "eyJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln", Payload: []byte(`{"reason":"stale"}`),
		Attachment: bytes.Repeat([]byte{7}, 300),
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, data
}

func testAccountKey(t testing.TB) string {
	t.Helper()
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteAccount, bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return pub
}

func trustWriter(key string) envelope.RecordPolicy {
	return envelope.RecordPolicyFunc(func(r *envelope.Record) error {
		if r.Writer != key {
			return envelope.ErrWriterUnknown
		}
		return nil
	})
}

func TestSignRecordRoundTrip(t *testing.T) {
	id, data := recordFixture(t)
	r, err := envelope.VerifyRecord(data, trustWriter(id.SigningKey()), 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Role != envelope.WriterService || r.Writer != id.SigningKey() || r.WriterName != "billing" || r.Kind != envelope.RecordDeadLetter ||
		len(r.Attachment) != 300 || r.Time.IsZero() || r.ID == (envelope.RecordID{}) || r.Account != testAccountKey(t) {
		t.Fatalf("record %+v", r)
	}
	// A policy refusal carries the policy's reason.
	_, err = envelope.VerifyRecord(data, envelope.RecordPolicyFunc(func(*envelope.Record) error {
		return fmt.Errorf("%w: since yesterday", envelope.ErrWriterRevoked)
	}), 0)
	if !errors.Is(err, &envelope.RecordError{Reason: envelope.RecordWriterRevoked}) || !errors.Is(err, envelope.ErrWriterRevoked) {
		t.Fatalf("revoked policy: %v", err)
	}
	if _, err := envelope.VerifyRecord(data, nil, 0); !errors.Is(err, envelope.ErrInvalidOption) {
		t.Fatalf("nil policy: %v", err)
	}
	if _, err := envelope.VerifyRecord(data, trustWriter(id.SigningKey()), 10); !errors.Is(err, envelope.ErrInvalidOption) {
		t.Fatalf("max size 10: %v", err)
	}
}

func TestSignRecordRefusesBrokenRules(t *testing.T) {
	id := ident(t, "record-writer")
	acct := testAccountKey(t)
	good := envelope.Record{Kind: envelope.RecordAudit, Account: acct, WriterName: "billing", Credential: "a.b.c", Payload: []byte(`{}`)}
	for name, mut := range map[string]func(*envelope.Record){
		"no account":         func(r *envelope.Record) { r.Account = "" },
		"user as account":    func(r *envelope.Record) { r.Account = id.SigningKey() },
		"no name":            func(r *envelope.Record) { r.WriterName = "" },
		"bad name":           func(r *envelope.Record) { r.WriterName = "bill ing" },
		"no credential":      func(r *envelope.Record) { r.Credential = "" },
		"control credential": func(r *envelope.Record) { r.Credential = "a\x1b[2Jb" },
		"empty payload":      func(r *envelope.Record) { r.Payload = nil },
		"huge payload":       func(r *envelope.Record) { r.Payload = bytes.Repeat([]byte{'x'}, envelope.MaxRecordPayload+1) },
		"audit attachment":   func(r *envelope.Record) { r.Attachment = []byte{1} },
		"replay by service":  func(r *envelope.Record) { r.Kind = envelope.RecordReplayAuthorization },
		"unknown kind":       func(r *envelope.Record) { r.Kind = 9 },
	} {
		r := good
		mut(&r)
		if _, err := id.SignRecord(r); !errors.Is(err, envelope.ErrInvalidMessage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := id.SignRecord(good); err != nil {
		t.Fatal(err)
	}
	// Account and operator keys: no name, no credential, no dead letters; user keys refused.
	ak, _ := nkeys.CreateAccount()
	if _, err := envelope.SignRecord(ak, envelope.Record{Kind: envelope.RecordAudit, Account: acct, WriterName: "x", Payload: []byte(`{}`)}); !errors.Is(err, envelope.ErrInvalidMessage) {
		t.Errorf("account with name: %v", err)
	}
	if _, err := envelope.SignRecord(ak, envelope.Record{Kind: envelope.RecordDeadLetter, Account: acct, Payload: []byte(`{}`)}); !errors.Is(err, envelope.ErrInvalidMessage) {
		t.Errorf("dead letter by account: %v", err)
	}
	uk, _ := nkeys.CreateUser()
	if _, err := envelope.SignRecord(uk, envelope.Record{Kind: envelope.RecordAudit, Account: acct, Payload: []byte(`{}`)}); !errors.Is(err, envelope.ErrInvalidKey) {
		t.Errorf("user key: %v", err)
	}
	data, err := envelope.SignRecord(ak, envelope.Record{Kind: envelope.RecordReplayAuthorization, Account: acct, Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	apub, _ := ak.PublicKey()
	r, err := envelope.VerifyRecord(data, trustWriter(apub), 0)
	if err != nil || r.Role != envelope.WriterAccount {
		t.Fatalf("account record: %v %+v", err, r)
	}
	id.Wipe()
	if _, err := id.SignRecord(good); !errors.Is(err, envelope.ErrInvalidKey) {
		t.Errorf("wiped identity: %v", err)
	}
}

// TestRecordStatementDomain holds the argument of RECORD.md §5: a record statement is never
// UTF-8 (so never a NATS nonce, never a JWT signing input), never a batch statement (first
// byte 0xFE, not 0xFF, and a different length), and the subject-token statement never equals
// a record statement.
func TestRecordStatementDomain(t *testing.T) {
	for i := 0; i < 2000; i++ {
		signed := bytes.Repeat([]byte{byte(i)}, i%97)
		st := suite.RecordStatement(signed)
		if utf8.Valid(st) || st[0] != 0xFE || len(st) != suite.RecordStatementLen {
			t.Fatalf("statement %x", st)
		}
		if len(st) == suite.StatementLen || st[0] == suite.StatementPrefix {
			t.Fatal("a record statement has the shape of a batch statement")
		}
		if strings.HasPrefix(string(st), "eyJ") {
			t.Fatal("looks like a JWT")
		}
	}
	var a [32]byte
	tok := suite.SubjectTokenStatement(a)
	if utf8.Valid(tok) || bytes.Equal(tok[:len(suite.LabelRecord)+2], suite.RecordStatement(nil)[:len(suite.LabelRecord)+2]) {
		t.Fatal("subject-token statement shares the record label")
	}
}

func TestDeriveSubjectToken(t *testing.T) {
	k1, _ := nkeys.CreateAccount()
	k2, _ := nkeys.CreateAccount()
	acct := testAccountKey(t)
	a, err := envelope.DeriveSubjectToken(k1, acct)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := envelope.DeriveSubjectToken(k1, acct)
	c, _ := envelope.DeriveSubjectToken(k2, acct)
	other, _ := nkeys.CreateAccount()
	opub, _ := other.PublicKey()
	d, _ := envelope.DeriveSubjectToken(k1, opub)
	if a != b || a == c || a == d || len(a) != 32 || strings.ToLower(a) != a {
		t.Fatalf("tokens %s %s %s %s", a, b, c, d)
	}
	if _, err := envelope.DeriveSubjectToken(k1, "Ubad"); !errors.Is(err, envelope.ErrInvalidKey) {
		t.Fatal(err)
	}
}

func TestCheckSignature(t *testing.T) {
	v := findVector(t, "ok-single")
	info, err := envelope.CheckSignature(v.Envelope)
	if err != nil || info.Sender != v.Sender {
		t.Fatalf("valid envelope: %v", err)
	}
	for _, name := range []string{"altered-subject", "altered-ciphertext", "altered-signature"} {
		if _, err := envelope.CheckSignature(findVector(t, name).Envelope); !errors.Is(err, &envelope.RejectError{Reason: envelope.ReasonBadSignature}) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := envelope.CheckSignature([]byte("{}")); err == nil {
		t.Error("JSON accepted")
	}
}

func findVector(t *testing.T, name string) *vectors.Vector {
	t.Helper()
	for _, v := range loadVectors(t) {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vector %s", name)
	return nil
}

// TestSkipFreshnessSkipsOnlyFreshness: a stale envelope opens with SkipFreshness, and every
// other check still runs (an altered one is still refused, an expired one still expired).
func TestSkipFreshnessSkipsOnlyFreshness(t *testing.T) {
	v := findVector(t, "ok-single")
	late := v.DeliveryStored.Add(10 * time.Minute)
	o := openerAt(t, v, late)
	d := delivery(v)
	d.Stored = late
	if _, err := o.Open(v.Envelope, d); !errors.Is(err, &envelope.RejectError{Reason: envelope.ReasonStale}) {
		t.Fatalf("late without skip: %v", err)
	}
	d.SkipFreshness = true
	if _, err := o.Open(v.Envelope, d); err != nil {
		t.Fatalf("late with skip: %v", err)
	}
	bad := findVector(t, "altered-ciphertext")
	if _, err := openerAt(t, bad, late).Open(bad.Envelope, d); !errors.Is(err, &envelope.RejectError{Reason: envelope.ReasonBadSignature}) {
		t.Fatalf("altered with skip: %v", err)
	}
	exp := findVector(t, "ok-expires")
	de := delivery(exp)
	de.Stored, de.SkipFreshness = late, true
	if _, err := openerAt(t, exp, late).Open(exp.Envelope, de); !errors.Is(err, &envelope.RejectError{Reason: envelope.ReasonExpired}) {
		t.Fatalf("expired with skip: %v", err)
	}
}

func openerAt(t *testing.T, v *vectors.Vector, now time.Time) *envelope.Opener {
	t.Helper()
	id, err := envelope.NewIdentity([]byte(v.IdentityUserSeed), []byte(v.IdentityCurveSeed))
	if err != nil {
		t.Fatal(err)
	}
	o, err := envelope.NewOpener([]*envelope.Identity{id}, trust(v.Sender), envelope.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// FuzzParseRecord: the record parser never panics, whatever it accepts re-encodes to exactly
// the input, and VerifyRecord never accepts what the parser refuses.
func FuzzParseRecord(f *testing.F) {
	for _, v := range loadRecordVectors(f) {
		f.Add(v.Record)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := format.ParseRecord(data)
		pr, perr := envelope.ParseRecord(data)
		if err != nil {
			if perr == nil {
				t.Fatalf("ParseRecord accepted what the codec refused: %v", err)
			}
			if _, verr := envelope.VerifyRecord(data, envelope.RecordPolicyFunc(func(*envelope.Record) error { return nil }), envelope.HardMaxRecordSize); verr == nil {
				t.Fatal("VerifyRecord accepted a record the parser refuses")
			}
			return
		}
		if got := fr.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("round trip differs:\n in  %x\n out %x", data, got)
		}
		if perr != nil || pr.Size != len(data) || fr.SignedLen != len(data)-format.SignatureSize {
			t.Fatalf("ParseRecord disagrees: %v size %d/%d signed %d", perr, pr.Size, len(data), fr.SignedLen)
		}
	})
}

// FuzzVerifyRecord: no mutation of a valid record verifies, for a reader that trusts every
// writer the vectors use: only the valid vectors' bytes are accepted.
func FuzzVerifyRecord(f *testing.F) {
	valid := map[string]bool{}
	writers := map[string]bool{}
	for _, v := range loadRecordVectors(f) {
		f.Add(v.Record)
		writers[v.Writer] = true
		// Genuine records: the valid ones, and those refused only for the reader's inputs
		// (its size limit, a revocation), which this reader does not have.
		switch v.Reason {
		case "", string(envelope.RecordTooLarge), string(envelope.RecordWriterRevoked):
			valid[string(v.Record)] = true
		}
	}
	policy := envelope.RecordPolicyFunc(func(r *envelope.Record) error {
		if !writers[r.Writer] {
			return envelope.ErrWriterUnknown
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := envelope.VerifyRecord(data, policy, envelope.HardMaxRecordSize); err == nil && !valid[string(data)] {
			t.Fatalf("a mutated record verified: %x", data)
		}
	})
}
