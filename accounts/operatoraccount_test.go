package accounts

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
)

func TestOperatorAccountAndTenantImports(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{SystemAccountName, OperatorAccountName, "sealbus"} {
		if _, err := f.op.NewAccount(name, DefaultLimits()); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("NewAccount(%q): %v, want ErrInvalidOption", name, err)
		}
	}
	opAcct, err := f.op.NewOperatorAccount()
	if err != nil {
		t.Fatal(err)
	}
	if opAcct.Name != OperatorAccountName {
		t.Fatalf("name %q", opAcct.Name)
	}
	if _, err := (Trust{Operators: []string{f.op.PublicKey()}}).VerifyAccount(opAcct.JWT); err != nil {
		t.Fatalf("operator account JWT: %v", err)
	}
	// The exports: consumer creation in its filtered form, scoped by the importer's account
	// token, the deliver subjects, scoped the same way, and flow control.
	want := map[string]struct {
		subject string
		typ     jwt.ExportType
		pos     uint
	}{
		"sealbus-directory-create":  {"$JS.API.CONSUMER.CREATE.KV_SEALBUS_DIRECTORY.*.$KV.SEALBUS_DIRECTORY.*.>", jwt.Service, 9},
		"sealbus-directory-deliver": {"sealbus.directory.deliver.*.>", jwt.Stream, 4},
		"sealbus-directory-fc":      {"$JS.FC.KV_SEALBUS_DIRECTORY.>", jwt.Service, 0},
	}
	if len(opAcct.Claims.Exports) != len(want) {
		t.Fatalf("exports %d, want %d", len(opAcct.Claims.Exports), len(want))
	}
	for _, e := range opAcct.Claims.Exports {
		w, ok := want[e.Name]
		if !ok || string(e.Subject) != w.subject || e.Type != w.typ || e.AccountTokenPosition != w.pos || e.TokenReq {
			t.Errorf("export %+v, want %+v", e, w)
		}
	}
	if opAcct.UpdateOperatorExports() {
		t.Error("exports changed on a second update")
	}

	// A tenant imports exactly its own part.
	tenant := f.acc
	if ImportsOperatorViews(tenant.Claims, opAcct.PublicKey()) {
		t.Fatal("a new account already imports the views")
	}
	changed, err := tenant.ImportOperatorViews(opAcct.PublicKey())
	if err != nil || !changed {
		t.Fatalf("import: %v %v", changed, err)
	}
	if err := f.op.Reissue(tenant); err != nil {
		t.Fatalf("reissue with the imports: %v", err)
	}
	if !ImportsOperatorViews(tenant.Claims, opAcct.PublicKey()) {
		t.Fatal("imports not recognised")
	}
	if changed, err := tenant.ImportOperatorViews(opAcct.PublicKey()); err != nil || changed {
		t.Fatalf("second import changed the claims: %v %v", changed, err)
	}
	pub := tenant.PublicKey()
	for _, imp := range tenant.Claims.Imports {
		if !IsOperatorViewImport(imp) || imp.Account != opAcct.PublicKey() || !strings.Contains(string(imp.Subject), pub) && imp.Name != "sealbus-directory-fc" {
			t.Errorf("import %+v is not scoped to the tenant", imp)
		}
	}
	i := slices.IndexFunc(tenant.Claims.Imports, func(imp *jwt.Import) bool { return imp.Name == "sealbus-directory-create" })
	if i < 0 || string(tenant.Claims.Imports[i].LocalSubject) != OperatorAPIPrefix+".CONSUMER.CREATE.KV_SEALBUS_DIRECTORY.*.$KV.SEALBUS_DIRECTORY."+pub+".>" {
		t.Fatalf("create import %+v", tenant.Claims.Imports)
	}

	// Another operator account (a re-created one) replaces the imports instead of adding to
	// them; the tenant's own imports stay.
	tenant.Claims.Imports.Add(&jwt.Import{Name: "partner", Type: jwt.Stream, Account: opAcct.PublicKey(), Subject: "partner.>"})
	other, err := f.op.NewOperatorAccount()
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := tenant.ImportOperatorViews(other.PublicKey()); err != nil || !changed {
		t.Fatalf("re-import: %v %v", changed, err)
	}
	if ImportsOperatorViews(tenant.Claims, opAcct.PublicKey()) || !ImportsOperatorViews(tenant.Claims, other.PublicKey()) {
		t.Fatal("imports of the old operator account kept")
	}
	if len(tenant.Claims.Imports) != 4 || !slices.ContainsFunc(tenant.Claims.Imports, func(imp *jwt.Import) bool { return imp.Name == "partner" }) {
		t.Fatalf("imports %d", len(tenant.Claims.Imports))
	}
	if _, err := tenant.ImportOperatorViews(tenant.PublicKey()); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("importing from itself: %v", err)
	}
	if _, err := tenant.ImportOperatorViews("not-a-key"); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("importing from a bad key: %v", err)
	}
}

