// Package vectors defines the conformance vector file format of envelope/testdata and
// generates the vectors deterministically. It is internal: the generator lives in
// envelope/internal/vectorgen and the test that checks them in package envelope_test.
package vectors

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Vector is one conformance case: open Envelope with an Opener holding the identity, trusting
// exactly Sender (for any account and subject), with its clock at DeliveryStored and default
// options except MaxSize, and expect either the plaintext hash or the reason.
type Vector struct {
	Name              string // file name without extension
	Expect            string // "ok" or "reject"
	Reason            string // reason code, for reject
	Comment           string
	IdentityUserSeed  string // SU... (test-only key)
	IdentityCurveSeed string // SX... (test-only key)
	Sender            string // U... the one trusted sender
	DeliveryAccount   string // A...
	DeliverySubject   string
	DeliveryStored    time.Time
	MaxSize           int    // 0 means the default
	PayloadSHA256     string // hex, for ok
	Envelope          []byte
}

// headerKey is one header key of a vector file format, in its required order.
type headerKey struct {
	name     string
	required bool
}

// keys of envelope vectors, in their required order.
var keys = []headerKey{
	{"expect", true}, {"reason", false}, {"comment", true},
	{"identity-user-seed", true}, {"identity-curve-seed", true}, {"sender", true},
	{"delivery-account", true}, {"delivery-subject", true}, {"delivery-stored", true},
	{"max-size", false}, {"payload-sha256", false},
}

const lineLen = 76

// Marshal returns the file form: "key: value" lines in a fixed order, a blank line, then the
// envelope in standard base64 wrapped at 76 columns.
func (v *Vector) Marshal() []byte {
	var b bytes.Buffer
	kv := func(k, val string) { fmt.Fprintf(&b, "%s: %s\n", k, val) }
	kv("expect", v.Expect)
	if v.Reason != "" {
		kv("reason", v.Reason)
	}
	kv("comment", v.Comment)
	kv("identity-user-seed", v.IdentityUserSeed)
	kv("identity-curve-seed", v.IdentityCurveSeed)
	kv("sender", v.Sender)
	kv("delivery-account", v.DeliveryAccount)
	kv("delivery-subject", v.DeliverySubject)
	kv("delivery-stored", v.DeliveryStored.UTC().Format(time.RFC3339Nano))
	if v.MaxSize != 0 {
		kv("max-size", strconv.Itoa(v.MaxSize))
	}
	if v.PayloadSHA256 != "" {
		kv("payload-sha256", v.PayloadSHA256)
	}
	writeBody(&b, v.Envelope)
	return b.Bytes()
}

// writeBody writes the blank line and data in standard base64 in lines of lineLen.
func writeBody(b *bytes.Buffer, data []byte) {
	b.WriteByte('\n')
	s := base64.StdEncoding.EncodeToString(data)
	for len(s) > lineLen {
		b.WriteString(s[:lineLen])
		b.WriteByte('\n')
		s = s[lineLen:]
	}
	b.WriteString(s)
	b.WriteByte('\n')
}

// readFile splits a vector file strictly: known keys only, each at most once and in order, the
// required ones present, non-empty values without surrounding spaces, one blank line, then
// base64 lines of exactly lineLen characters (the last may be shorter). It returns the header
// values by key and the decoded body.
func readFile(data []byte, keys []headerKey) (map[string]string, []byte, error) {
	head, body, ok := strings.Cut(string(data), "\n\n")
	if !ok {
		return nil, nil, errors.New("vectors: no blank line after the header")
	}
	next := 0
	vals := map[string]string{}
	for _, line := range strings.Split(head, "\n") {
		k, val, ok := strings.Cut(line, ": ")
		if !ok || val == "" || strings.TrimSpace(val) != val {
			return nil, nil, fmt.Errorf("vectors: bad header line %q", line)
		}
		i := next
		for i < len(keys) && keys[i].name != k {
			if keys[i].required {
				return nil, nil, fmt.Errorf("vectors: key %q before required %q", k, keys[i].name)
			}
			i++
		}
		if i == len(keys) {
			return nil, nil, fmt.Errorf("vectors: unknown, repeated or out-of-order key %q", k)
		}
		next = i + 1
		vals[k] = val
	}
	for _, k := range keys {
		if _, seen := vals[k.name]; k.required && !seen {
			return nil, nil, fmt.Errorf("vectors: missing %q", k.name)
		}
	}
	if !strings.HasSuffix(body, "\n") {
		return nil, nil, errors.New("vectors: missing final newline")
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	for i, l := range lines {
		if len(l) > lineLen || (i < len(lines)-1 && len(l) != lineLen) || (l == "" && len(lines) > 1) {
			return nil, nil, fmt.Errorf("vectors: base64 line %d has length %d", i+1, len(l))
		}
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(strings.Join(lines, ""))
	if err != nil {
		return nil, nil, fmt.Errorf("vectors: body: %w", err)
	}
	return vals, raw, nil
}

// positiveInt parses a canonical positive decimal integer.
func positiveInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err == nil && (n <= 0 || strconv.Itoa(n) != s) {
		err = errors.New("not a canonical positive integer")
	}
	return n, err
}

// Parse reads a vector file strictly (readFile), with reason only with reject and
// payload-sha256 only with ok, in canonical form.
func Parse(name string, data []byte) (*Vector, error) {
	vals, env, err := readFile(data, keys)
	if err != nil {
		return nil, err
	}
	v := &Vector{Name: name, Envelope: env, Expect: vals["expect"], Reason: vals["reason"], Comment: vals["comment"],
		IdentityUserSeed: vals["identity-user-seed"], IdentityCurveSeed: vals["identity-curve-seed"], Sender: vals["sender"],
		DeliveryAccount: vals["delivery-account"], DeliverySubject: vals["delivery-subject"], PayloadSHA256: vals["payload-sha256"]}
	if v.Expect != "ok" && v.Expect != "reject" {
		return nil, fmt.Errorf("vectors: expect %q", v.Expect)
	}
	if v.DeliveryStored, err = time.Parse(time.RFC3339Nano, vals["delivery-stored"]); err != nil {
		return nil, fmt.Errorf("vectors: delivery-stored: %w", err)
	}
	if m, ok := vals["max-size"]; ok {
		if v.MaxSize, err = positiveInt(m); err != nil {
			return nil, fmt.Errorf("vectors: max-size: %w", err)
		}
	}
	if h, ok := vals["payload-sha256"]; ok && hex64(h) != nil {
		return nil, errors.New("vectors: payload-sha256: not 64 lower-case hex digits")
	}
	if (v.Expect == "reject") != (v.Reason != "") {
		return nil, errors.New("vectors: reason must be present exactly when expect is reject")
	}
	if (v.Expect == "ok") != (v.PayloadSHA256 != "") {
		return nil, errors.New("vectors: payload-sha256 must be present exactly when expect is ok")
	}
	if !bytes.Equal(v.Marshal(), data) {
		return nil, errors.New("vectors: file is not in canonical form")
	}
	return v, nil
}

// Ext is the file name extension of vector files.
const Ext = ".vec"
