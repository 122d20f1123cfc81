package envelope

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sealbus/sealbus/envelope/internal/format"
	"github.com/sealbus/sealbus/envelope/internal/merkle"
	"github.com/sealbus/sealbus/envelope/internal/suite"
)

// The service's Ed25519 key signs batch statements and, when it connects, whatever nonce the
// NATS server sent in INFO (nats.go signs []byte(info.Nonce), the JSON string decoded into a Go
// string, so always valid UTF-8). These tests show that no such signature is a batch signature
// (SPEC.md §5.3).

// natsSignature returns what nats.go sends in CONNECT when a server sends nonce in INFO: the
// Ed25519 signature, by the service's user key, of the nonce after JSON decoding.
func natsSignature(t *testing.T, id *Identity, nonce string) (signed []byte, sig []byte) {
	t.Helper()
	info, err := json.Marshal(map[string]any{"server_id": "EVIL", "nonce": nonce})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(info, &got); err != nil {
		t.Fatal(err)
	}
	signed = []byte(got.Nonce)
	if !utf8.Valid(signed) {
		t.Fatalf("a decoded nonce is not valid UTF-8")
	}
	return signed, ed25519.Sign(id.signPriv, signed)
}

// nonceCandidates are the strings a malicious server could send to obtain a signature that is
// as close as possible to statement st.
func nonceCandidates(st []byte) map[string]string {
	return map[string]string{
		"statement":            string(st),
		"statement-unprefixed": string(st[1:]),
		"statement-valid-utf8": strings.ToValidUTF8(string(st), ""),
		"statement-latin1-ff":  "\u00ff" + string(st[1:]),
	}
}

func withSignature(data, sig []byte) []byte {
	b := bytes.Clone(data)
	copy(b[len(b)-format.SignatureSize:], sig)
	return b
}

// TestNATSNonceSignatureNeverVerifies seals real batches of several sizes and, for every
// member, asks the sender's key for the signature a NATS client would give a server that sent
// the member's statement (or a near variant) as its nonce. None of those signatures verifies,
// while the signature over the statement itself does.
func TestNATSNonceSignatureNeverVerifies(t *testing.T) {
	w := newWorld(t)
	o := w.opener(t, w.bob, WithRootCache(0))
	for _, n := range []int{1, 2, 3, 5, 8, 64} {
		msgs := make([]Message, n)
		for i := range msgs {
			msgs[i] = Message{Header: w.header(), Payload: fmt.Appendf(nil, "m%d", i), To: []Recipient{w.bob.Recipient()}}
		}
		batch, err := w.sealer.SealBatch(msgs)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range batch {
			e := mustParse(t, s.Data)
			root, err := merkle.RootFromPath(merkle.LeafHash(s.Data[:e.SignedLen]), e.LeafIndex, e.TreeSize, e.Path)
			if err != nil {
				t.Fatal(err)
			}
			st := suite.Statement(e.TreeSize, root)
			if !ed25519.Verify(w.alice.signPriv.Public().(ed25519.PublicKey), st, e.Signature[:]) {
				t.Fatalf("batch %d member %d: the sealer did not sign suite.Statement", n, i)
			}
			if utf8.Valid(st) {
				t.Fatalf("batch %d member %d: statement is valid UTF-8", n, i)
			}
			for name, nonce := range nonceCandidates(st) {
				signed, sig := natsSignature(t, w.alice, nonce)
				if bytes.Equal(signed, st) {
					t.Fatalf("batch %d member %d, %s: the client signs the statement", n, i, name)
				}
				_, err := o.Open(withSignature(s.Data, sig), w.delivery)
				if !errors.Is(err, &RejectError{Reason: ReasonBadSignature}) {
					t.Fatalf("batch %d member %d, nonce %s: %v, want bad_signature", n, i, name, err)
				}
			}
			if _, err := o.Open(s.Data, w.delivery); err != nil {
				t.Fatalf("batch %d member %d: honest envelope: %v", n, i, err)
			}
		}
	}
}

// TestNonceOracleForgeryFails replays the attack a malicious NATS server would mount: it
// builds the signed part of an envelope in the victim's name (which needs no private key of
// the victim: the epoch key is the attacker's own), puts it in a tree of two with a sibling
// of its choice, and asks the victim's client to sign the statement as a nonce. The forgery is
// complete but for the signature (control: signed over the statement it opens), and the
// signature the client gives never makes it open.
func TestNonceOracleForgeryFails(t *testing.T) {
	w := newWorld(t)
	o := w.opener(t, w.bob, WithRootCache(0))
	// The attacker's sealer stands in for the attacker's own code: the bytes it produces for
	// header and payload depend on alice's public key only.
	single, err := w.sealer.Seal(Header{Account: w.account, Subject: "orders.created"}, []byte(`{"refund":1000000}`), []Recipient{w.bob.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	e := mustParse(t, single.Data)
	signed := single.Data[:e.SignedLen]
	leaf := merkle.LeafHash(signed)
	for i := 0; i < 200; i++ {
		sib := merkle.Hash(sha256.Sum256(fmt.Appendf(nil, "sibling %d", i)))
		root := merkle.NodeHash(&leaf, &sib)
		st := suite.Statement(2, root)
		forged := *e
		forged.LeafIndex, forged.TreeSize, forged.Path = 0, 2, []merkle.Hash{sib}

		copy(forged.Signature[:], ed25519.Sign(w.alice.signPriv, st))
		if _, err := o.Open(forged.Marshal(), w.delivery); err != nil {
			t.Fatalf("control: forged envelope with a real statement signature: %v", err)
		}
		for name, nonce := range nonceCandidates(st) {
			_, sig := natsSignature(t, w.alice, nonce)
			copy(forged.Signature[:], sig)
			if got, err := o.Open(forged.Marshal(), w.delivery); got != nil || !errors.Is(err, &RejectError{Reason: ReasonBadSignature}) {
				t.Fatalf("sibling %d, nonce %s: forged envelope %v, want bad_signature", i, name, err)
			}
		}
	}
}
