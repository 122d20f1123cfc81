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

// RecordVector is one record conformance case (envelope/RECORD.md §8): verify Record with a
// policy that trusts exactly Writer, for any account, and reports it revoked for records whose
// time is at or after RevokedAt (when set), with MaxSize as the reader's limit (0: the
// default); expect either the listed values or the reason.
type RecordVector struct {
	Name             string
	Expect           string // "ok" or "reject"
	Reason           string // for reject
	Comment          string
	Writer           string    // U..., A... or O...: the one writer the policy trusts
	RevokedAt        time.Time // zero: not revoked
	MaxSize          int       // 0: the default
	Kind             string    // for ok: audit, dead_letter or replay_authorization
	RecordID         string    // for ok: 32 hex digits
	PayloadSHA256    string    // for ok
	AttachmentSHA256 string    // for ok (the hash of the empty string when there is none)
	Record           []byte
}

var recordKeys = []struct {
	name     string
	required bool
}{
	{"expect", true}, {"reason", false}, {"comment", true}, {"writer", true}, {"revoked-at", false},
	{"max-size", false}, {"kind", false}, {"record-id", false}, {"payload-sha256", false}, {"attachment-sha256", false},
}

// okOnly are the keys present exactly when expect is ok.
var okOnly = []string{"kind", "record-id", "payload-sha256", "attachment-sha256"}

// Marshal returns the file form: "key: value" lines in a fixed order, a blank line, the record
// in standard base64 wrapped at 76 columns.
func (v *RecordVector) Marshal() []byte {
	var b bytes.Buffer
	kv := func(k, val string) {
		if val != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, val)
		}
	}
	kv("expect", v.Expect)
	kv("reason", v.Reason)
	kv("comment", v.Comment)
	kv("writer", v.Writer)
	if !v.RevokedAt.IsZero() {
		kv("revoked-at", v.RevokedAt.UTC().Format(time.RFC3339Nano))
	}
	if v.MaxSize != 0 {
		kv("max-size", strconv.Itoa(v.MaxSize))
	}
	kv("kind", v.Kind)
	kv("record-id", v.RecordID)
	kv("payload-sha256", v.PayloadSHA256)
	kv("attachment-sha256", v.AttachmentSHA256)
	b.WriteByte('\n')
	s := base64.StdEncoding.EncodeToString(v.Record)
	for len(s) > lineLen {
		b.WriteString(s[:lineLen])
		b.WriteByte('\n')
		s = s[lineLen:]
	}
	b.WriteString(s)
	b.WriteByte('\n')
	return b.Bytes()
}

func hex64(s string) error {
	if len(s) != 64 || strings.ToLower(s) != s || strings.Trim(s, "0123456789abcdef") != "" {
		return errors.New("not 64 lower-case hex digits")
	}
	return nil
}

// ParseRecordVector reads a record vector file strictly, as Parse does for envelope vectors:
// known keys only, in order, at most once, the required ones present, reason only with reject
// and the ok-only keys exactly with ok, canonical form.
func ParseRecordVector(name string, data []byte) (*RecordVector, error) {
	v := &RecordVector{Name: name}
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
		for i < len(recordKeys) && recordKeys[i].name != k {
			if recordKeys[i].required {
				return nil, fmt.Errorf("vectors: key %q before required %q", k, recordKeys[i].name)
			}
			i++
		}
		if i == len(recordKeys) {
			return nil, fmt.Errorf("vectors: unknown, repeated or out-of-order key %q", k)
		}
		next = i + 1
		seen[k] = true
		var err error
		switch k {
		case "expect":
			if val != "ok" && val != "reject" {
				err = fmt.Errorf("expect %q", val)
			}
			v.Expect = val
		case "reason":
			v.Reason = val
		case "comment":
			v.Comment = val
		case "writer":
			v.Writer = val
		case "revoked-at":
			v.RevokedAt, err = time.Parse(time.RFC3339Nano, val)
		case "max-size":
			v.MaxSize, err = strconv.Atoi(val)
			if err == nil && (v.MaxSize <= 0 || strconv.Itoa(v.MaxSize) != val) {
				err = errors.New("not a canonical positive integer")
			}
		case "kind":
			v.Kind = val
		case "record-id":
			if len(val) != 32 || strings.Trim(val, "0123456789abcdef") != "" {
				err = errors.New("not 32 lower-case hex digits")
			}
			v.RecordID = val
		case "payload-sha256":
			err = hex64(val)
			v.PayloadSHA256 = val
		case "attachment-sha256":
			err = hex64(val)
			v.AttachmentSHA256 = val
		}
		if err != nil {
			return nil, fmt.Errorf("vectors: %s: %w", k, err)
		}
	}
	for _, k := range recordKeys {
		if k.required && !seen[k.name] {
			return nil, fmt.Errorf("vectors: missing %q", k.name)
		}
	}
	if (v.Expect == "reject") != (v.Reason != "") {
		return nil, errors.New("vectors: reason must be present exactly when expect is reject")
	}
	for _, k := range okOnly {
		if (v.Expect == "ok") != seen[k] {
			return nil, fmt.Errorf("vectors: %s must be present exactly when expect is ok", k)
		}
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
	rec, err := base64.StdEncoding.Strict().DecodeString(strings.Join(lines, ""))
	if err != nil {
		return nil, fmt.Errorf("vectors: record: %w", err)
	}
	v.Record = rec
	if !bytes.Equal(v.Marshal(), data) {
		return nil, errors.New("vectors: file is not in canonical form")
	}
	return v, nil
}

// RecordDir is the subdirectory of envelope/testdata that holds the record vectors.
const RecordDir = "records"
