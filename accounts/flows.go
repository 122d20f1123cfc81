package accounts

// This file holds every rule of cross-account flows (exports, imports, activation tokens): the
// server enforces the same claims, the SDK applies them end to end, and the operator links the
// directories of accounts that share a stream.

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// ImportedAs maps subject, published in the exporting account and matching imp.Subject, to
// the subject the importing account receives it on: imp.LocalSubject with its wildcard
// references ("$n" is the n-th wildcard of imp.Subject, a "*" the next one in order, ">" the
// remainder), or the deprecated imp.To as a prefix, or the same subject.
func ImportedAs(imp *jwt.Import, subject string) (string, bool) {
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

// ImportOrigin is the inverse of ImportedAs: the exporter's subject of a subject received on
// through imp, or false when imp does not bring that subject in.
func ImportOrigin(imp *jwt.Import, local string) (string, bool) {
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
		return s, SubjectMatches(string(imp.Subject), s)
	}
	return local, SubjectMatches(string(imp.Subject), local)
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

// ExportsStream reports whether the account exports subject as a stream.
func ExportsStream(ac *jwt.AccountClaims, subject string) bool {
	for _, e := range ac.Exports {
		if e.Type == jwt.Stream && SubjectMatches(string(e.Subject), subject) {
			return true
		}
	}
	return false
}

// ImportsStream reports whether the account imports subject as a stream from account from.
func ImportsStream(ac *jwt.AccountClaims, from, subject string) bool {
	for _, imp := range ac.Imports {
		if imp.Type == jwt.Stream && imp.Account == from && SubjectMatches(string(imp.Subject), subject) {
			return true
		}
	}
	return false
}

// ImportsStreamFrom reports whether ac imports any stream from account from.
func ImportsStreamFrom(ac *jwt.AccountClaims, from string) bool {
	if ac == nil {
		return false
	}
	for _, imp := range ac.Imports {
		if imp.Type == jwt.Stream && imp.Account == from {
			return true
		}
	}
	return false
}

// ActivationValidity is the lifetime of the activation tokens [Account.Activation] mints.
const ActivationValidity = 365 * 24 * time.Hour

// Activation mints the activation token that lets account importer import subject (of export
// type et) from a, signed with a's first signing key, issued at a's clock ([Account.Now]) and
// valid for [ActivationValidity]. Exports marked token-required need it in the import.
func (a *Account) Activation(importer, subject string, et jwt.ExportType) (string, error) {
	if !nkeys.IsValidPublicAccountKey(importer) {
		return "", fmt.Errorf("%w: importer %q is not an account public key", ErrInvalidOption, importer)
	}
	if !ValidPattern(subject) {
		return "", fmt.Errorf("%w: import subject %q", ErrInvalidOption, subject)
	}
	signer, err := a.signer()
	if err != nil {
		return "", err
	}
	now := a.now()
	ac := jwt.NewActivationClaims(importer)
	ac.ImportSubject = jwt.Subject(subject)
	ac.ImportType = et
	ac.IssuerAccount = a.PublicKey()
	ac.IssuedAt = now.Unix()
	ac.Expires = now.Add(ActivationValidity).Unix()
	tok, err := ac.Encode(signer)
	if err != nil {
		return "", fmt.Errorf("accounts: signing the activation token: %w", err)
	}
	return tok, nil
}

// The operator account's views (docs/ARCHITECTURE.md, "The operator account").
//
// A view is a stream of the operator account ([OperatorAccountName]) that every tenant
// mirrors, filtered to its own part ("<subjects>.<tenant account>.>"), into a stream of its
// own that has no subjects. For each view the operator account exports, each export scoped to
// the importing account by an account token so that no tenant can ask for another's part:
//
//   - the JetStream consumer creation on the view's stream in its filtered form
//     ("$JS.API.CONSUMER.CREATE.<stream>.*.<subjects>.*.>"): the server sends a filtered
//     mirror's create there and refuses a request body whose filter differs from the subject;
//   - the deliver subjects of the mirrors' consumers ("<deliver>.*.>");
//   - the flow-control replies of the mirrors ("$JS.FC.<stream>.>").
//
// Each tenant imports exactly its own part, the consumer creation under [OperatorAPIPrefix].
// Nothing of it is granted to the tenant's services (their permissions name none of these
// subjects); only the tenant's mirror, created by the operator, uses the imports. To add a
// view, add an entry to operatorViews: the exports, the imports and [ImportsOperatorViews]
// follow.
type operatorView struct {
	name     string // prefix of the export and import names
	stream   string // the stream in the operator account
	subjects string // its subject prefix before the tenant token ("$KV.SEALBUS_DIRECTORY")
	deliver  string // deliver subject prefix before the tenant token
}

var operatorViews = []operatorView{
	{name: "sealbus-directory", stream: DirectoryStream, subjects: "$KV." + DirectoryBucket, deliver: strings.TrimSuffix(directoryDeliverPrefix, ".")},
}

// operatorImportPrefix marks the names of the exports and imports of the operator account's
// views; [Account.ImportOperatorViews] replaces the imports of that name.
const operatorImportPrefix = "sealbus-"

func tokens(s string) int { return strings.Count(s, ".") + 1 }

func (v operatorView) createSubject(account string) string {
	return "$JS.API.CONSUMER.CREATE." + v.stream + ".*." + v.subjects + "." + account + ".>"
}

func (v operatorView) exports() []*jwt.Export {
	return []*jwt.Export{
		{Name: v.name + "-create", Type: jwt.Service, Subject: jwt.Subject(v.createSubject("*")),
			AccountTokenPosition: uint(6 + tokens(v.subjects) + 1)},
		{Name: v.name + "-deliver", Type: jwt.Stream, Subject: jwt.Subject(v.deliver + ".*.>"),
			AccountTokenPosition: uint(tokens(v.deliver) + 1)},
		{Name: v.name + "-fc", Type: jwt.Service, Subject: jwt.Subject("$JS.FC." + v.stream + ".>")},
	}
}

func (v operatorView) imports(operatorAccount, tenant string) []*jwt.Import {
	create := v.createSubject(tenant)
	return []*jwt.Import{
		{Name: v.name + "-create", Type: jwt.Service, Account: operatorAccount, Subject: jwt.Subject(create),
			LocalSubject: jwt.RenamingSubject(OperatorAPIPrefix + strings.TrimPrefix(create, "$JS.API"))},
		{Name: v.name + "-deliver", Type: jwt.Stream, Account: operatorAccount, Subject: jwt.Subject(v.deliver + "." + tenant + ".>")},
		{Name: v.name + "-fc", Type: jwt.Service, Account: operatorAccount, Subject: jwt.Subject("$JS.FC." + v.stream + ".>")},
	}
}

// setOperatorExports replaces the operator account's view exports with the current ones.
func setOperatorExports(c *jwt.AccountClaims) {
	kept := c.Exports[:0]
	for _, e := range c.Exports {
		if !strings.HasPrefix(e.Name, operatorImportPrefix) {
			kept = append(kept, e)
		}
	}
	c.Exports = kept
	for _, v := range operatorViews {
		c.Exports.Add(v.exports()...)
	}
}

// ImportOperatorViews makes a's claims import every view of the operator account
// operatorAccount ("A...", see the operator account's views above), replacing imports of that
// kind from any other account. It reports whether the claims changed; call
// [Operator.Reissue] afterwards then.
func (a *Account) ImportOperatorViews(operatorAccount string) (bool, error) {
	if !nkeys.IsValidPublicAccountKey(operatorAccount) || operatorAccount == a.PublicKey() {
		return false, fmt.Errorf("%w: operator account %q", ErrInvalidOption, operatorAccount)
	}
	if ImportsOperatorViews(a.Claims, operatorAccount) {
		return false, nil
	}
	kept := a.Claims.Imports[:0]
	for _, imp := range a.Claims.Imports {
		if !strings.HasPrefix(imp.Name, operatorImportPrefix) {
			kept = append(kept, imp)
		}
	}
	a.Claims.Imports = kept
	for _, v := range operatorViews {
		a.Claims.Imports.Add(v.imports(operatorAccount, a.PublicKey())...)
	}
	return true, nil
}

// ImportsOperatorViews reports whether ac imports exactly the views of operatorAccount that
// sealbus sets up (and nothing else under their names).
func ImportsOperatorViews(ac *jwt.AccountClaims, operatorAccount string) bool {
	if ac == nil {
		return false
	}
	var want []*jwt.Import
	for _, v := range operatorViews {
		want = append(want, v.imports(operatorAccount, ac.Subject)...)
	}
	var got []*jwt.Import
	for _, imp := range ac.Imports {
		if strings.HasPrefix(imp.Name, operatorImportPrefix) {
			got = append(got, imp)
		}
	}
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if g.Name == w.Name && g.Type == w.Type && g.Account == w.Account && g.Subject == w.Subject && g.LocalSubject == w.LocalSubject && g.Token == "" {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// IsOperatorViewImport reports whether imp is one of the imports [Account.ImportOperatorViews]
// sets (by name): a tenant's link to the operator account, not a flow between tenants.
func IsOperatorViewImport(imp *jwt.Import) bool {
	return imp != nil && strings.HasPrefix(imp.Name, operatorImportPrefix)
}