func TestServiceLimitsInUserJWT(t *testing.T) {
	f := newFixture(t)
	// Defaults: finite subscriptions and payload, one connection quota tag.
	uc, err := jwt.DecodeUserClaims(f.svc.UserJWT)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := ServiceLimitsOf(uc)
	if !ok || got != DefaultServiceLimits() {
		t.Fatalf("default limits %+v %v, want %+v", got, ok, DefaultServiceLimits())
	}
	if uc.Limits.Data != jwt.NoLimit {
		t.Errorf("data limit %d: the server does not enforce it, so sealbus does not claim one", uc.Limits.Data)
	}
	if !uc.Tags.Contains(ConnectionQuotaTag + "16") {
		t.Errorf("tags %v", uc.Tags)
	}
	// Per service.
	lim := ServiceLimits{Connections: 3, Subscriptions: 40, MaxPayload: 64 << 10}
	svc, err := f.acc.NewService(ServiceSpec{Name: "small", Publish: []string{"small.x"}, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	uc, _ = jwt.DecodeUserClaims(svc.UserJWT)
	if got, ok := ServiceLimitsOf(uc); !ok || got != lim {
		t.Fatalf("limits %+v %v, want %+v", got, ok, lim)
	}
	if uc.Limits.Subs != 40 || uc.Limits.Payload != 64<<10 {
		t.Fatalf("nats limits %+v", uc.Limits.NatsLimits)
	}
	// A partial spec takes the defaults for the rest.
	if uc0, _ := jwt.DecodeUserClaims(f.svc.UserJWT); uc0.Limits.Payload != jwt.NoLimit {
		t.Errorf("default payload limit %d, want the account's (unlimited in the user JWT)", uc0.Limits.Payload)
	}
	if r := (ServiceLimits{Connections: 2}).Resolved(); r != (ServiceLimits{Connections: 2, Subscriptions: 128}) {
		t.Fatalf("resolved %+v", r)
	}
	for _, bad := range []ServiceLimits{{Connections: -1}, {Subscriptions: -1}, {MaxPayload: -1}, {MaxPayload: 100}} {
		if _, err := f.acc.NewService(ServiceSpec{Name: "bad", Limits: bad}); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("limits %+v: %v", bad, err)
		}
	}
	// The keystore stores the limits and refuses a spec whose limits differ from the JWT's.
	ks := openTestStore(t, t.TempDir(), nil, WithUnencrypted())
	if err := ks.SaveAccount(f.acc); err != nil {
		t.Fatal(err)
	}
	if err := ks.SaveService(f.acc.Name, svc); err != nil {
		t.Fatal(err)
	}
	back, err := ks.LoadService(f.acc.Name, "small")
	if err != nil {
		t.Fatal(err)
	}
	if back.Spec.Limits != lim {
		t.Fatalf("stored limits %+v", back.Spec.Limits)
	}
	back.Spec.Limits.Connections = 1000
	if err := ks.SaveService(f.acc.Name, back); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.LoadService(f.acc.Name, "small"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a spec with a quota its JWT does not carry loaded: %v", err)
	}
	// Unsealbus-like JWTs have no per-service limits.
	for _, mutate := range []func(*jwt.UserClaims){
		func(uc *jwt.UserClaims) { uc.Tags = nil },
		func(uc *jwt.UserClaims) { uc.Tags = jwt.TagList{ConnectionQuotaTag + "x"} },
		func(uc *jwt.UserClaims) { uc.Tags = jwt.TagList{ConnectionQuotaTag + "0"} },
		func(uc *jwt.UserClaims) { uc.Tags = jwt.TagList{ConnectionQuotaTag + "007"} },
		func(uc *jwt.UserClaims) { uc.Limits.Subs = jwt.NoLimit },
		func(uc *jwt.UserClaims) { uc.Limits.Payload = 100 },
	} {
		c, _ := jwt.DecodeUserClaims(svc.UserJWT)
		mutate(c)
		if l, ok := ServiceLimitsOf(c); ok {
			t.Errorf("limits %+v accepted from %+v %v", l, c.Limits, c.Tags)
		}
	}
}
