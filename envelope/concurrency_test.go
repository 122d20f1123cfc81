package envelope

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentUse seals and opens from many goroutines with shared Sealer and Opener
// (run with -race to check the locking).
func TestConcurrentUse(t *testing.T) {
	w := newWorld(t)
	s, err := NewSealer(w.alice)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpener([]*Identity{w.bob}, allowOnly(w.alice.SigningKey()))
	if err != nil {
		t.Fatal(err)
	}
	d := Delivery{Account: w.account, Subject: "orders.created"}
	to := []Recipient{w.bob.Recipient(), w.carol.Recipient()}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				p := fmt.Appendf(nil, "g%d-i%d", g, i)
				var out []Sealed
				var err error
				if i%2 == 0 {
					var sl Sealed
					sl, err = s.Seal(w.header(), p, to)
					if err != nil {
						errs <- err
						return
					}
					out = []Sealed{sl}
				} else {
					out, err = s.SealBatch([]Message{{Header: w.header(), Payload: p, To: to}, {Header: w.header(), Payload: p, To: to}})
					if err != nil {
						errs <- err
						return
					}
				}
				for _, sl := range out {
					got, err := o.Open(sl.Data, d)
					if err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(got.Payload, p) {
						errs <- fmt.Errorf("payload mismatch")
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
