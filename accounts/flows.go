package accounts

// This file holds every rule of cross-account flows (exports, imports, activation tokens): the
// server enforces the same claims, the SDK applies them end to end, and the operator links the
// directories of accounts that share a stream.

import (
	"crypto/sha256"
	"fmt"
	"slices"
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

// The operator account's sources (docs/MONITORING.md): the flows into the operator account,
// the other way round from its views. All their exports are private (token required) and
// activated for the operator account only, so no other account can import them.
//
//   - The system account exports its auth-error, connect and disconnect events
//     ([SystemEventExports]); the operator account imports them under
//     "sealbus.sys.autherr.<server id>", "sealbus.sys.connect.<account>" and
//     "sealbus.sys.disconnect.<account>" and records them in [SystemEventsStream].
//   - Every tenant mirrors each stream of operatorSources (its SEALBUS_AUDIT and SEALBUS_DLQ)
//     into a stream named after it ([ViewSource.Mirror]) and exports exactly what one sourcing
//     consumer on each mirror needs ([ViewExports]); the operator account's view stream of the
//     tenant ([ViewSource.View]) sources it: the extended consumer-create subject pinned to
//     that consumer's name and to the stream's subjects, its flow-control replies, and the
//     deliver subjects under [ViewDeliverPrefix]. The mirrors' names give each tenant's
//     flow-control import a subject of its own ("$JS.FC.<stream>.<consumer>.*"), so the
//     operator account's flow-control replies go to the tenant they are for; sourced straight
//     from SEALBUS_AUDIT, a stream every tenant names alike, they would fan out to every tenant
//     (the server appends a random suffix to the consumer's name, so the name cannot tell
//     accounts apart in a subject).
//
// To add a source (another sealbus stream of every tenant that the operator account reads),
// add an entry to operatorSources: the exports, the imports, the mirrors and the view streams
// ([operator.Provisioner.SetupAccount]) follow.

// ViewSource is one stream of every tenant that the operator-wide view reads.
type ViewSource struct {
	Kind   string // "audit" or "dlq": names the mirror, the view stream and the exports
	Origin string // the tenant's stream
	Filter string // its subjects
}

var operatorSources = []ViewSource{
	{Kind: "audit", Origin: AuditStream, Filter: AuditSubjectPrefix + ".>"},
	{Kind: "dlq", Origin: DLQStream, Filter: DLQSubjectPrefix + ".>"},
}

// ViewSources returns the tenant streams the operator-wide view reads (a copy).
func ViewSources() []ViewSource { return slices.Clone(operatorSources) }

// Mirror is the tenant's subject-less mirror of the source that the view sources from
// ([ViewSourceStream]).
func (v ViewSource) Mirror(tenant string) string { return ViewSourceStream(v.Kind, tenant) }

// View is the operator account's stream of the tenant's records of this source
// ([ViewAuditStream], [ViewDLQStream]).
func (v ViewSource) View(tenant string) string {
	return ViewStreamPrefix + strings.ToUpper(v.Kind) + "_" + tenant
}

// DeliverPrefix is the deliver subject prefix, in the tenant, of the view's sourcing consumer.
func (v ViewSource) DeliverPrefix(tenant string) string {
	return ViewDeliverPrefix(tenant) + "." + v.Kind
}

// ViewSourceConsumer is the name nats-server (2.14 and later) gives the sourcing consumer
// that stream viewStream of account ops asks for on its only source: "JS_SRC_" and a hash of
// the stream and account names (server/consumer.go, createSourcingConsumerHash; the source's
// server then appends "-" and a random suffix). The view's consumer-create export pins it; a
// server that named it otherwise would find no export to create it with, and the view
// stream would report the source's error instead of filling.
func ViewSourceConsumer(viewStream, ops string) string {
	return "JS_SRC_" + serverHash(serverHash(viewStream+" "+ops))
}

// serverHash is nats-server's getHash: 8 base-62 digits from the first bytes of SHA-256.
func serverHash(s string) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	sum := sha256.Sum256([]byte(s))
	out := make([]byte, 8)
	for i := range out {
		out[i] = digits[int(sum[i]%62)]
	}
	return string(out)
}

// ViewAPIPrefix is the JetStream API prefix under which the operator-owned account reaches
// account's sourcing API: "$JS.SBV.<account>.API".
func ViewAPIPrefix(account string) string { return "$JS.SBV." + account + ".API" }

// ViewExports are the exports tenant needs so that the operator account ops can source its
// streams of operatorSources into the view (see above).
func ViewExports(tenant, ops string) []*jwt.Export {
	var out []*jwt.Export
	for _, v := range operatorSources {
		mirror := v.Mirror(tenant)
		out = append(out,
			&jwt.Export{Name: "sealbus-view-" + v.Kind + "-create", Type: jwt.Service, TokenReq: true,
				Subject: jwt.Subject("$JS.API.CONSUMER.CREATE." + mirror + "." + ViewSourceConsumer(v.View(tenant), ops) + "." + v.Filter)},
			&jwt.Export{Name: "sealbus-view-" + v.Kind + "-fc", Type: jwt.Service, TokenReq: true,
				Subject: jwt.Subject("$JS.FC." + mirror + ".*.*")})
	}
	return append(out, &jwt.Export{Name: "sealbus-view-deliver", Type: jwt.Stream, TokenReq: true,
		Subject: jwt.Subject(ViewDeliverPrefix(tenant) + ".>")})
}

