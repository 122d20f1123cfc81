package accounts

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"
)

// Keystore encryption format, version 2 ("sealbus-keystore-v2"):
//
//	key        = scrypt(passphrase, salt, N=2^logN, r, p, 32)
//	ciphertext = XChaCha20-Poly1305(key, nonce, plaintext, ad)
//	ad         = "sealbus-keystore-v2" 0x00 kind 0x00 name [0x00 digest]
//	digest     = SHA-256("sealbus-keystore-v2 public record" 0x00 kind 0x00 name 0x00 record)
//
// with a fresh 32-byte random salt and 24-byte random nonce for every file
// written; record is the JSON encoding of the entry's public part (spec,
// JWTs, card, public and previous keys). The associated data binds the
// ciphertext to its entry and to that entry's public contents, so sealed
// secrets cannot be moved from one entry to another and the public part of
// an encrypted entry cannot be edited without the passphrase. The
// passphrase check in the marker has no digest.
//
// Parameters read from a file are bounded before any derivation: logN
// 10..22, r 1..32, p 1..4 and 128·r·N ≤ 256 MiB of memory, so a doctored
// file cannot make opening the store allocate gigabytes.
const (
	sealFormat     = "sealbus-keystore-v2"
	kdfScrypt      = "scrypt"
	defaultLogN    = 15
	defaultScryptR = 8
	defaultScryptP = 1
	minLogN        = 10
	maxLogN        = 22
	maxScryptR     = 32
	maxScryptP     = 4
	maxScryptMem   = 256 << 20 // bytes: scrypt uses 128·r·N
	saltSize       = 32
)

var b64std = base64.StdEncoding.Strict()

type scryptParams struct {
	LogN int `json:"log_n"`
	R    int `json:"r"`
	P    int `json:"p"`
}

func (s scryptParams) check() error {
	if s.LogN < minLogN || s.LogN > maxLogN || s.R < 1 || s.R > maxScryptR || s.P < 1 || s.P > maxScryptP {
		return fmt.Errorf("scrypt parameters out of range (log_n %d..%d, r 1..%d, p 1..%d)", minLogN, maxLogN, maxScryptR, maxScryptP)
	}
	if 128*int64(s.R)<<s.LogN > maxScryptMem {
		return fmt.Errorf("scrypt parameters need more than %d MiB (128·r·N)", maxScryptMem>>20)
	}
	return nil
}

// sealedBox is an encrypted blob as stored in a keystore file.
type sealedBox struct {
	Format     string       `json:"format"`
	KDF        string       `json:"kdf"`
	Params     scryptParams `json:"params"`
	Salt       string       `json:"salt"`
	Nonce      string       `json:"nonce"`
	Ciphertext string       `json:"ciphertext"`
}

// sealAD is the associated data of an entry's sealed secrets; digest is the
// entry's public-record digest (nil for the passphrase check).
func sealAD(kind, name string, digest []byte) []byte {
	ad := []byte(sealFormat + "\x00" + kind + "\x00" + name)
	if digest != nil {
		ad = append(append(ad, 0), digest...)
	}
	return ad
}

// seal encrypts plaintext under a key derived from passphrase with a fresh
// salt, bound to the entry (kind, name) and its public-record digest.
func (k *Keystore) seal(plaintext []byte, kind, name string, digest []byte) (*sealedBox, error) {
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(k.rand, salt); err != nil {
		return nil, fmt.Errorf("accounts: keystore randomness: %w", err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := io.ReadFull(k.rand, nonce); err != nil {
		return nil, fmt.Errorf("accounts: keystore randomness: %w", err)
	}
	key, err := k.derive(salt, k.params)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("accounts: keystore cipher: %w", err)
	}
	ct := aead.Seal(nil, nonce, plaintext, sealAD(kind, name, digest))
	return &sealedBox{
		Format:     sealFormat,
		KDF:        kdfScrypt,
		Params:     k.params,
		Salt:       b64std.EncodeToString(salt),
		Nonce:      b64std.EncodeToString(nonce),
		Ciphertext: b64std.EncodeToString(ct),
	}, nil
}

// open decrypts a sealed box. A failed authentication is ErrWrongPassphrase
// (it is indistinguishable from a modified file, ciphertext or public
// record). Parameters out of bounds are ErrCorrupt, before any derivation.
func (k *Keystore) open(b *sealedBox, kind, name string, digest []byte) ([]byte, error) {
	if b == nil || b.Format != sealFormat || b.KDF != kdfScrypt {
		return nil, fmt.Errorf("%w: unknown encryption format", ErrCorrupt)
	}
	if err := b.Params.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	salt, err1 := b64std.DecodeString(b.Salt)
	nonce, err2 := b64std.DecodeString(b.Nonce)
	ct, err3 := b64std.DecodeString(b.Ciphertext)
	if err1 != nil || err2 != nil || err3 != nil || len(salt) != saltSize || len(nonce) != chacha20poly1305.NonceSizeX {
		return nil, fmt.Errorf("%w: malformed sealed secrets", ErrCorrupt)
	}
	key, err := k.derive(salt, b.Params)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("accounts: keystore cipher: %w", err)
	}
	pt, err := aead.Open(nil, nonce, ct, sealAD(kind, name, digest))
	if err != nil {
		return nil, fmt.Errorf("%w: cannot decrypt %s %q (wrong passphrase, or the entry or its public part was modified)", ErrWrongPassphrase, kind, name)
	}
	return pt, nil
}

// derive runs scrypt, caching keys per (salt, params) for the life of the
// Keystore so a file is not re-derived on every load.
func (k *Keystore) derive(salt []byte, p scryptParams) ([]byte, error) {
	id := fmt.Sprintf("%d/%d/%d/%x", p.LogN, p.R, p.P, salt)
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[id]; ok {
		return key, nil
	}
	key, err := scrypt.Key(k.passphrase, salt, 1<<p.LogN, p.R, p.P, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("accounts: keystore key derivation: %w", err)
	}
	k.keys[id] = key
	return key, nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
