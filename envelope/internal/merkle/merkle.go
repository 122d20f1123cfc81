// Package merkle is the RFC 6962 / RFC 9162 Merkle tree used by batch signatures: SHA-256,
// leaves hashed as H(0x00 || leaf), interior nodes as H(0x01 || left || right), and the
// largest-power-of-two split for trees whose size is not a power of two.
package merkle

import (
	"crypto/sha256"
	"errors"
)

// Size is the length of a hash.
const Size = sha256.Size

// ErrProof is returned by RootFromPath when the leaf index, tree size and path length are
// inconsistent.
var ErrProof = errors.New("merkle: inconsistent audit path")

// Hash is one tree hash.
type Hash = [Size]byte

// LeafHash returns H(0x00 || data).
func LeafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0x00})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash returns H(0x01 || left || right).
func NodeHash(left, right *Hash) Hash {
	var buf [1 + 2*Size]byte
	buf[0] = 0x01
	copy(buf[1:], left[:])
	copy(buf[1+Size:], right[:])
	return sha256.Sum256(buf[:])
}

// split returns the largest power of two strictly less than n (n ≥ 2).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// Root returns the Merkle tree hash of the given leaf hashes (at least one).
func Root(leaves []Hash) Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := split(len(leaves))
	l, r := Root(leaves[:k]), Root(leaves[k:])
	return NodeHash(&l, &r)
}

// Paths returns the root and the audit path of every leaf, in the order RFC 9162 §2.1.3.1
// defines (nearest sibling first).
func Paths(leaves []Hash) (Hash, [][]Hash) {
	// Every path gets its exact capacity in one shared array, so paths1's appends never
	// reallocate: two allocations per batch instead of several per leaf.
	n := uint32(len(leaves))
	paths := make([][]Hash, len(leaves))
	total := 0
	for i := range paths {
		total += max(PathLen(uint32(i), n), 0)
	}
	backing := make([]Hash, total)
	off := 0
	for i := range paths {
		l := max(PathLen(uint32(i), n), 0)
		paths[i] = backing[off : off : off+l]
		off += l
	}
	root := paths1(leaves, paths)
	return root, paths
}

func paths1(leaves []Hash, paths [][]Hash) Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := split(len(leaves))
	l := paths1(leaves[:k], paths[:k])
	r := paths1(leaves[k:], paths[k:])
	for i := range paths[:k] {
		paths[i] = append(paths[i], r)
	}
	for i := range paths[k:] {
		paths[k+i] = append(paths[k+i], l)
	}
	return NodeHash(&l, &r)
}

// PathLen returns the length of the audit path of leaf index in a tree of size leaves, or -1
// if index ≥ size or size is 0.
func PathLen(index, size uint32) int {
	if size == 0 || index >= size {
		return -1
	}
	fn, sn := index, size-1
	n := 0
	for sn != 0 {
		if fn&1 == 1 || fn == sn {
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		}
		fn >>= 1
		sn >>= 1
		n++
	}
	return n
}

// RootFromPath computes the root implied by a leaf hash, its index, the tree size and an audit
// path, following RFC 9162 §2.1.3.2. It returns ErrProof when the path length does not match
// the index and size.
func RootFromPath(leaf Hash, index, size uint32, path []Hash) (Hash, error) {
	if size == 0 || index >= size {
		return Hash{}, ErrProof
	}
	fn, sn := index, size-1
	r := leaf
	for i := range path {
		if sn == 0 {
			return Hash{}, ErrProof
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(&path[i], &r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = NodeHash(&r, &path[i])
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return Hash{}, ErrProof
	}
	return r, nil
}
