package devserver

import (
	"fmt"
	"runtime"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sys/cpu"
)

// StoreCipher is the cipher the dev server encrypts JetStream storage with: AES where the CPU
// has AES instructions (amd64 with AES-NI and carry-less multiply, arm64 with its AES
// extension), ChaCha20 otherwise. Both are the server's own schemes (an AEAD for the key
// files, a stream cipher for message blocks, whose integrity the blocks' checksums cover);
// they differ only in speed. The server's ChaCha20 block cipher has no assembly on amd64: it
// was 8% of the dev server's CPU under sealbus bench, where AES-CTR with AES-NI is a fraction
// of that (docs/PERFORMANCE.md).
func StoreCipher() server.StoreCipher {
	if hasAES() {
		return server.AES
	}
	return server.ChaCha
}

func hasAES() bool {
	switch runtime.GOARCH {
	case "amd64":
		return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ
	case "arm64":
		return cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
	}
	return false
}

// parseCipher maps a Config.Cipher to the server's cipher.
func parseCipher(name string) (server.StoreCipher, error) {
	switch name {
	case "":
		return StoreCipher(), nil
	case "aes":
		return server.AES, nil
	case "chacha":
		return server.ChaCha, nil
	}
	return 0, fmt.Errorf("%w: storage cipher %q: want aes or chacha", ErrInvalidConfig, name)
}
