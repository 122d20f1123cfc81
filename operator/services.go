package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
)

// ServiceChange is how [Provisioner.AddService] and [Provisioner.EditService] apply a spec.
type ServiceChange struct {
	// Filters are explicit consumer filters (each must be covered by the service's subscribe
	// subjects and by the stream); without one, a durable's filter is [ConsumerFilter].
	Filters map[accounts.ConsumerRef][]string
	// Push applies the change on the server too: the spec is first checked against the
	// server's streams, and nothing is saved when that check fails.
	Push bool
	// Grace is how long an edited service's old curve key still opens envelopes (edit only).
	Grace time.Duration
}

// ServiceOutcome is what a service change did.
type ServiceOutcome struct {
	Service   *accounts.Service
	Account   *accounts.Account // the account, reissued when the change revoked a key
	CredsPath string
	Consumers []ConsumerResult // with Push: what happened to each declared durable
	Removed   []ConsumerResult // with Push: durables deleted because no service declares them any more
	Peers     []PeerCopy       // with Push: directories of accounts sharing a stream, updated ([Provisioner.SyncPeers])
	// Partial is set when the keystore and the account JWT were changed but a later server
	// step failed (the error says which); `sealbus push` finishes it.
	Partial bool
}

// InUseError refuses to remove something others still use, naming them.
type InUseError struct {
	What string   // "account shop", "stream ORDERS"
	By   []string // who uses it: services, accounts, durables
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("operator: %s is in use by %s", e.What, strings.Join(e.By, ", "))
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// checkServiceSpec validates spec and filters without the server: the spec itself
// (accounts.ServiceSpec.Validate), each filter subject covered by a subscribe subject, and no
// durable declared by another service of the account (a durable belongs to one service).
func (p *Provisioner) checkServiceSpec(account string, spec accounts.ServiceSpec, filters map[accounts.ConsumerRef][]string) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	for ref, fs := range filters {
		if !slices.Contains(spec.Consumers, ref) {
			return fmt.Errorf("%w: filter for %s:%s, which the service does not declare", ErrInvalidSpec, ref.Stream, ref.Durable)
		}
		for _, f := range fs {
			if err := accounts.CheckAppSubject("consumer filter", f); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
			}
			if !slices.ContainsFunc(spec.Subscribe, func(s string) bool { return accounts.SubjectSubset(f, s) }) {
				return fmt.Errorf("%w: filter %s of %s:%s is not covered by the service's subscribe subjects %v (it could not open those messages)", ErrInvalidSpec, f, ref.Stream, ref.Durable, spec.Subscribe)
			}
		}
	}
	names, err := p.Keystore.ListServices(account)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == spec.Name {
			continue
		}
		other, err := p.Keystore.ServiceSpec(account, n)
		if err != nil {
			return err
		}
		for _, ref := range spec.Consumers {
			if slices.Contains(other.Consumers, ref) {
				return fmt.Errorf("%w: durable %s:%s already belongs to service %s", ErrInvalidSpec, ref.Stream, ref.Durable, n)
			}
		}
	}
	return nil
}

// CheckConsumers checks a service's declared durables against the server behind nc (an admin
// connection of its account) without changing anything: each stream exists ([*StreamNotFoundError]
// naming the account's streams otherwise), each durable's filter is not empty and lies in the
// stream's subjects. It returns the filter each durable would get.
func CheckConsumers(ctx context.Context, nc *nats.Conn, spec accounts.ServiceSpec, filters map[accounts.ConsumerRef][]string) (map[accounts.ConsumerRef][]string, error) {
	out := map[accounts.ConsumerRef][]string{}
	for _, ref := range spec.Consumers {
		subjects, err := StreamSubjects(ctx, nc, ref.Stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, streamNotFound(ctx, nc, ref.Stream, err)
		}
		if err != nil {
			return nil, err
		}
		f := filters[ref]
		if len(f) == 0 {
			f = ConsumerFilter(spec.Subscribe, subjects)
		}
		if len(f) == 0 {
			return nil, fmt.Errorf("%w: service %s subscribes to %v, none of which is in stream %s (subjects %v): durable %s would deliver nothing",
				ErrInvalidSpec, spec.Name, spec.Subscribe, ref.Stream, subjects, ref.Durable)
		}
		for _, s := range f {
			if !slices.ContainsFunc(subjects, func(ss string) bool { return accounts.SubjectSubset(s, ss) }) {
				return nil, fmt.Errorf("%w: filter %s of %s:%s is not in the stream's subjects %v", ErrInvalidSpec, s, ref.Stream, ref.Durable, subjects)
			}
		}
		out[ref] = f
	}
	return out, nil
}

