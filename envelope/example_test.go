package envelope_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope"
)

func newIdentity() *envelope.Identity {
	user, _ := nkeys.CreateUser()
	curve, _ := nkeys.CreateCurveKeys()
	us, _ := user.Seed()
	cs, _ := curve.Seed()
	id, err := envelope.NewIdentity(us, cs)
	if err != nil {
		panic(err)
	}
	return id
}

func Example() {
	alice, bob := newIdentity(), newIdentity()
	acct, _ := nkeys.CreateAccount()
	account, _ := acct.PublicKey()

	// Alice seals to Bob's encryption key (from his identity card).
	bobKey, err := envelope.ParseRecipient(bob.EncryptionKey())
	if err != nil {
		panic(err)
	}
	sealer, err := envelope.NewSealer(alice)
	if err != nil {
		panic(err)
	}
	defer sealer.Close() // discards the epoch key when done
	sealed, err := sealer.Seal(envelope.Header{Account: account, Subject: "orders.created", ContentType: "text/plain"},
		[]byte("hello, bob"), []envelope.Recipient{bobKey})
	if err != nil {
		panic(err)
	}

	// Bob trusts Alice to publish on orders.> (normally: her card in the directory).
	policy := envelope.SenderPolicyFunc(func(account, sender, subject string, created time.Time) error {
		if sender != alice.SigningKey() {
			return envelope.ErrSenderUnknown
		}
		return nil
	})
	opener, err := envelope.NewOpener([]*envelope.Identity{bob}, policy)
	if err != nil {
		panic(err)
	}
	msg, err := opener.Open(sealed.Data, envelope.Delivery{Account: account, Subject: "orders.created", Stored: time.Now()})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(msg.Payload), msg.Sender == alice.SigningKey(), msg.ID == sealed.ID)

	// Delivered on another subject, the same bytes are refused.
	_, err = opener.Open(sealed.Data, envelope.Delivery{Account: account, Subject: "orders.deleted", Stored: time.Now()})
	var rej *envelope.RejectError
	if errors.As(err, &rej) {
		fmt.Println(rej.Reason)
	}
	// Output:
	// hello, bob true true
	// subject_mismatch
}

func ExampleSealer_SealBatch() {
	alice, bob := newIdentity(), newIdentity()
	acct, _ := nkeys.CreateAccount()
	account, _ := acct.PublicKey()
	sealer, _ := envelope.NewSealer(alice)
	defer sealer.Close()

	var msgs []envelope.Message
	for _, s := range []string{"orders.created", "orders.paid", "orders.shipped"} {
		msgs = append(msgs, envelope.Message{
			Header:  envelope.Header{Account: account, Subject: s},
			Payload: []byte(s),
			To:      []envelope.Recipient{bob.Recipient()},
		})
	}
	batch, err := sealer.SealBatch(msgs) // one Ed25519 signature for all three
	if err != nil {
		panic(err)
	}
	for _, s := range batch {
		info, _ := envelope.Inspect(s.Data)
		fmt.Printf("%s: leaf %d of %d, path %d\n", info.Subject, info.LeafIndex, info.TreeSize, info.PathLen)
	}
	// Output:
	// orders.created: leaf 0 of 3, path 2
	// orders.paid: leaf 1 of 3, path 2
	// orders.shipped: leaf 2 of 3, path 1
}
