package format

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestValidSubject(t *testing.T) {
	good := []string{"a", "orders.created", "a.b.c", "A-b_c.9", "x." + strings.Repeat("y", MaxSubjectLen-2)}
	bad := []string{"", ".", "a.", ".a", "a..b", "a.*", "*", "a.>", ">", "a b", "a\tb", "é", "a*b", "x." + strings.Repeat("y", MaxSubjectLen-1)}
	for _, s := range good {
		if !ValidSubject([]byte(s)) {
			t.Errorf("%q rejected", s)
		}
	}
	for _, s := range bad {
		if ValidSubject([]byte(s)) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestValidContentType(t *testing.T) {
	good := []string{"", "application/json", "text/plain; charset=utf-8", strings.Repeat("a", MaxContentType)}
	bad := []string{" a", "a ", "a\nb", "\x7f", "ü", strings.Repeat("a", MaxContentType+1)}
	for _, s := range good {
		if !ValidContentType([]byte(s)) {
			t.Errorf("%q rejected", s)
		}
	}
	for _, s := range bad {
		if ValidContentType([]byte(s)) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestCanonicalX25519(t *testing.T) {
	k := func(first byte, mid byte, last byte) []byte {
		b := bytes.Repeat([]byte{mid}, 32)
		b[0], b[31] = first, last
		return b
	}
	cases := []struct {
		key  []byte
		want bool
	}{
		{make([]byte, 32), true},
		{k(0xec, 0xff, 0x7f), true},  // p-1
		{k(0xed, 0xff, 0x7f), false}, // p
		{k(0xff, 0xff, 0x7f), false}, // 2^255-1
		{k(0x00, 0x00, 0x80), false}, // top bit
		{k(0xff, 0xfe, 0x7f), true},  // below p
		{make([]byte, 31), false},
	}
	for i, c := range cases {
		if got := CanonicalX25519(c.key); got != c.want {
			t.Errorf("case %d: %v, want %v", i, got, c.want)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want error
	}{{nil, ErrMalformed}, {[]byte{1}, ErrMalformed}, {[]byte{2}, ErrVersion}, {[]byte{1, 2}, ErrSuite}, {[]byte{0, 1}, ErrVersion}, {[]byte{1, 1}, nil}} {
		err := CheckVersion(c.in)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%x: %v, want %v", c.in, err, c.want)
		}
	}
}