// AddService creates a service the safe way: the spec is validated (and, with change.Push,
// checked against the server: streams exist, filters match) before anything is saved; then the
// service is saved with its creds file and, with Push, its card published, its durables
// created and the directories of the accounts sharing a stream with it updated (Peers). When a
// step up to the durables fails, the keystore is put back as it was (and a card or durable
// already made on the server is removed), so a typo never leaves a half-made service behind; a
// later failure leaves it saved and published in part (Partial, with the error). An existing
// service of that name is [accounts.ErrExists].
func (p *Provisioner) AddService(ctx context.Context, account string, spec accounts.ServiceSpec, change ServiceChange) (*ServiceOutcome, error) {
	if _, err := p.Keystore.LoadService(account, spec.Name); err == nil {
		return nil, fmt.Errorf("%w: service %q in account %q", accounts.ErrExists, spec.Name, account)
	} else if !errors.Is(err, accounts.ErrNotFound) {
		return nil, err
	} else if _, err := p.Keystore.LoadAccount(account); err != nil {
		return nil, err
	}
	if err := p.checkServiceSpec(account, spec, change.Filters); err != nil {
		return nil, err
	}
	var nc *nats.Conn
	if change.Push {
		var err error
		if nc, err = p.Admin(ctx, account); err != nil {
			return nil, err
		}
		defer nc.Close()
		if _, err := CheckConsumers(ctx, nc, spec, change.Filters); err != nil {
			return nil, err
		}
	}
	snap, err := p.Keystore.Snapshot(account)
	if err != nil {
		return nil, err
	}
	svc, path, err := p.CreateService(account, spec)
	if err != nil {
		return nil, errors.Join(err, snap.Restore())
	}
	out := &ServiceOutcome{Service: svc, CredsPath: path}
	if !change.Push {
		snap.Discard()
		return out, nil
	}
	acct, err := p.Keystore.LoadAccount(account)
	if err != nil {
		return nil, errors.Join(err, snap.Restore())
	}
	out.Account = acct
	// The service's evidence subjects first: its first records must find their stream.
	if _, err := p.setupEvidence(ctx, nc, acct); err != nil {
		return nil, errors.Join(fmt.Errorf("operator: service %s not saved: %w", spec.Name, err), snap.Restore())
	}
	dir, err := p.DirectoryAdmin(ctx)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("operator: service %s not saved: %w", spec.Name, err), snap.Restore())
	}
	defer dir.Close()
	if err := PublishCard(ctx, dir, svc.Spec.Name, svc.Card); err != nil {
		return nil, errors.Join(fmt.Errorf("operator: service %s not saved: %w", spec.Name, err), snap.Restore())
	}
	out.Consumers, err = ensureConsumers(ctx, nc, svc, change.Filters, false)
	if err != nil {
		undo := []error{snap.Restore(), DeleteCard(ctx, dir, acct.PublicKey(), svc.Spec.Name)}
		for _, r := range out.Consumers {
			if r.Status == "created" {
				undo = append(undo, deleteConsumer(ctx, nc, r.Stream, r.Durable))
			}
		}
		return nil, errors.Join(append([]error{fmt.Errorf("operator: service %s not saved: %w", spec.Name, err)}, undo...)...)
	}
	snap.Discard()
	out.Partial = true
	if err := WaitView(ctx, dir, nc, acct.PublicKey()); err != nil {
		return out, err
	}
	if out.Peers, err = p.SyncPeers(ctx, account); err != nil {
		return out, err
	}
	out.Partial = false
	return out, p.audit(ctx, nc, acct, false, bus.Event{Type: EventServicePublished, Data: bus.EventData{Service: svc.Spec.Name, Key: svc.UserPublicKey()}})
}

