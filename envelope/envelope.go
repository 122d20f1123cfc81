// Package envelope implements sealbus sealed envelopes, format version 1: the signed and
// encrypted unit every message on the bus travels in.
//
// The byte format and every check are specified in SPEC.md next to this file, with
// conformance vectors in testdata/.
//
// # Guarantees
//
// An envelope that [Opener.Open] accepts
//
//   - was signed by the sender key named in it, which the caller's [SenderPolicy] accepted
//     for the signed account and subject before any cryptography ran;
//   - names exactly the account and subject it was delivered in (an envelope cannot be moved
//     to another account, subject or sender: the header is signed and is also the associated
//     data of the payload encryption);
//   - was created within the freshness window of the server's stored time and is not expired;
//   - decrypts under a content key that matches the key commitment in the signed header, so
//     every recipient reads the same plaintext (no "invisible salamanders");
//   - was verified over the bytes as received, never a re-encoding, after a strict parse that
//     accepts exactly one encoding of every value.
//
// The payload is readable only by the holders of the recipients' X25519 keys. The suite is
// fixed (Ed25519, X25519, HKDF-SHA256, XChaCha20-Poly1305); unknown versions and suites are
// refused before anything else is parsed.
//
// # Sealing
//
// A [Sealer] holds an [Identity] and an ephemeral epoch key. [Sealer.Seal] seals one message;
// [Sealer.SealBatch] seals many under a single Ed25519 signature over a Merkle root, each
// envelope carrying its audit path. Key-wrapping keys are cached per (epoch key, recipient),
// so sealing computes no X25519 per message once a recipient has been seen in the epoch. When
// the epoch ends the sealer discards the epoch key and its wrap keys, even if it is idle (a
// timer checks at the epoch's end); [Sealer.Close] discards them at once.
//
// # Opening
//
// An [Opener] holds the receiving identities (current first, then ones inside a rotation
// grace window) and runs the checks cheapest first. Every refusal is a [*RejectError] with a
// stable [Reason]. Verified batch signatures are cached, so opening the other members of a
// batch costs no signature verification.
//
// # Inspecting
//
// [Inspect] parses strictly and reports the header without decrypting or verifying anything.
//
// The package imports only the standard library, golang.org/x/crypto and nkeys.
package envelope

//go:generate go run ./internal/vectorgen -out testdata

import (
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope/internal/format"
)

// Version and Suite are the only version and suite bytes this package reads and writes.
const (
	Version = format.Version
	Suite   = format.Suite
)

// Info is what Inspect reports about an envelope. Nothing in it is verified.
type Info struct {
	Version     uint8
	Suite       uint8
	ID          MessageID
	Account     string // "A..."
	Subject     string
	Sender      string // "U..."
	ContentType string
	Created     time.Time // UTC
	Expires     time.Time // zero if none
	Recipients  []string  // "X..." keys, in envelope (ascending byte) order
	EpochKey    string    // "X..." sender epoch key
	PayloadLen  int       // plaintext length (ciphertext minus the tag)
	LeafIndex   uint32
	TreeSize    uint32
	PathLen     int
	Size        int // total envelope bytes
}

// Inspect parses data strictly without decrypting or verifying anything, for tooling such as
// `sealbus inspect`. It returns a *RejectError (too_large above HardMaxSize, unknown_version,
// unknown_suite or malformed) for what Open would refuse at those stages.
func Inspect(data []byte) (*Info, error) {
	if len(data) > HardMaxSize {
		return nil, reject(ReasonTooLarge, "%d bytes exceeds %d", len(data), HardMaxSize)
	}
	e := new(format.Envelope)
	if rerr := parseInto(e, data); rerr != nil {
		return nil, rerr
	}
	info := &Info{
		Version:     data[0],
		Suite:       data[1],
		ID:          MessageID(e.ID),
		Account:     encodeKey(nkeys.PrefixByteAccount, e.Account),
		Subject:     e.Subject,
		Sender:      encodeKey(nkeys.PrefixByteUser, e.Sender),
		ContentType: e.ContentType,
		Created:     unixMilli(e.Created),
		EpochKey:    encodeCurve(e.EpochKey),
		PayloadLen:  len(e.Ciphertext) - format.TagSize,
		LeafIndex:   e.LeafIndex,
		TreeSize:    e.TreeSize,
		PathLen:     len(e.Path),
		Size:        len(data),
	}
	if e.Expires != 0 {
		info.Expires = unixMilli(e.Expires)
	}
	for _, r := range e.Recipients {
		info.Recipients = append(info.Recipients, encodeCurve(r.Key))
	}
	return info, nil
}
