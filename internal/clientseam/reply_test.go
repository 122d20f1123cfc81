package clientseam

import (
	"strconv"
	"testing"
)

func TestReplySubject(t *testing.T) {
	long := "_INBOX.0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef."
	for _, prefix := range []string{"", "_INBOX.abc.", long} {
		for _, id := range []uint64{0, 1, 35, 36, 1 << 40, ^uint64(0)} {
			if got, want := ReplySubject(prefix, id), prefix+strconv.FormatUint(id, 36); got != want {
				t.Errorf("ReplySubject(%q, %d) = %q, want %q", prefix, id, got, want)
			}
		}
	}
	prefix := "_INBOX_UCZL5XQHTNQPR7CY5N44GQUIBX2MKMOU2BR65FNLE77TKEWJTXPRD6SB.0123456789abcdefghijkl." // 87 bytes, as a connection's
	if n := testing.AllocsPerRun(100, func() { _ = ReplySubject(prefix, ^uint64(0)) }); n != 1 {
		t.Errorf("ReplySubject allocates %v times, want 1", n)
	}
}
