package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/sealbustest"
)

// tamperer writes a tenant's part of the directory the way a compromised broker, or anyone
// holding the operator account's credentials, could: raw KV writes in the operator account's
// bucket, listed in the tenant's index so that clients read them. Services cannot do any of
// this (TestInsiderCannotTouchTheDirectory and the accounts package's permission tests).
type tamperer struct {
	t       *testing.T
	nc      *nats.Conn
	kv      jetstream.KeyValue
	account string // tenant account public key
}

func newTamperer(t *testing.T, ctx context.Context, w *sealbustest.World, tenant string) *tamperer {
	t.Helper()
	nc, err := w.Admin(ctx, accounts.OperatorAccountName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, accounts.DirectoryBucket)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := w.Harness.Provisioner().Keystore.LoadAccount(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return &tamperer{t: t, nc: nc, kv: kv, account: acct.PublicKey()}
}

// write stores value (or a delete or purge marker) under the tenant's key and lists it in the
// index at its new sequence.
func (tp *tamperer) write(ctx context.Context, key string, value []byte, op jetstream.KeyValueOp) {
	tp.t.Helper()
	full := tp.account + "." + key
	var rev uint64
	var err error
	switch op {
	case jetstream.KeyValuePut:
		rev, err = tp.kv.Put(ctx, full, value)
	default:
		m := nats.NewMsg(accounts.DirectorySubject(tp.account, key))
		m.Header.Set("KV-Operation", map[jetstream.KeyValueOp]string{jetstream.KeyValueDelete: "DEL", jetstream.KeyValuePurge: "PURGE"}[op])
		js, _ := jetstream.New(tp.nc)
		var ack *jetstream.PubAck
		if ack, err = js.PublishMsg(ctx, m); err == nil {
			rev = ack.Sequence
		}
	}
	if err != nil {
		tp.t.Fatal(err)
	}
	tp.index(ctx, func(keys map[string]uint64) { keys[key] = rev })
}

// unlist takes key out of the tenant's index (clients that start later do not read it).
func (tp *tamperer) unlist(ctx context.Context, key string) {
	tp.t.Helper()
	tp.index(ctx, func(keys map[string]uint64) { delete(keys, key) })
}

func (tp *tamperer) index(ctx context.Context, edit func(map[string]uint64)) {
	tp.t.Helper()
	for {
		e, err := tp.kv.Get(ctx, tp.account+"."+accounts.DirectoryIndexKey)
		if err != nil {
			tp.t.Fatal(err)
		}
		var idx struct {
			Keys map[string]uint64 `json:"keys"`
		}
		if err := json.Unmarshal(e.Value(), &idx); err != nil {
			tp.t.Fatal(err)
		}
		edit(idx.Keys)
		b, _ := json.Marshal(idx)
		irev, err := tp.kv.Update(ctx, tp.account+"."+accounts.DirectoryIndexKey, b, e.Revision())
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			tp.t.Fatal(err)
		}
		if _, err := tp.kv.PutString(ctx, tp.account+"."+accounts.DirectoryVersionKey, strconv.FormatUint(irev, 10)); err != nil {
			tp.t.Fatal(err)
		}
		return
	}
}