// EditService changes a service's spec (permissions, validity, consumers): edit receives a copy
// of the spec to change. The result is validated like [Provisioner.AddService]; the service then
// gets new keys with the new spec ([accounts.Account.ReissueService]: the old user key is
// revoked, so the old permissions stop working once pushed; the old curve key opens envelopes
// for change.Grace), its old creds are kept as the previous creds. With Push the account JWT is
// pushed, the card published, new durables created, durables no service declares any more
// deleted and the peer directories updated (Peers). If the first server step fails the keystore is put back as it was; a failure after
// it leaves the change saved and pushed in part (Partial, with the error).
func (p *Provisioner) EditService(ctx context.Context, account, name string, edit func(*accounts.ServiceSpec) error, change ServiceChange) (*ServiceOutcome, error) {
	old, err := p.Keystore.LoadService(account, name)
	if err != nil {
		return nil, err
	}
	spec := old.Spec
	spec.Publish = slices.Clone(spec.Publish)
	spec.Subscribe = slices.Clone(spec.Subscribe)
	spec.Consumers = slices.Clone(spec.Consumers)
	if err := edit(&spec); err != nil {
		return nil, err
	}
	if err := p.checkServiceSpec(account, spec, change.Filters); err != nil {
		return nil, err
	}
	var nc *nats.Conn
	if change.Push {
		if nc, err = p.Admin(ctx, account); err != nil {
			return nil, err
		}
		defer nc.Close()
		if _, err := CheckConsumers(ctx, nc, spec, change.Filters); err != nil {
			return nil, err
		}
	}
	snap, err := p.Keystore.Snapshot(account)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	svc, acct, path, err := p.reissueService(account, old, spec, change.Grace)
	p.mu.Unlock()
	if err != nil {
		return nil, errors.Join(err, snap.Restore())
	}
	// The edit is recorded once it stands: at once without a push, after the push with one
	// (a push that fails puts the keystore back, and nothing was edited).
	record := func() error {
		return p.recordOnly(acct, false, bus.Event{Type: EventServiceEdited, Data: bus.EventData{Service: name, Key: svc.UserPublicKey(),
			Changes: []string{"revoked " + old.UserPublicKey()}}})
	}
	out := &ServiceOutcome{Service: svc, Account: acct, CredsPath: path}
	if !change.Push {
		snap.Discard()
		return out, record()
	}
	if err := p.PushAccount(ctx, acct); err != nil {
		return nil, errors.Join(fmt.Errorf("operator: service %s not changed: %w", name, err), snap.Restore())
	}
	snap.Discard()
	nerr := record()
	_ = p.flushAudit(ctx, nc, acct) // a record it could not write stays pending for the next
	out.Partial = true
	if _, err := p.setupEvidence(ctx, nc, acct); err != nil { // the new keys' evidence subjects
		return out, err
	}
	dir, err := p.DirectoryAdmin(ctx)
	if err != nil {
		return out, err
	}
	defer dir.Close()
	if err := PublishCard(ctx, dir, name, svc.Card); err != nil {
		return out, err
	}
	if out.Consumers, err = ensureConsumers(ctx, nc, svc, change.Filters, false); err != nil {
		return out, err
	}
	for _, ref := range old.Spec.Consumers {
		if slices.Contains(spec.Consumers, ref) {
			continue
		}
		if err := deleteConsumer(ctx, nc, ref.Stream, ref.Durable); err != nil {
			return out, err
		}
		out.Removed = append(out.Removed, ConsumerResult{Stream: ref.Stream, Durable: ref.Durable, Status: "deleted"})
	}
	if err := WaitView(ctx, dir, nc, acct.PublicKey()); err != nil {
		return out, err
	}
	if out.Peers, err = p.SyncPeers(ctx, account); err != nil {
		return out, err
	}
	out.Partial = false
	return out, nerr
}

