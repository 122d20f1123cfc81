package vectors

import (
	"bytes"
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

var recordKeys = []headerKey{
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
	writeBody(&b, v.Record)
	return b.Bytes()
}

func hex64(s string) error {
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return errors.New("not 64 lower-case hex digits")
	}
	return nil
}

// ParseRecordVector reads a record vector file strictly, as Parse does for envelope vectors:
// reason only with reject, the ok-only keys exactly with ok, canonical form.
func ParseRecordVector(name string, data []byte) (*RecordVector, error) {
	vals, rec, err := readFile(data, recordKeys)
	if err != nil {
		return nil, err
	}
	v := &RecordVector{Name: name, Record: rec, Expect: vals["expect"], Reason: vals["reason"], Comment: vals["comment"], Writer: vals["writer"],
		Kind: vals["kind"], RecordID: vals["record-id"], PayloadSHA256: vals["payload-sha256"], AttachmentSHA256: vals["attachment-sha256"]}
	if v.Expect != "ok" && v.Expect != "reject" {
		return nil, fmt.Errorf("vectors: expect %q", v.Expect)
	}
	if r, ok := vals["revoked-at"]; ok {
		if v.RevokedAt, err = time.Parse(time.RFC3339Nano, r); err != nil {
			return nil, fmt.Errorf("vectors: revoked-at: %w", err)
		}
	}
	if m, ok := vals["max-size"]; ok {
		if v.MaxSize, err = positiveInt(m); err != nil {
			return nil, fmt.Errorf("vectors: max-size: %w", err)
		}
	}
	if id, ok := vals["record-id"]; ok && (len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "") {
		return nil, errors.New("vectors: record-id: not 32 lower-case hex digits")
	}
	for _, k := range []string{"payload-sha256", "attachment-sha256"} {
		if h, ok := vals[k]; ok && hex64(h) != nil {
			return nil, fmt.Errorf("vectors: %s: not 64 lower-case hex digits", k)
		}
	}
	if (v.Expect == "reject") != (v.Reason != "") {
		return nil, errors.New("vectors: reason must be present exactly when expect is reject")
	}
	for _, k := range okOnly {
		if _, seen := vals[k]; (v.Expect == "ok") != seen {
			return nil, fmt.Errorf("vectors: %s must be present exactly when expect is ok", k)
		}
	}
	if !bytes.Equal(v.Marshal(), data) {
		return nil, errors.New("vectors: file is not in canonical form")
	}
	return v, nil
}

// RecordDir is the subdirectory of envelope/testdata that holds the record vectors.
const RecordDir = "records"
