package accounts

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

const (
	curveBegin = "-----BEGIN SEALBUS CURVE KEY SEED-----"
	curveEnd   = "------END SEALBUS CURVE KEY SEED------"
)

// ErrInvalidCreds is returned for a credentials file that cannot be used; the wrapped message
// says which part is wrong and never contains key material.
var ErrInvalidCreds = errors.New("accounts: invalid credentials")

// Creds are the parts of a sealbus service credentials file ([FormatCreds], [ParseCreds],
// [ReadCredsFile]). The file is a standard NATS .creds file — the user JWT block, then the
// user nkey seed block, which nats.go's UserCredentials and the nats CLI accept as they are —
// followed by a third block that only sealbus reads: the service's X25519 curve (xkey) seed,
// used to open envelopes.
//
//	-----BEGIN NATS USER JWT-----
//	eyJ0eXAiOi...
//	------END NATS USER JWT------
//
//	-----BEGIN USER NKEY SEED-----
//	SUAM...
//	------END USER NKEY SEED------
//
//	-----BEGIN SEALBUS CURVE KEY SEED-----
//	SXAG...
//	------END SEALBUS CURVE KEY SEED------
//
// The file holds secrets: write it with mode 0600 and never log its contents.
type Creds struct {
	UserJWT   string
	UserSeed  []byte // "SU..."
	CurveSeed []byte // "SX..."; nil in a plain NATS creds file
}

// FormatCreds renders c as a credentials file. Both seeds are checked for their key type.
func FormatCreds(c Creds) ([]byte, error) {
	if _, err := credsUserKey(c.UserSeed); err != nil {
		return nil, err
	}
	base, err := jwt.FormatUserConfig(c.UserJWT, c.UserSeed)
	if err != nil {
		return nil, fmt.Errorf("%w: user part: %v", ErrInvalidCreds, err)
	}
	if c.CurveSeed == nil {
		return base, nil
	}
	if err := checkCurveSeed(c.CurveSeed); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(base)
	b.WriteString(curveBegin + "\n")
	b.Write(c.CurveSeed)
	b.WriteString("\n" + curveEnd + "\n")
	return b.Bytes(), nil
}

// ParseCreds reads a credentials file. The curve seed is optional here; callers that must open
// envelopes check that CurveSeed is not nil.
func ParseCreds(data []byte) (Creds, error) {
	tok, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return Creds{}, fmt.Errorf("%w: user JWT block not found", ErrInvalidCreds)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return Creds{}, fmt.Errorf("%w: user JWT does not decode", ErrInvalidCreds)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(data)
	if err != nil {
		return Creds{}, fmt.Errorf("%w: user seed block not found or not a user seed", ErrInvalidCreds)
	}
	pub, _ := kp.PublicKey()
	if pub != uc.Subject {
		return Creds{}, fmt.Errorf("%w: user seed does not belong to the user JWT", ErrInvalidCreds)
	}
	seed, err := kp.Seed()
	if err != nil {
		return Creds{}, fmt.Errorf("%w: user seed", ErrInvalidCreds)
	}
	c := Creds{UserJWT: tok, UserSeed: seed}
	i := bytes.Index(data, []byte(curveBegin))
	if i < 0 {
		return c, nil
	}
	rest := data[i+len(curveBegin):]
	j := bytes.Index(rest, []byte(curveEnd))
	if j < 0 {
		return Creds{}, fmt.Errorf("%w: curve seed block not terminated", ErrInvalidCreds)
	}
	curve := bytes.TrimSpace(rest[:j])
	if err := checkCurveSeed(curve); err != nil {
		return Creds{}, err
	}
	c.CurveSeed = append([]byte(nil), curve...)
	return c, nil
}

// ReadCredsFile parses the credentials file at path. It refuses a file readable by group or others.
func ReadCredsFile(path string) (Creds, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Creds{}, fmt.Errorf("accounts: creds: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Creds{}, fmt.Errorf("%w: %s is accessible by other users (mode %v); chmod 600 it", ErrInvalidCreds, path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Creds{}, fmt.Errorf("accounts: creds: %w", err)
	}
	return ParseCreds(data)
}

func credsUserKey(seed []byte) (string, error) {
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return "", fmt.Errorf("%w: user seed does not decode", ErrInvalidCreds)
	}
	pub, _ := kp.PublicKey()
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("%w: user seed is not a user key", ErrInvalidCreds)
	}
	return pub, nil
}

func checkCurveSeed(seed []byte) error {
	kp, err := nkeys.FromCurveSeed(seed)
	if err != nil {
		return fmt.Errorf("%w: curve seed does not decode as an xkey seed", ErrInvalidCreds)
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicCurveKey(pub) {
		return fmt.Errorf("%w: curve seed is not a curve key", ErrInvalidCreds)
	}
	return nil
}