// reissueService saves the edited service, its account (old key revoked) and both creds files.
// The caller holds p.mu.
func (p *Provisioner) reissueService(account string, old *accounts.Service, spec accounts.ServiceSpec, grace time.Duration) (*accounts.Service, *accounts.Account, string, error) {
	acct, err := p.Keystore.LoadAccount(account)
	if err != nil {
		return nil, nil, "", err
	}
	svc, err := acct.ReissueService(old, spec, grace)
	if err != nil {
		return nil, nil, "", err
	}
	if err := p.Operator.Reissue(acct); err != nil {
		return nil, nil, "", err
	}
	if err := WriteCredsFile(p.PreviousCredsPath(account, old.Spec.Name), old); err != nil {
		return nil, nil, "", err
	}
	if err := p.Keystore.SaveService(account, svc); err != nil {
		return nil, nil, "", err
	}
	if err := p.Keystore.SaveAccount(acct); err != nil {
		return nil, nil, "", err
	}
	path, err := p.WriteCreds(account, svc)
	if err != nil {
		return nil, nil, "", err
	}
	return svc, acct, path, nil
}

// RemoveService takes a service out of the deployment: its user key is revoked in the account
// JWT (so its creds stop working everywhere once pushed: removing files alone would leave them
// valid), and its keystore entry and creds files are deleted. With push the account JWT is
// pushed, the card deleted from the directory, the service's durables deleted and the peer
// directories updated (Peers). If the push fails, the keystore is put back as it was.
func (p *Provisioner) RemoveService(ctx context.Context, account, name string, push bool) (*ServiceOutcome, error) {
	svc, err := p.Keystore.LoadService(account, name)
	if err != nil {
		return nil, err
	}
	snap, err := p.Keystore.Snapshot(account)
	if err != nil {
		return nil, err
	}
	_, acct, err := p.revokeService(account, name, time.Now())
	if err == nil {
		err = p.Keystore.RemoveService(account, name)
	}
	if err != nil {
		return nil, errors.Join(err, snap.Restore())
	}
	// The revocation and removal are recorded once they stand (see EditService).
	record := func() error {
		return errors.Join(
			p.recordOnly(acct, true, bus.Event{Type: EventServiceRevoked, Data: bus.EventData{Service: name, Key: svc.UserPublicKey()}}),
			p.recordOnly(acct, false, bus.Event{Type: EventServiceRemoved, Data: bus.EventData{Service: name, Key: svc.UserPublicKey()}}))
	}
	out := &ServiceOutcome{Service: svc, Account: acct}
	if !push {
		snap.Discard()
		return out, record()
	}
	if err := p.PushAccount(ctx, acct); err != nil {
		return nil, errors.Join(fmt.Errorf("operator: service %s not removed: %w", name, err), snap.Restore())
	}
	snap.Discard()
	nerr := record()
	out.Partial = true
	nc, err := p.Admin(ctx, account)
	if err != nil {
		return out, err
	}
	defer nc.Close()
	_ = p.flushAudit(ctx, nc, acct) // a record it could not write stays pending for the next
	dir, err := p.DirectoryAdmin(ctx)
	if err != nil {
		return out, err
	}
	defer dir.Close()
	if err := DeleteCard(ctx, dir, acct.PublicKey(), name); err != nil && !errors.Is(err, ErrNoDirectory) {
		return out, err
	}
	for _, ref := range svc.Spec.Consumers {
		if err := deleteConsumer(ctx, nc, ref.Stream, ref.Durable); err != nil {
			return out, err
		}
		out.Removed = append(out.Removed, ConsumerResult{Stream: ref.Stream, Durable: ref.Durable, Status: "deleted"})
	}
	// Its evidence subjects stay listed while they hold records (setupEvidence keeps them).
	if _, err := p.setupEvidence(ctx, nc, acct); err != nil {
		return out, err
	}
	if out.Peers, err = p.SyncPeers(ctx, account); err != nil {
		return out, err
	}
	out.Partial = false
	return out, nerr
}

