package bus

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
)

// importedAs maps subject, published in the exporting account and matching imp.Subject, to
// the subject the importing account receives it on: imp.LocalSubject with its wildcard
// references ("$n" is the n-th wildcard of imp.Subject, a "*" the next one in order, ">" the
// remainder), or the deprecated imp.To as a prefix, or the same subject.
func importedAs(imp *jwt.Import, subject string) (string, bool) {
	caps, tail, ok := capture(strings.Split(string(imp.Subject), "."), strings.Split(subject, "."))
	if !ok {
		return "", false
	}
	switch {
	case imp.LocalSubject != "":
		return expand(strings.Split(string(imp.LocalSubject), "."), caps, tail)
	case imp.To != "":
		return string(imp.To) + "." + subject, true
	}
	return subject, true
}

// importOrigin is the inverse of importedAs: the exporter's subject of a subject received on
// through imp, or false when imp does not bring that subject in.
func importOrigin(imp *jwt.Import, local string) (string, bool) {
	lt := strings.Split(local, ".")
	switch {
	case imp.LocalSubject != "":
		pat := strings.Split(string(imp.LocalSubject), ".")
		// Which wildcard of imp.Subject each pattern token stands for.
		refs := make([]int, len(pat))
		next := 1
		generic := make([]string, len(pat))
		for i, tok := range pat {
			switch {
			case tok == "*":
				refs[i], next = next, next+1
				generic[i] = "*"
			case len(tok) > 1 && tok[0] == '$':
				n, err := strconv.Atoi(tok[1:])
				if err != nil {
					generic[i] = tok
					continue
				}
				refs[i] = n
				generic[i] = "*"
			default:
				generic[i] = tok
			}
		}
		caps, tail, ok := capture(generic, lt)
		if !ok {
			return "", false
		}
		byRef := map[int]string{}
		ci := 0
		for i, tok := range generic {
			if tok == "*" {
				byRef[refs[i]] = caps[ci]
				ci++
			}
		}
		src := strings.Split(string(imp.Subject), ".")
		var ordered []string
		for n := 1; n <= countStars(src); n++ {
			v, ok := byRef[n]
			if !ok {
				return "", false
			}
			ordered = append(ordered, v)
		}
		return expand(src, ordered, tail)
	case imp.To != "":
		prefix := string(imp.To) + "."
		if !strings.HasPrefix(local, prefix) {
			return "", false
		}
		s := strings.TrimPrefix(local, prefix)
		return s, accounts.SubjectMatches(string(imp.Subject), s)
	}
	return local, accounts.SubjectMatches(string(imp.Subject), local)
}

// capture matches subject tokens against a pattern and returns the tokens matched by each "*"
// in order and the tokens matched by a final ">".
func capture(pattern, subject []string) (caps, tail []string, ok bool) {
	for i, p := range pattern {
		if p == ">" {
			if i == len(pattern)-1 && len(subject) > i {
				return caps, subject[i:], true
			}
			return nil, nil, false
		}
		if i >= len(subject) {
			return nil, nil, false
		}
		switch p {
		case "*":
			caps = append(caps, subject[i])
		default:
			if p != subject[i] {
				return nil, nil, false
			}
		}
	}
	return caps, nil, len(subject) == len(pattern)
}

// expand fills a pattern's wildcards: "*" takes the next capture in order, "$n" the n-th,
// ">" the tail.
func expand(pattern, caps, tail []string) (string, bool) {
	out := make([]string, 0, len(pattern)+len(tail))
	next := 0
	for _, tok := range pattern {
		switch {
		case tok == ">":
			if len(tail) == 0 {
				return "", false
			}
			out = append(out, tail...)
		case tok == "*":
			if next >= len(caps) {
				return "", false
			}
			out, next = append(out, caps[next]), next+1
		case len(tok) > 1 && tok[0] == '$':
			n, err := strconv.Atoi(tok[1:])
			if err != nil || n < 1 || n > len(caps) {
				return "", false
			}
			out = append(out, caps[n-1])
		default:
			out = append(out, tok)
		}
	}
	return strings.Join(out, "."), true
}

func countStars(tokens []string) int {
	n := 0
	for _, t := range tokens {
		if t == "*" {
			n++
		}
	}
	return n
}

// PutPeer writes a peer account's JWT and cards into the directory of the account js is
// connected to (an admin connection: services cannot write the directory), under
// PeerAccountKey and PeerCardKey. The operator calls it for each account that imports from,
// or exports to, this one, and again after the peer's JWT or cards change (revocation,
// rotation). Receivers verify everything up to their trusted operators, so the copy needs no
// protection beyond the directory's.
func PutPeer(ctx context.Context, js jetstream.JetStream, accountJWT string, cards map[string]string) error {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return fmt.Errorf("%w: peer account JWT does not decode", ErrInvalidOption)
	}
	kv, err := js.KeyValue(ctx, accounts.DirectoryBucket)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDirectory, err)
	}
	if _, err := kv.PutString(ctx, accounts.PeerAccountKey(ac.Subject), accountJWT); err != nil {
		return fmt.Errorf("bus: put peer account: %w", err)
	}
	for name, tok := range cards {
		if !accounts.ValidName(name) {
			return fmt.Errorf("%w: service name %q", ErrInvalidOption, name)
		}
		if _, err := kv.PutString(ctx, accounts.PeerCardKey(ac.Subject, name), tok); err != nil {
			return fmt.Errorf("bus: put peer card %s: %w", name, err)
		}
	}
	return nil
}
