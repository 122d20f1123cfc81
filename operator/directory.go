package operator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
)

// The directory lives in the operator account (docs/ARCHITECTURE.md, "The directory"): one KV
// bucket, [accounts.DirectoryBucket], holds every tenant's keys under the tenant's account
// public key; each tenant reads its own part through [accounts.DirectoryView], a filtered
// mirror in its own account that no service can write, create consumers on or exhaust.
//
// Every change of a tenant's directory is written in three steps: the values (each only when
// it differs from the stored one), then the index ([accounts.DirectoryIndexKey]: every key the
// tenant's clients should read and the stream sequence of its value), then the version
// ([accounts.DirectoryVersionKey]). Clients poll the newest message of their view, read the
// index when it moved and get the keys whose sequence did.

// Retention of the directory.
const (
	// DirectoryHistory is the number of revisions the operator account's bucket keeps per
	// key. Only the operator writes it, so history serves the operator's inspection, not
	// clients (which read the last value of each key).
	DirectoryHistory = 4
	// CardsKept is how many cards of one service name (one per key pair, newest first) the
	// index lists: the current card and those that rotations replaced, whose grace periods
	// may still be running.
	CardsKept = 4
	// maxDirectoryBytes caps the directory bucket of the operator account (1/4 of a finite
	// disk limit at most).
	maxDirectoryBytes = 256 << 20
	// maxViewBytes caps a tenant's view (1/16 of a finite disk limit at most).
	maxViewBytes = 16 << 20
	// maxIndexKeys bounds the keys of one tenant's index.
	maxIndexKeys = 1 << 16
)

const directoryDescription = "sealbus directory: account JWTs and identity cards of every tenant"

// SetupOperatorAccount prepares the operator account on the server behind nc, which must be an
// admin connection of the operator account ([accounts.OperatorAccountName]): it creates the
// directory bucket, or brings an existing one to the sealbus settings (file storage, the given
// replicas, [DirectoryHistory] revisions per key, a size cap). Idempotent.
func SetupOperatorAccount(ctx context.Context, nc *nats.Conn, acct *accounts.Account, replicas int) error {
	if acct == nil || acct.Claims == nil || acct.Name != accounts.OperatorAccountName {
		return fmt.Errorf("%w: not the operator account", ErrInvalidSpec)
	}
	disk := acct.Claims.Limits.DiskStorage
	if disk == 0 {
		return fmt.Errorf("%w: the operator account has no JetStream disk storage", ErrInvalidSpec)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:      accounts.DirectoryBucket,
		Description: directoryDescription,
		History:     DirectoryHistory,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
		MaxBytes:    share(disk, maxDirectoryBytes, 4),
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
		return fmt.Errorf("operator: directory bucket: %w", err)
	}
	return nil
}

// directoryIndex is the JSON of a tenant's index: its keys and the stream sequence of each
// key's value.
type directoryIndex struct {
	Keys map[string]uint64 `json:"keys"`
}

// dirWriter writes one tenant's part of the directory through an admin connection of the
// operator account.
type dirWriter struct {
	kv      jetstream.KeyValue
	account string
	set     map[string]uint64 // keys written (or found unchanged) by this change, with their sequences
	drop    []string          // keys to leave out of the index
	dropPre []string          // prefixes of keys to leave out, except those in set
}

func openDirectory(ctx context.Context, nc *nats.Conn, account string) (*dirWriter, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	kv, err := js.KeyValue(ctx, accounts.DirectoryBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w (set up the operator account first): %w", ErrNoDirectory, err)
	}
	if err != nil {
		return nil, fmt.Errorf("operator: directory: %w", err)
	}
	return &dirWriter{kv: kv, account: account, set: map[string]uint64{}}, nil
}

func (w *dirWriter) full(key string) string { return w.account + "." + key }

// put stores value under key unless it is already the key's value.
func (w *dirWriter) put(ctx context.Context, key, value string) error {
	full := w.full(key)
	if e, err := w.kv.Get(ctx, full); err == nil && e.Operation() == jetstream.KeyValuePut && string(e.Value()) == value {
		w.set[key] = e.Revision()
		return nil
	} else if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("operator: directory key %s: %w", key, err)
	}
	rev, err := w.kv.PutString(ctx, full, value)
	if err != nil {
		return fmt.Errorf("operator: directory key %s: %w", key, err)
	}
	w.set[key] = rev
	return nil
}

