package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
)

func leaves(n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(i))
		out[i] = LeafHash(b[:])
	}
	return out
}

// TestRFC6962Shape checks the tree shape against a hand-written expansion for 3 and 5 leaves.
func TestRFC6962Shape(t *testing.T) {
	l := leaves(5)
	n01 := NodeHash(&l[0], &l[1])
	n23 := NodeHash(&l[2], &l[3])
	n0123 := NodeHash(&n01, &n23)
	want5 := NodeHash(&n0123, &l[4])
	if got := Root(l); got != want5 {
		t.Fatalf("root of 5 differs")
	}
	want3 := NodeHash(&n01, &l[2])
	if got := Root(l[:3]); got != want3 {
		t.Fatalf("root of 3 differs")
	}
	if LeafHash(nil) != sha256.Sum256([]byte{0}) {
		t.Fatalf("leaf hash is not H(0x00)")
	}
}

func TestPathsVerify(t *testing.T) {
	for n := 1; n <= 70; n++ {
		l := leaves(n)
		root, paths := Paths(l)
		if root != Root(l) {
			t.Fatalf("n=%d: Paths root differs from Root", n)
		}
		for i := range l {
			if PathLen(uint32(i), uint32(n)) != len(paths[i]) {
				t.Fatalf("n=%d i=%d: PathLen %d, path %d", n, i, PathLen(uint32(i), uint32(n)), len(paths[i]))
			}
			got, err := RootFromPath(l[i], uint32(i), uint32(n), paths[i])
			if err != nil || got != root {
				t.Fatalf("n=%d i=%d: verify failed: %v", n, i, err)
			}
			// Any other index with the same path either is inconsistent or gives another root.
			for j := 0; j < n; j++ {
				if j == i {
					continue
				}
				got, err := RootFromPath(l[i], uint32(j), uint32(n), paths[i])
				if err == nil && got == root {
					t.Fatalf("n=%d: leaf %d verified at index %d", n, i, j)
				}
			}
			// A wrong size can yield the same root (leaf 0 of 3 and of 4 share a path shape),
			// which is why the signed statement carries the tree size next to the root.
		}
	}
}

func TestRootFromPathRejects(t *testing.T) {
	l := leaves(4)
	_, paths := Paths(l)
	cases := []struct {
		index, size uint32
		path        []Hash
	}{
		{4, 4, paths[0]},
		{0, 0, nil},
		{0, 4, paths[0][:1]},
		{0, 4, append(append([]Hash{}, paths[0]...), l[0])},
		{0, 1, paths[0]},
	}
	for _, c := range cases {
		if _, err := RootFromPath(l[0], c.index, c.size, c.path); !errors.Is(err, ErrProof) {
			t.Errorf("index %d size %d len %d: err %v, want ErrProof", c.index, c.size, len(c.path), err)
		}
	}
	if PathLen(3, 3) != -1 || PathLen(0, 0) != -1 || PathLen(0, 1) != 0 {
		t.Errorf("PathLen edge cases wrong")
	}
}
