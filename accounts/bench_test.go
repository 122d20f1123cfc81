package accounts

import (
	"path/filepath"
	"testing"
)

func BenchmarkVerifyCard(b *testing.B) {
	f := newFixture(b)
	tr := f.trust()
	ac, err := tr.VerifyAccount(f.acc.JWT)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.VerifyCard(f.svc.Card, ac); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyService(b *testing.B) {
	f := newFixture(b)
	tr := f.trust()
	ac, _ := tr.VerifyAccount(f.acc.JWT)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.VerifyService(f.svc.Card, f.svc.UserJWT, ac); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAccount(b *testing.B) {
	f := newFixture(b)
	tr := f.trust()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.VerifyAccount(f.acc.JWT); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewService(b *testing.B) {
	f := newFixture(b)
	spec := f.svc.Spec
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.acc.NewService(spec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeystoreSaveService measures one encrypted write at the default
// scrypt cost (N=2^15, r=8, p=1): one key derivation per file written.
func BenchmarkKeystoreSaveService(b *testing.B) {
	f := newFixture(b)
	k, err := OpenKeystore(filepath.Join(b.TempDir(), "home"), testPass)
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	if err := k.SaveAccount(f.acc); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := k.SaveService(f.acc.Name, f.svc); err != nil {
			b.Fatal(err)
		}
	}
}