// commit writes the index (compare-and-set on its revision, retried when another writer got
// there first) with the keys put, without the keys dropped, then the version. It deletes the
// values of keys it drops from the index.
func (w *dirWriter) commit(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		idx, rev, err := w.readIndex(ctx)
		if err != nil {
			return err
		}
		removed := w.apply(idx)
		if len(idx.Keys) > maxIndexKeys {
			return fmt.Errorf("%w: the directory of %s would hold more than %d keys", ErrInvalidSpec, w.account, maxIndexKeys)
		}
		b, err := json.Marshal(idx)
		if err != nil {
			return fmt.Errorf("operator: directory index: %w", err)
		}
		if rev == 0 {
			rev, err = w.kv.Create(ctx, w.full(accounts.DirectoryIndexKey), b)
		} else {
			rev, err = w.kv.Update(ctx, w.full(accounts.DirectoryIndexKey), b, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) && attempt < 16 {
			continue // another writer changed the index: merge again
		}
		if err != nil {
			return fmt.Errorf("operator: directory index of %s: %w", w.account, err)
		}
		for _, k := range removed {
			if err := w.kv.Delete(ctx, w.full(k)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("operator: directory key %s: %w", k, err)
			}
		}
		if _, err := w.kv.PutString(ctx, w.full(accounts.DirectoryVersionKey), strconv.FormatUint(rev, 10)); err != nil {
			return fmt.Errorf("operator: directory version of %s: %w", w.account, err)
		}
		return nil
	}
}

// apply merges this change into idx and returns the keys it removed.
func (w *dirWriter) apply(idx *directoryIndex) []string {
	var removed []string
	for k := range idx.Keys {
		_, keep := w.set[k]
		gone := slices.Contains(w.drop, k)
		for _, p := range w.dropPre {
			gone = gone || strings.HasPrefix(k, p) && !keep
		}
		if gone {
			delete(idx.Keys, k)
			removed = append(removed, k)
		}
	}
	for k, seq := range w.set {
		idx.Keys[k] = seq
	}
	slices.Sort(removed)
	return removed
}

func (w *dirWriter) readIndex(ctx context.Context) (*directoryIndex, uint64, error) {
	idx := &directoryIndex{Keys: map[string]uint64{}}
	e, err := w.kv.Get(ctx, w.full(accounts.DirectoryIndexKey))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return idx, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("operator: directory index of %s: %w", w.account, err)
	}
	if err := json.Unmarshal(e.Value(), idx); err != nil || idx.Keys == nil {
		// Only the operator writes the index; a broken one is rebuilt from this change on.
		idx = &directoryIndex{Keys: map[string]uint64{}}
	}
	return idx, e.Revision(), nil
}

// keepNewest drops from the index all but the newest CardsKept cards under prefix, counting
// the ones this change put.
func (w *dirWriter) keepNewest(ctx context.Context, prefix string) error {
	idx, _, err := w.readIndex(ctx)
	if err != nil {
		return err
	}
	type kv struct {
		key string
		seq uint64
	}
	var cards []kv
	for k, s := range idx.Keys {
		if strings.HasPrefix(k, prefix) {
			cards = append(cards, kv{k, s})
		}
	}
	for k, s := range w.set {
		if strings.HasPrefix(k, prefix) {
			cards = slices.DeleteFunc(cards, func(c kv) bool { return c.key == k })
			cards = append(cards, kv{k, s})
		}
	}
	slices.SortFunc(cards, func(a, b kv) int { return cmp.Compare(b.seq, a.seq) })
	for _, c := range cards[min(CardsKept, len(cards)):] {
		w.drop = append(w.drop, c.key)
	}
	return nil
}

