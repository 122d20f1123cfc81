package accounts

import (
	"fmt"
	"io"

	"github.com/nats-io/nkeys"
)

// curvePublic is a public-only curve key: nkeys.FromPublicKey does not accept
// "X..." keys, but a keystore entry may hold a previous curve key whose seed
// was discarded. It can report its public key and nothing else.
type curvePublic string

var _ nkeys.KeyPair = curvePublic("")

func (c curvePublic) Seed() ([]byte, error) { return nil, nkeys.ErrPublicKeyOnly }
func (c curvePublic) PublicKey() (string, error) {
	return string(c), nil
}
func (c curvePublic) PrivateKey() ([]byte, error) { return nil, nkeys.ErrPublicKeyOnly }
func (c curvePublic) Sign([]byte) ([]byte, error) { return nil, nkeys.ErrInvalidCurveKeyOperation }
func (c curvePublic) Verify([]byte, []byte) error { return nkeys.ErrInvalidCurveKeyOperation }
func (c curvePublic) Wipe()                       {}
func (c curvePublic) Seal([]byte, string) ([]byte, error) {
	return nil, fmt.Errorf("%w: public-only curve key cannot seal", nkeys.ErrPublicKeyOnly)
}
func (c curvePublic) SealWithRand([]byte, string, io.Reader) ([]byte, error) {
	return nil, fmt.Errorf("%w: public-only curve key cannot seal", nkeys.ErrPublicKeyOnly)
}
func (c curvePublic) Open([]byte, string) ([]byte, error) { return nil, nkeys.ErrPublicKeyOnly }
