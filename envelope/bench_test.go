package envelope_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/envelope"
)

var benchSizes = []struct {
	name string
	n    int
}{{"128B", 128}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

var benchRecipients = []int{1, 4, 16}

type benchWorld struct {
	sender   *envelope.Sealer
	alice    *envelope.Identity
	rcpts    []*envelope.Identity
	to       []envelope.Recipient
	account  string
	now      time.Time
	delivery envelope.Delivery
}

func newBenchWorld(b *testing.B, recipients int) *benchWorld {
	b.Helper()
	w := &benchWorld{alice: ident(b, "alice"), account: account(b), now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	for i := 0; i < recipients; i++ {
		id := ident(b, fmt.Sprintf("r%d", i))
		w.rcpts = append(w.rcpts, id)
		w.to = append(w.to, id.Recipient())
	}
	var err error
	w.sender, err = envelope.NewSealer(w.alice, envelope.WithClock(func() time.Time { return w.now }))
	if err != nil {
		b.Fatal(err)
	}
	w.delivery = envelope.Delivery{Account: w.account, Subject: "bench.subject", Stored: w.now}
	return w
}

func (w *benchWorld) header() envelope.Header {
	return envelope.Header{Account: w.account, Subject: "bench.subject", ContentType: "application/octet-stream"}
}

func (w *benchWorld) opener(b *testing.B, opts ...envelope.Option) *envelope.Opener {
	b.Helper()
	o, err := envelope.NewOpener([]*envelope.Identity{w.rcpts[len(w.rcpts)-1]}, trust(w.alice.SigningKey()),
		append([]envelope.Option{envelope.WithClock(func() time.Time { return w.now })}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	return o
}

// BenchmarkSeal seals one message (a batch of one: one Ed25519 signature) with the epoch's
// wrap keys already cached.
func BenchmarkSeal(b *testing.B) {
	for _, sz := range benchSizes {
		for _, k := range benchRecipients {
			b.Run(fmt.Sprintf("%s/recipients=%d", sz.name, k), func(b *testing.B) {
				w := newBenchWorld(b, k)
				payload := make([]byte, sz.n)
				if _, err := w.sender.Seal(w.header(), payload, w.to); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := w.sender.Seal(w.header(), payload, w.to); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOpen opens a single-signature envelope with the root cache disabled, so every
// iteration pays the full verification (one Ed25519 verify); the unwrap key is cached.
func BenchmarkOpen(b *testing.B) {
	for _, sz := range benchSizes {
		for _, k := range benchRecipients {
			b.Run(fmt.Sprintf("%s/recipients=%d", sz.name, k), func(b *testing.B) {
				w := newBenchWorld(b, k)
				s, err := w.sender.Seal(w.header(), make([]byte, sz.n), w.to)
				if err != nil {
					b.Fatal(err)
				}
				o := w.opener(b, envelope.WithRootCache(0))
				if _, err := o.Open(s.Data, w.delivery); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := o.Open(s.Data, w.delivery); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOpenBatch compares opening a 1 KiB member of a batch of 64 whose root is already
// verified (no Ed25519) with opening a 1 KiB single-signature envelope.
func BenchmarkOpenBatch(b *testing.B) {
	b.Run("member-of-64-root-cached/1KiB", func(b *testing.B) {
		w := newBenchWorld(b, 1)
		msgs := make([]envelope.Message, 64)
		for i := range msgs {
			msgs[i] = envelope.Message{Header: w.header(), Payload: make([]byte, 1<<10), To: w.to}
		}
		batch, err := w.sender.SealBatch(msgs)
		if err != nil {
			b.Fatal(err)
		}
		o := w.opener(b)
		if _, err := o.Open(batch[0].Data, w.delivery); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(1 << 10)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := o.Open(batch[1+i%63].Data, w.delivery); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("single-signature/1KiB", func(b *testing.B) {
		w := newBenchWorld(b, 1)
		s, err := w.sender.Seal(w.header(), make([]byte, 1<<10), w.to)
		if err != nil {
			b.Fatal(err)
		}
		o := w.opener(b, envelope.WithRootCache(0))
		b.SetBytes(1 << 10)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := o.Open(s.Data, w.delivery); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSealBatch64 seals 64 messages of 1 KiB to one recipient under one signature; the
// reported time is per batch.
func BenchmarkSealBatch64(b *testing.B) {
	w := newBenchWorld(b, 1)
	msgs := make([]envelope.Message, 64)
	for i := range msgs {
		msgs[i] = envelope.Message{Header: w.header(), Payload: make([]byte, 1<<10), To: w.to}
	}
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.sender.SealBatch(msgs); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRecords are the record shapes measured: an audit event (about 400 bytes of JSON) and
// dead letters carrying a 1 KiB and a 64 KiB envelope.
var benchRecords = []struct {
	name       string
	kind       envelope.RecordKind
	payload    int
	attachment int
}{{"audit", envelope.RecordAudit, 400, 0}, {"deadletter-1KiB", envelope.RecordDeadLetter, 300, 1 << 10}, {"deadletter-64KiB", envelope.RecordDeadLetter, 300, 64 << 10}}

// benchCard stands in for a service's identity card (about 700 bytes, like a real one).
var benchCard = strings.Repeat("eyJhbGciOiJlZDI1NTE5LW5rZXkifQ", 23)

func benchRecord(b *testing.B, id *envelope.Identity, kind envelope.RecordKind, payload, attachment int) []byte {
	b.Helper()
	data, err := id.SignRecord(envelope.Record{Kind: kind, Account: account(b), WriterName: "billing", Credential: benchCard,
		Payload: []byte(strings.Repeat("x", payload)), Attachment: make([]byte, attachment)})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkRecordSign(b *testing.B) {
	id := ident(b, "alice")
	for _, c := range benchRecords {
		b.Run(c.name, func(b *testing.B) {
			r := envelope.Record{Kind: c.kind, Account: account(b), WriterName: "billing", Credential: benchCard,
				Payload: []byte(strings.Repeat("x", c.payload)), Attachment: make([]byte, c.attachment)}
			b.SetBytes(int64(c.payload + c.attachment))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := id.SignRecord(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRecordVerify(b *testing.B) {
	id := ident(b, "alice")
	policy := envelope.RecordPolicyFunc(func(r *envelope.Record) error {
		if r.Writer != id.SigningKey() {
			return envelope.ErrWriterUnknown
		}
		return nil
	})
	for _, c := range benchRecords {
		b.Run(c.name, func(b *testing.B) {
			data := benchRecord(b, id, c.kind, c.payload, c.attachment)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := envelope.VerifyRecord(data, policy, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