// RemoveAccount deletes an account from the keystore. It is refused with an [*InUseError]
// while the account has services or another account imports from it, unless force is set.
// With push the account is first disabled on the server: every user key revoked (the
// wildcard revocation) and no connection allowed, pushed to the resolver (servers keep
// account JWTs; they cannot be deleted), so no creds of the account work any more. If that
// push fails nothing is removed. It returns the account as it was pushed (or as it was).
func (p *Provisioner) RemoveAccount(ctx context.Context, name string, force, push bool) (*accounts.Account, error) {
	acct, err := p.Keystore.LoadAccount(name)
	if err != nil {
		return nil, err
	}
	if !force {
		var by []string
		svcs, err := p.Keystore.ListServices(name)
		if err != nil {
			return nil, err
		}
		for _, s := range svcs {
			by = append(by, "service "+s)
		}
		all, err := p.loadAccounts()
		if err != nil {
			return nil, err
		}
		for _, other := range all {
			// The operator account imports every tenant's view sources: not a use of the tenant.
			if other.Name != name && !accounts.ReservedAccountName(other.Name) && accounts.ImportsStreamFrom(other.Claims, acct.PublicKey()) {
				by = append(by, "account "+other.Name+" (imports from it)")
			}
		}
		if len(by) > 0 {
			sort.Strings(by)
			return nil, &InUseError{What: "account " + name, By: by}
		}
	}
	if push {
		snap, err := p.Keystore.Snapshot(name)
		if err != nil {
			return nil, err
		}
		defer snap.Discard()
		disabled, err := p.EditAccount(name, func(a *accounts.Account) error {
			a.Claims.RevokeAt(jwt.All, time.Now())
			a.Claims.Limits.Conn = 0
			return nil
		})
		if err != nil {
			return nil, err
		}
		// Through the system account only: the disabled account admits no admin connection.
		err = p.verify(disabled)
		var sys *nats.Conn
		if err == nil {
			sys, err = p.System(ctx)
		}
		if err == nil {
			err = PushAccount(ctx, sys, disabled.JWT)
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("operator: account %s not removed: %w", name, err), snap.Restore())
		}
		acct = disabled
	}
	if err := p.unlinkView(ctx, acct, push); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.Keystore.RemoveAccount(name); err != nil {
		return nil, err
	}
	return acct, nil
}

// unlinkView drops the operator account's imports of a tenant's view sources (pushing the
// operator account with push). The tenant's view streams and the records in them stay until
// their age limit: evidence is not deleted with the account.
func (p *Provisioner) unlinkView(ctx context.Context, tenant *accounts.Account, push bool) error {
	if _, err := p.Keystore.LoadAccount(accounts.OperatorAccountName); errors.Is(err, accounts.ErrNotFound) {
		return nil
	}
	p.omu.Lock()
	defer p.omu.Unlock()
	opAcct, err := p.EditAccount(accounts.OperatorAccountName, func(a *accounts.Account) error {
		if !accounts.RemoveViewImports(a.Claims, tenant.PublicKey()) {
			return errUnchanged
		}
		return nil
	})
	switch {
	case errors.Is(err, errUnchanged):
		return nil
	case err != nil:
		return err
	case !push:
		return nil
	}
	nc, err := p.pushAndConnect(ctx, opAcct)
	if err != nil {
		return err
	}
	nc.Close()
	return nil
}

// deleteConsumer deletes a durable; a missing stream or durable is not an error.
func deleteConsumer(ctx context.Context, nc *nats.Conn, stream, durable string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	err = js.DeleteConsumer(ctx, stream, durable)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("operator: deleting consumer %s:%s: %w", stream, durable, err)
	}
	return nil
}
