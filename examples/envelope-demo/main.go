// Command envelope-demo seals a message between two fresh identities, opens it, then plays an
// attacker who changes one byte at a time (or delivers the envelope where it does not belong)
// and prints the reason code each attempt gets. It exits 0 only if the honest envelope opened
// and every tamper was rejected.
//
//	go run ./examples/envelope-demo
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "envelope-demo: error:", err)
		os.Exit(1)
	}
}

func newIdentity() (*envelope.Identity, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	curve, err := nkeys.CreateCurveKeys()
	if err != nil {
		return nil, err
	}
	us, err := user.Seed()
	if err != nil {
		return nil, err
	}
	cs, err := curve.Seed()
	if err != nil {
		return nil, err
	}
	return envelope.NewIdentity(us, cs)
}

type attempt struct {
	name  string
	data  []byte
	d     envelope.Delivery
	by    *envelope.Opener
	valid bool // the honest open
}

func run() error {
	alice, err := newIdentity()
	if err != nil {
		return err
	}
	bob, err := newIdentity()
	if err != nil {
		return err
	}
	mallory, err := newIdentity()
	if err != nil {
		return err
	}
	acct, err := nkeys.CreateAccount()
	if err != nil {
		return err
	}
	account, err := acct.PublicKey()
	if err != nil {
		return err
	}

	sealer, err := envelope.NewSealer(alice)
	if err != nil {
		return err
	}
	const subject = "orders.created"
	payload := []byte(`{"order":42,"total":"7.50"}`)
	sealed, err := sealer.Seal(envelope.Header{Account: account, Subject: subject, ContentType: "application/json"},
		payload, []envelope.Recipient{bob.Recipient()})
	if err != nil {
		return err
	}
	info, err := envelope.Inspect(sealed.Data)
	if err != nil {
		return err
	}

	policy := envelope.SenderPolicyFunc(func(_, sender, _ string, _ time.Time) error {
		if sender != alice.SigningKey() {
			return envelope.ErrSenderUnknown
		}
		return nil
	})
	asBob, err := envelope.NewOpener([]*envelope.Identity{bob}, policy)
	if err != nil {
		return err
	}
	asMallory, err := envelope.NewOpener([]*envelope.Identity{mallory}, policy)
	if err != nil {
		return err
	}

	now := time.Now()
	d := envelope.Delivery{Account: account, Subject: subject, Stored: now}
	// Offsets from SPEC.md §3: the signature block is at the end, the ciphertext and its tag
	// just before it, the header fields at fixed places at the front.
	sigBlock := 4 + 4 + 1 + 32*info.PathLen + 64
	ctEnd := info.Size - sigBlock
	ctStart := ctEnd - (info.PayloadLen + 16)
	ctypeOff := 162 + 2 + len(subject) + 1
	flip := func(off int) []byte {
		b := bytes.Clone(sealed.Data)
		b[off] ^= 0x01
		return b
	}
	otherAcct, _ := nkeys.CreateAccount()
	otherAccount, _ := otherAcct.PublicKey()

	attempts := []attempt{
		{name: "honest delivery", data: sealed.Data, d: d, by: asBob, valid: true},
		{name: "version byte", data: flip(0), d: d, by: asBob},
		{name: "header: message id", data: flip(2), d: d, by: asBob},
		{name: "header: creation time", data: flip(25), d: d, by: asBob},
		{name: "header: account", data: flip(40), d: d, by: asBob},
		{name: "header: sender key", data: flip(70), d: d, by: asBob},
		{name: "header: epoch key", data: flip(100), d: d, by: asBob},
		{name: "header: key commitment", data: flip(140), d: d, by: asBob},
		{name: "header: content type", data: flip(ctypeOff), d: d, by: asBob},
		{name: "ciphertext", data: flip(ctStart + 3), d: d, by: asBob},
		{name: "tag", data: flip(ctEnd - 1), d: d, by: asBob},
		{name: "signature", data: flip(info.Size - 5), d: d, by: asBob},
		{name: "truncated by one byte", data: sealed.Data[:info.Size-1], d: d, by: asBob},
		{name: "one byte appended", data: append(bytes.Clone(sealed.Data), 0), d: d, by: asBob},
		{name: "delivered on orders.deleted", data: sealed.Data, d: envelope.Delivery{Account: account, Subject: "orders.deleted", Stored: now}, by: asBob},
		{name: "delivered in another account", data: sealed.Data, d: envelope.Delivery{Account: otherAccount, Subject: subject, Stored: now}, by: asBob},
		{name: "replayed 10 minutes later", data: sealed.Data, d: envelope.Delivery{Account: account, Subject: subject, Stored: now.Add(10 * time.Minute)}, by: asBob},
		{name: "read by a non-recipient", data: sealed.Data, d: d, by: asMallory},
	}

	fmt.Printf("sealbus envelope demo: alice → bob on %s, %d-byte payload, %d-byte envelope, id %s\n\n", subject, len(payload), info.Size, sealed.ID)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTEMPT\tRESULT\tOK")
	failures := 0
	for _, a := range attempts {
		got, err := a.by.Open(a.data, a.d)
		var result string
		var pass bool
		var rej *envelope.RejectError
		switch {
		case err == nil:
			result = fmt.Sprintf("opened: %s", got.Payload)
			pass = a.valid && bytes.Equal(got.Payload, payload)
		case errors.As(err, &rej):
			result = "rejected: " + string(rej.Reason)
			pass = !a.valid
		default:
			result = "error: " + err.Error()
		}
		mark := "yes"
		if !pass {
			mark = "NO"
			failures++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", a.name, result, mark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failures > 0 {
		return fmt.Errorf("%d of %d attempts did not behave as expected", failures, len(attempts))
	}
	fmt.Printf("\nall %d tampering attempts were rejected; the honest envelope opened\n", len(attempts)-1)
	return nil
}
