package bus

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestDefaultLoggerReportsWarnings: without WithLogger, warnings and errors go to
// slog.Default() as set when they are logged (here after the config was made), with the
// logger's attributes and groups; info and debug records are dropped.
func TestDefaultLoggerReportsWarnings(t *testing.T) {
	var out bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	log := slog.New(defaultLogHandler{}).With("stream", "ORDERS").WithGroup("g")
	log.Warn("sealbus: retrying", "n", 1)
	log.Error("sealbus: failed")
	log.Info("sealbus: reconnected")
	log.Debug("sealbus: detail")
	got := out.String()
	for _, want := range []string{"level=WARN msg=\"sealbus: retrying\" stream=ORDERS g.n=1", "level=ERROR"} {
		if !strings.Contains(got, want) {
			t.Errorf("default logger output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "INFO") || strings.Contains(got, "DEBUG") {
		t.Errorf("default logger passed info or debug:\n%s", got)
	}
}
