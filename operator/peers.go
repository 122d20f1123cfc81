package operator

import (
	"context"
	"fmt"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
)

// PutPeer writes a peer account's JWT and cards into the directory of the account js is
// connected to (an admin connection: services cannot write the directory), under
// PeerAccountKey and PeerCardKey. The operator calls it for each account that imports from,
// or exports to, this one, and again after the peer's JWT or cards change (revocation,
// rotation). Receivers verify everything up to their trusted operators, so the copy needs no
// protection beyond the directory's.
func PutPeer(ctx context.Context, js jetstream.JetStream, accountJWT string, cards map[string]string) error {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return fmt.Errorf("%w: peer account JWT does not decode", ErrInvalidSpec)
	}
	kv, err := js.KeyValue(ctx, accounts.DirectoryBucket)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	if _, err := kv.PutString(ctx, accounts.PeerAccountKey(ac.Subject), accountJWT); err != nil {
		return fmt.Errorf("operator: put peer account: %w", err)
	}
	for name, tok := range cards {
		if !accounts.ValidName(name) {
			return fmt.Errorf("%w: service name %q", ErrInvalidSpec, name)
		}
		if _, err := kv.PutString(ctx, accounts.PeerCardKey(ac.Subject, name), tok); err != nil {
			return fmt.Errorf("operator: put peer card %s: %w", name, err)
		}
	}
	return nil
}
