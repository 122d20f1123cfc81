package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
)

// StreamNotFoundError is a stream the account does not have, with the application streams it
// does have. It matches [ErrNotFound] and jetstream.ErrStreamNotFound.
type StreamNotFoundError struct {
	Name  string
	Known []string
	Err   error // the server's answer
}

func (e *StreamNotFoundError) Error() string {
	known := "none"
	if len(e.Known) > 0 {
		known = strings.Join(e.Known, ", ")
	}
	msg := fmt.Sprintf("operator: no stream %q in this account (its streams: %s)", e.Name, known)
	if s := (&accounts.NotFoundError{Name: e.Name, Known: e.Known}).Suggestion(); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *StreamNotFoundError) Is(target error) bool { return target == ErrNotFound }

// Unwrap returns the server's answer (jetstream.ErrStreamNotFound).
func (e *StreamNotFoundError) Unwrap() error { return e.Err }

// streamNotFound builds a *StreamNotFoundError listing the account's streams (best effort).
func streamNotFound(ctx context.Context, nc *nats.Conn, name string, err error) error {
	nf := &StreamNotFoundError{Name: name, Err: err}
	if infos, lerr := Streams(ctx, nc); lerr == nil {
		for _, si := range infos {
			if !reservedStream(si.Config.Name) {
				nf.Known = append(nf.Known, si.Config.Name)
			}
		}
		sort.Strings(nf.Known)
	}
	return nf
}

func reservedStream(name string) bool {
	return strings.HasPrefix(name, "SEALBUS_") || strings.HasPrefix(name, "KV_") || strings.HasPrefix(name, "OBJ_")
}

// StreamInfo returns an application stream's information, or a [*StreamNotFoundError].
func StreamInfo(ctx context.Context, nc *nats.Conn, name string) (*jetstream.StreamInfo, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, streamNotFound(ctx, nc, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("operator: stream %s: %w", name, err)
	}
	return st.CachedInfo(), nil
}

// SpecOf returns the [StreamSpec] of an existing application stream's configuration.
func SpecOf(cfg jetstream.StreamConfig) StreamSpec {
	return StreamSpec{
		Name: cfg.Name, Subjects: slices.Clone(cfg.Subjects), Replicas: cfg.Replicas,
		MaxAge: cfg.MaxAge, MaxBytes: max(cfg.MaxBytes, 0), Duplicates: cfg.Duplicates, Storage: cfg.Storage,
	}
}

// EditStream changes an existing application stream: edit receives its current spec; the
// result is validated ([StreamSpec.Validate]) before the server is asked, and the storage
// type cannot change (JetStream refuses it). A missing stream is a [*StreamNotFoundError];
// creating one is [AddStream]'s job.
func EditStream(ctx context.Context, nc *nats.Conn, name string, edit func(*StreamSpec) error) (*jetstream.StreamInfo, error) {
	if reservedStream(name) {
		return nil, fmt.Errorf("%w: stream %s is sealbus's own", ErrInvalidSpec, name)
	}
	si, err := StreamInfo(ctx, nc, name)
	if err != nil {
		return nil, err
	}
	spec := SpecOf(si.Config)
	if err := edit(&spec); err != nil {
		return nil, err
	}
	if spec.Name != name {
		return nil, fmt.Errorf("%w: a stream cannot be renamed", ErrInvalidSpec)
	}
	if spec.Storage != si.Config.Storage {
		return nil, fmt.Errorf("%w: the storage type of stream %s cannot change", ErrInvalidSpec, name)
	}
	if err := AddStream(ctx, nc, spec); err != nil {
		return nil, err
	}
	return StreamInfo(ctx, nc, name)
}

// StreamUsers returns the services of account that declare a durable on stream, as
// "service (STREAM:DURABLE)".
func (p *Provisioner) StreamUsers(account, stream string) ([]string, error) {
	names, err := p.Keystore.ListServices(account)
	if err != nil {
		return nil, err
	}
	var by []string
	for _, n := range names {
		spec, err := p.Keystore.ServiceSpec(account, n)
		if err != nil {
			return nil, err
		}
		for _, c := range spec.Consumers {
			if c.Stream == stream {
				by = append(by, fmt.Sprintf("service %s (%s:%s)", n, c.Stream, c.Durable))
			}
		}
	}
	return by, nil
}

// RemoveStream deletes an application stream of account and its messages. It is refused with
// an [*InUseError] while a service of the keystore declares a durable on it, unless force is
// set (those services' consumers then fail until the stream is made again). sealbus's own
// streams cannot be removed.
func (p *Provisioner) RemoveStream(ctx context.Context, account, stream string, force bool) error {
	if reservedStream(stream) {
		return fmt.Errorf("%w: stream %s is sealbus's own", ErrInvalidSpec, stream)
	}
	if !force {
		by, err := p.StreamUsers(account, stream)
		if err != nil {
			return err
		}
		if len(by) > 0 {
			return &InUseError{What: "stream " + stream, By: by}
		}
	}
	nc, err := p.Admin(ctx, account)
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, err := StreamInfo(ctx, nc, stream); err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	if err := js.DeleteStream(ctx, stream); err != nil {
		return fmt.Errorf("operator: deleting stream %s: %w", stream, err)
	}
	if acct, err := p.Keystore.LoadAccount(account); err == nil {
		return p.audit(ctx, nc, acct, false, bus.Event{Type: EventStreamRemoved, Data: bus.EventData{Stream: stream}})
	}
	return nil
}