// ViewImports are the imports, with activation tokens signed by a, that let ops source a's
// audit and dead-letter streams (a must carry [ViewExports]).
func ViewImports(a *Account, ops string) ([]*jwt.Import, error) {
	var out []*jwt.Import
	for _, e := range ViewExports(a.PublicKey(), ops) {
		tok, err := a.Activation(ops, string(e.Subject), e.Type)
		if err != nil {
			return nil, err
		}
		imp := &jwt.Import{Name: e.Name + "-" + a.Name, Type: e.Type, Account: a.PublicKey(), Subject: e.Subject, Token: tok}
		if strings.HasPrefix(string(e.Subject), "$JS.API.") {
			imp.LocalSubject = jwt.RenamingSubject(ViewAPIPrefix(a.PublicKey()) + strings.TrimPrefix(string(e.Subject), "$JS.API"))
		}
		out = append(out, imp)
	}
	return out, nil
}

// systemEventFlows maps the system account's event subjects to where the operator-owned
// account receives them.
var systemEventFlows = []struct{ name, subject, local string }{
	{"sealbus-sys-autherr", AuthErrorEventSubject, SystemEventsSubjectPrefix + ".autherr.$1"},
	{"sealbus-sys-connect", ConnectEventSubject, SystemEventsSubjectPrefix + ".connect.$1"},
	{"sealbus-sys-disconnect", DisconnectEventSubject, SystemEventsSubjectPrefix + ".disconnect.$1"},
}

// SystemEventExports are the system account's exports of its auth-error and connection
// events (private: only accounts it activates may import them; they name other accounts'
// users and client addresses).
func SystemEventExports() []*jwt.Export {
	var out []*jwt.Export
	for _, f := range systemEventFlows {
		out = append(out, &jwt.Export{Name: f.name, Type: jwt.Stream, TokenReq: true, Subject: jwt.Subject(f.subject)})
	}
	return out
}

// SystemEventImports are ops's imports of those events, activated by sys (the system
// account).
func SystemEventImports(sys *Account, ops string) ([]*jwt.Import, error) {
	var out []*jwt.Import
	for _, f := range systemEventFlows {
		tok, err := sys.Activation(ops, f.subject, jwt.Stream)
		if err != nil {
			return nil, err
		}
		out = append(out, &jwt.Import{Name: f.name, Type: jwt.Stream, Account: sys.PublicKey(),
			Subject: jwt.Subject(f.subject), LocalSubject: jwt.RenamingSubject(f.local), Token: tok})
	}
	return out, nil
}

// AddExports adds to ac each export whose type and subject it does not have yet and reports
// whether it added any.
func AddExports(ac *jwt.AccountClaims, exports []*jwt.Export) bool {
	added := false
	for _, e := range exports {
		if !hasExport(ac, e) {
			ac.Exports.Add(e)
			added = true
		}
	}
	return added
}

// HasExports reports whether ac has an export of the type and subject of each of exports.
func HasExports(ac *jwt.AccountClaims, exports []*jwt.Export) bool {
	for _, e := range exports {
		if !hasExport(ac, e) {
			return false
		}
	}
	return true
}

func hasExport(ac *jwt.AccountClaims, e *jwt.Export) bool {
	return ac != nil && slices.ContainsFunc(ac.Exports, func(x *jwt.Export) bool { return x.Type == e.Type && x.Subject == e.Subject })
}

// IsViewSourceExport reports whether e is one of the exports of a tenant's view sources to the
// operator account ([ViewExports]), by name: a tenant's link to the operator account, not a
// flow between tenants.
func IsViewSourceExport(e *jwt.Export) bool {
	return e != nil && strings.HasPrefix(e.Name, "sealbus-view-")
}

// AddImports adds to ac each import whose type, account and subject it does not have yet,
// replacing one whose activation token expires within a quarter of [ActivationValidity], and
// reports whether it changed anything.
func AddImports(ac *jwt.AccountClaims, imports []*jwt.Import, now time.Time) bool {
	changed := false
	for _, imp := range imports {
		i := slices.IndexFunc(ac.Imports, func(x *jwt.Import) bool {
			return x.Type == imp.Type && x.Account == imp.Account && x.Subject == imp.Subject
		})
		switch {
		case i < 0:
			ac.Imports.Add(imp)
			changed = true
		case ac.Imports[i].Token != "" && activationExpiring(ac.Imports[i].Token, now):
			ac.Imports[i] = imp
			changed = true
		}
	}
	return changed
}

func activationExpiring(tok string, now time.Time) bool {
	c, err := jwt.DecodeActivationClaims(tok)
	return err != nil || (c.Expires != 0 && time.Unix(c.Expires, 0).Sub(now) < ActivationValidity/4)
}

// RemoveViewImports removes from ac (the operator account's claims) its imports of the view
// sources of tenant ([ViewImports]) and reports whether it removed any: for a tenant that is
// removed.
func RemoveViewImports(ac *jwt.AccountClaims, tenant string) bool {
	before := len(ac.Imports)
	ac.Imports = slices.DeleteFunc(ac.Imports, func(imp *jwt.Import) bool {
		return imp.Account == tenant && strings.HasPrefix(imp.Name, "sealbus-view-")
	})
	return len(ac.Imports) != before
}
