package envelope

import (
	"testing"

	"github.com/sealbus/sealbus/envelope/internal/format"
)

// TestRecordConstantsMatchTheCodec: the public constants are spelled out (the public API names
// no internal type) and must equal the codec's.
func TestRecordConstantsMatchTheCodec(t *testing.T) {
	for _, c := range []struct{ pub, codec int }{
		{int(RecordAudit), format.KindAudit}, {int(RecordDeadLetter), format.KindDeadLetter}, {int(RecordReplayAuthorization), format.KindReplay},
		{int(WriterService), format.RoleService}, {int(WriterAccount), format.RoleAccount}, {int(WriterOperator), format.RoleOperator},
		{MaxRecordPayload, format.MaxRecordPayload}, {MaxRecordCredential, format.MaxRecordCredential},
		{RecordOverhead, format.RecordFixedLen + 1 + format.MaxRecordName + 2 + format.MaxRecordCredential + 4 + format.MaxRecordPayload + 4 + format.SignatureSize},
	} {
		if c.pub != c.codec {
			t.Errorf("public %d, codec %d", c.pub, c.codec)
		}
	}
}
