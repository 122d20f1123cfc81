package operator_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
)

// index reads a tenant's index from the operator account's bucket.
func index(t *testing.T, kv jetstream.KeyValue, account string) map[string]uint64 {
	t.Helper()
	e, err := kv.Get(ctx(t), account+"."+accounts.DirectoryIndexKey)
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Keys map[string]uint64 `json:"keys"`
	}
	if err := json.Unmarshal(e.Value(), &idx); err != nil {
		t.Fatal(err)
	}
	return idx.Keys
}

func keysWithPrefix(idx map[string]uint64, prefix string) []string {
	var out []string
	for k := range idx {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestDirectoryIndexCardsAndPeers: every write lists its key in the tenant's index at the
// sequence of its value and ends with the version; a service's rotated cards stay listed up
// to CardsKept, newest first; unchanged values are not written again; deleted cards leave the
// index; peers are listed under their own keys. The view shows each step.
func TestDirectoryIndexCardsAndPeers(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	tn := setupTenant(t, e, c, "shop")
	shop := tn.acct.PublicKey()
	djs, _ := jetstream.New(tn.dir)
	kv, err := djs.KeyValue(c, accounts.DirectoryBucket)
	if err != nil {
		t.Fatal(err)
	}

	ledger, err := tn.acct.NewService(accounts.ServiceSpec{Name: "ledger", Publish: []string{"ledger.>"}})
	if err != nil {
		t.Fatal(err)
	}
	svcs := []*accounts.Service{ledger}
	for range operator.CardsKept + 1 {
		r, err := tn.acct.RotateService(svcs[len(svcs)-1], 0)
		if err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, r)
	}
	for _, s := range svcs {
		if err := operator.PublishCard(c, tn.dir, "ledger", s.Card); err != nil {
			t.Fatal(err)
		}
	}
	idx := index(t, kv, shop)
	var want []string
	for _, s := range svcs[len(svcs)-operator.CardsKept:] {
		want = append(want, accounts.DirectoryCardKey("ledger", s.UserPublicKey()))
	}
	slices.Sort(want)
	if got := keysWithPrefix(idx, accounts.DirectoryCardPrefix("ledger")); !slices.Equal(got, want) {
		t.Fatalf("cards listed %v, want the newest %d: %v", got, operator.CardsKept, want)
	}
	for _, s := range svcs[:len(svcs)-operator.CardsKept] {
		if _, err := kv.Get(c, shop+"."+accounts.DirectoryCardKey("ledger", s.UserPublicKey())); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("card beyond the kept ones still readable: %v", err)
		}
	}
	current := accounts.DirectoryCardKey("ledger", svcs[len(svcs)-1].UserPublicKey())
	if err := operator.WaitView(c, tn.dir, tn.nc, shop); err != nil {
		t.Fatal(err)
	}
	if m := viewGet(t, c, tn.nc, shop, current); string(m.Data) != svcs[len(svcs)-1].Card || m.Header.Get(jetstream.SequenceHeader) == "" {
		t.Fatalf("current card in the view: %v", m.Header)
	}
	// The newest message of the view is the version, written after the index.
	if m := viewGet(t, c, tn.nc, shop, ">"); m.Header.Get(jetstream.SubjectHeader) != accounts.DirectorySubject(shop, accounts.DirectoryVersionKey) {
		t.Fatalf("newest entry %v, want the version", m.Header)
	}

	// Writing the same values again (a second push) stores nothing new.
	st, _ := djs.Stream(c, accounts.DirectoryStream)
	before, _ := st.Info(c)
	if err := operator.PublishCard(c, tn.dir, "ledger", svcs[len(svcs)-1].Card); err != nil {
		t.Fatal(err)
	}
	if err := operator.PutAccountJWT(c, tn.dir, tn.acct.JWT); err != nil {
		t.Fatal(err)
	}
	after, _ := st.Info(c)
	if idx2 := index(t, kv, shop); idx2[current] != idx[current] || idx2[accounts.DirectoryAccountKey] != idx[accounts.DirectoryAccountKey] {
		t.Fatal("an unchanged value was written again")
	}
	// Only the index and the version are rewritten (twice each).
	if n := after.State.LastSeq - before.State.LastSeq; n != 4 {
		t.Fatalf("%d messages for two unchanged writes, want 4 (index and version)", n)
	}

	// A deleted service leaves the index.
	temp, err := tn.acct.NewService(accounts.ServiceSpec{Name: "temp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := operator.PublishCard(c, tn.dir, "temp", temp.Card); err != nil {
		t.Fatal(err)
	}
	if err := operator.DeleteCard(c, tn.dir, shop, "temp"); err != nil {
		t.Fatal(err)
	}
	if got := keysWithPrefix(index(t, kv, shop), accounts.DirectoryCardPrefix("temp")); len(got) != 0 {
		t.Fatalf("deleted card still listed: %v", got)
	}
	if err := operator.DeleteCard(c, tn.dir, shop, "never-existed"); err != nil {
		t.Fatalf("deleting a missing card: %v", err)
	}

	// A peer account's JWT and cards, under peer keys.
	bank, err := e.op.NewAccount("bank", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	teller, err := bank.NewService(accounts.ServiceSpec{Name: "teller", Publish: []string{"bank.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := operator.PutPeer(c, tn.dir, shop, bank.JWT, map[string]string{"teller": teller.Card}); err != nil {
		t.Fatal(err)
	}
	idx = index(t, kv, shop)
	for _, k := range []string{accounts.PeerAccountKey(bank.PublicKey()), accounts.PeerCardKey(bank.PublicKey(), "teller", teller.UserPublicKey())} {
		if idx[k] == 0 {
			t.Errorf("peer key %s not listed", k)
		}
	}
	if err := operator.PutPeer(c, tn.dir, shop, bank.JWT, map[string]string{"other": teller.Card}); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Errorf("peer card under another name: %v", err)
	}
	if err := operator.PutPeer(c, tn.dir, bank.PublicKey(), bank.JWT, nil); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Errorf("peer copied into its own directory: %v", err)
	}
	// Another tenant's part is its own.
	if got := index(t, kv, shop); len(keysWithPrefix(got, bank.PublicKey())) != 0 {
		t.Fatalf("keys of another account in the index: %v", got)
	}
}

// TestSetupAccountReplacesLegacyDirectory: the directory bucket earlier versions kept inside
// each account (where services could make the server store junk under its keys) is removed,
// and a stream in the view's place that is not a view is refused.
func TestSetupAccountReplacesLegacyDirectory(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	tn := setupTenant(t, e, c, "shop")
	js, _ := jetstream.New(tn.nc)
	if _, err := js.CreateKeyValue(c, jetstream.KeyValueConfig{Bucket: accounts.DirectoryBucket, History: 64}); err != nil {
		t.Fatal(err)
	}
	if err := operator.SetupAccount(c, tn.nc, tn.acct, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(c, accounts.DirectoryStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("legacy directory bucket kept: %v", err)
	}
	if m := viewGet(t, c, tn.nc, tn.acct.PublicKey(), accounts.DirectoryAccountKey); string(m.Data) != tn.acct.JWT {
		t.Fatalf("view after the migration: %v", m.Header)
	}

	if err := js.DeleteStream(c, accounts.DirectoryView); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(c, jetstream.StreamConfig{Name: accounts.DirectoryView, Subjects: []string{"fake.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := operator.SetupAccount(c, tn.nc, tn.acct, 1); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Fatalf("a stream with subjects in the view's place: %v, want ErrInvalidSpec", err)
	}
}
