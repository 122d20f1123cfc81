package consumers

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fakeMsg is a jetstream.Msg that records how it was settled.
type fakeMsg struct {
	subject string
	data    []byte
	header  nats.Header
	md      jetstream.MsgMetadata

	mu       sync.Mutex
	acks     int
	naks     int
	nakDelay time.Duration
	terms    int
	reason   string
	progress int
}

func newFakeMsg(subject string, data []byte, seq, delivered uint64) *fakeMsg {
	return &fakeMsg{subject: subject, data: data, header: nats.Header{}, md: jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Stream: seq, Consumer: seq},
		NumDelivered: delivered,
		Timestamp:    time.Now(),
		Stream:       "ORDERS",
		Consumer:     "billing",
	}}
}

func (f *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) { md := f.md; return &md, nil }
func (f *fakeMsg) Data() []byte                              { return f.data }
func (f *fakeMsg) Headers() nats.Header                      { return f.header }
func (f *fakeMsg) Subject() string                           { return f.subject }
func (f *fakeMsg) Reply() string                             { return "" }
func (f *fakeMsg) Ack() error                                { f.mu.Lock(); f.acks++; f.mu.Unlock(); return nil }
func (f *fakeMsg) DoubleAck(context.Context) error           { return f.Ack() }
func (f *fakeMsg) Nak() error                                { return f.NakWithDelay(0) }
func (f *fakeMsg) NakWithDelay(d time.Duration) error {
	f.mu.Lock()
	f.naks++
	f.nakDelay = d
	f.mu.Unlock()
	return nil
}
func (f *fakeMsg) InProgress() error { f.mu.Lock(); f.progress++; f.mu.Unlock(); return nil }
func (f *fakeMsg) Term() error       { return f.TermWithReason("") }
func (f *fakeMsg) TermWithReason(r string) error {
	f.mu.Lock()
	f.terms++
	f.reason = r
	f.mu.Unlock()
	return nil
}

func (f *fakeMsg) settlements() (acks, naks, terms int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acks, f.naks, f.terms
}

// message wraps a fake in a Message as the consumption loop does.
func message(f *fakeMsg) *Message {
	m, err := newMessage(f, "ACCOUNT")
	if err != nil {
		panic(err)
	}
	return m
}

// newMessage returns a message with the delivery fields of a JetStream message.
func newMessage(raw jetstream.Msg, account string) (*Message, error) {
	m := new(Message)
	if err := fillMessage(m, raw, account); err != nil {
		return nil, err
	}
	return m, nil
}