// PutAccountJWT writes accountJWT under [accounts.DirectoryAccountKey] in its account's part of
// the directory. nc is an admin connection of the operator account ([Provisioner.DirectoryAdmin]).
// Readers verify it; storage is not trusted. A missing directory bucket is [ErrNoDirectory].
func PutAccountJWT(ctx context.Context, nc *nats.Conn, accountJWT string) error {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return fmt.Errorf("%w: not an account JWT: %v", ErrInvalidSpec, err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	w, err := openDirectory(ctx, nc, ac.Subject)
	if err != nil {
		return err
	}
	if err := w.put(ctx, accounts.DirectoryAccountKey, accountJWT); err != nil {
		return err
	}
	return w.commit(ctx)
}

// PublishCard writes a service's identity card into its account's part of the directory, under
// [accounts.DirectoryCardKey] (one key per key pair of the service), and keeps at most
// [CardsKept] cards of the service in the index, newest first. The card must decode, verify
// against its own issuer and name serviceName. nc is an admin connection of the operator
// account.
func PublishCard(ctx context.Context, nc *nats.Conn, serviceName, cardToken string) error {
	if !accounts.ValidName(serviceName) {
		return fmt.Errorf("%w: service name %q", ErrInvalidSpec, serviceName)
	}
	c, err := accounts.DecodeCard(cardToken)
	if err != nil {
		return fmt.Errorf("%w: card of %s: %w", ErrInvalidSpec, serviceName, err)
	}
	if c.Name != serviceName {
		return fmt.Errorf("%w: card names %q, not %q", ErrInvalidSpec, c.Name, serviceName)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	w, err := openDirectory(ctx, nc, c.Account)
	if err != nil {
		return err
	}
	if err := w.put(ctx, accounts.DirectoryCardKey(serviceName, c.UserKey), cardToken); err != nil {
		return fmt.Errorf("operator: publishing the card of %s: %w", serviceName, err)
	}
	if err := w.keepNewest(ctx, accounts.DirectoryCardPrefix(serviceName)); err != nil {
		return err
	}
	return w.commit(ctx)
}

// DeleteCard removes every card of a service of account ("A...") from the directory's index
// and deletes their values. Revocation is what makes a card unusable; clients that already
// hold the card keep it until a revocation in the account JWT or its expiry, and deleting only
// keeps clients that start later from loading it. A missing card is not an error.
func DeleteCard(ctx context.Context, nc *nats.Conn, account, serviceName string) error {
	if !accounts.ValidName(serviceName) {
		return fmt.Errorf("%w: service name %q", ErrInvalidSpec, serviceName)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	w, err := openDirectory(ctx, nc, account)
	if err != nil {
		return err
	}
	w.dropPre = append(w.dropPre, accounts.DirectoryCardPrefix(serviceName))
	return w.commit(ctx)
}

// newestSeq returns the stream sequence of the message a direct get on subject answers (0 when
// there is none). A stream that does not exist is nats.ErrNoResponders.
func newestSeq(ctx context.Context, nc *nats.Conn, subject string) (uint64, error) {
	m, err := nc.RequestWithContext(ctx, subject, nil)
	if err != nil {
		return 0, err
	}
	if st := m.Header.Get("Status"); st != "" {
		if st == "404" {
			return 0, nil
		}
		return 0, fmt.Errorf("operator: direct get %s: status %s %s", subject, st, m.Header.Get("Description"))
	}
	return strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
}

// WaitView waits until the tenant account's directory view (read through tenant, an admin
// connection of that account) holds everything the operator account's bucket (read through
// dir) holds for it: the view is a mirror and catches up within milliseconds, and a service
// connecting before it has would not find its card. A tenant without a view is not waited for.
func WaitView(ctx context.Context, dir, tenant *nats.Conn, account string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	want, err := newestSeq(ctx, dir, "$JS.API.DIRECT.GET."+accounts.DirectoryStream+"."+accounts.DirectoryFilter(account))
	if err != nil {
		return fmt.Errorf("operator: directory of %s: %w", account, err)
	}
	for {
		got, err := newestSeq(ctx, tenant, accounts.DirectoryGetSubject(account, ">"))
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return nil
		case err == nil && got >= want:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("operator: the directory view of %s did not catch up (at %d of %d): %w", account, got, want, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
