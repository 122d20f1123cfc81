package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/sealbus/sealbus/operator"
)

// cliLogHandler prints the SDK's warnings and errors (retries, rejected envelopes and their
// reasons) on standard error as "sealbus: warning: <message> key=value ...", every value
// escaped: a reason or subject comes from untrusted bytes.
type cliLogHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	attrs []slog.Attr
}

func (h *cliLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *cliLogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	level := "warning"
	if r.Level >= slog.LevelError {
		level = "error"
	}
	fmt.Fprintf(&b, "sealbus: %s: %s", level, operator.Escape(strings.TrimPrefix(r.Message, "sealbus: ")))
	write := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%s", operator.Escape(a.Key), operator.Escape(a.Value.String()))
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	b.WriteByte('\n')
	if h.mu != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *cliLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &n
}

func (h *cliLogHandler) WithGroup(string) slog.Handler { return h }
