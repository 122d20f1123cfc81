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

// keys in their required order; required reports whether a key must be present.
var keys = []struct {
	name     string
	required bool
}{
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
	b.WriteByte('\n')
	s := base64.StdEncoding.EncodeToString(v.Envelope)
	for len(s) > lineLen {
		b.WriteString(s[:lineLen])
		b.WriteByte('\n')
		s = s[lineLen:]
	}
	b.WriteString(s)
	b.WriteByte('\n')
	return b.Bytes()
}

// Parse reads a vector file strictly: known keys only, each at most once and in order, the
// required ones present, reason only with reject and payload-sha256 only with ok, one blank
// line, then base64 lines of at most 76 characters.
func Parse(name string, data []byte) (*Vector, error) {
	v := &Vector{Name: name}
	head, body, ok := strings.Cut(string(data), "\n\n")
	if !ok {
		return nil, errors.New("vectors: no blank line after the header")
	}
	next := 0
	seen := map[string]bool{}
	for _, line := range strings.Split(head, "\n") {
		k, val, ok := strings.Cut(line, ": ")
		if !ok || val == "" || strings.TrimSpace(val) != val {
			return nil, fmt.Errorf("vectors: bad header line %q", line)
		}
		i := next
		for i < len(keys) && keys[i].name != k {
			if keys[i].required {
				return nil, fmt.Errorf("vectors: key %q before required %q", k, keys[i].name)
			}
			i++
		}
		if i == len(keys) {
			return nil, fmt.Errorf("vectors: unknown, repeated or out-of-order key %q", k)
		}
		next = i + 1
		seen[k] = true
		var err error
		switch k {
		case "expect":
			if val != "ok" && val != "reject" {
				return nil, fmt.Errorf("vectors: expect %q", val)
			}
			v.Expect = val
		case "reason":
			v.Reason = val
		case "comment":
			v.Comment = val
		case "identity-user-seed":
			v.IdentityUserSeed = val
		case "identity-curve-seed":
			v.IdentityCurveSeed = val
		case "sender":
			v.Sender = val
		case "delivery-account":
			v.DeliveryAccount = val
		case "delivery-subject":
			v.DeliverySubject = val
		case "delivery-stored":
			v.DeliveryStored, err = time.Parse(time.RFC3339Nano, val)
		case "max-size":
			v.MaxSize, err = strconv.Atoi(val)
			if err == nil && (v.MaxSize <= 0 || strconv.Itoa(v.MaxSize) != val) {
				err = errors.New("not a canonical positive integer")
			}
		case "payload-sha256":
			if len(val) != 64 || strings.ToLower(val) != val {
				err = errors.New("not 64 lower-case hex digits")
			}
			v.PayloadSHA256 = val
		}
		if err != nil {
			return nil, fmt.Errorf("vectors: %s: %w", k, err)
		}
	}
	for _, k := range keys {
		if k.required && !seen[k.name] {
			return nil, fmt.Errorf("vectors: missing %q", k.name)
		}
	}
	if (v.Expect == "reject") != (v.Reason != "") {
		return nil, errors.New("vectors: reason must be present exactly when expect is reject")
	}
	if (v.Expect == "ok") != (v.PayloadSHA256 != "") {
		return nil, errors.New("vectors: payload-sha256 must be present exactly when expect is ok")
	}
	if !strings.HasSuffix(body, "\n") {
		return nil, errors.New("vectors: missing final newline")
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	for i, l := range lines {
		if len(l) > lineLen || (i < len(lines)-1 && len(l) != lineLen) || (l == "" && len(lines) > 1) {
			return nil, fmt.Errorf("vectors: base64 line %d has length %d", i+1, len(l))
		}
	}
	env, err := base64.StdEncoding.Strict().DecodeString(strings.Join(lines, ""))
	if err != nil {
		return nil, fmt.Errorf("vectors: envelope: %w", err)
	}
	v.Envelope = env
	if !bytes.Equal(v.Marshal(), data) {
		return nil, errors.New("vectors: file is not in canonical form")
	}
	return v, nil
}

// Ext is the file name extension of vector files.
const Ext = ".vec"
