package servicetest

import (
	"context"
	"log/slog"
	"sync"
)

// Records is an slog.Handler that keeps the records at or above Level
// (the zero value: info) that the code under test logs from its own
// goroutines, while the test reads them. Attributes added by With are
// not kept.
type Records struct {
	Level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (h *Records) Enabled(_ context.Context, l slog.Level) bool { return l >= h.Level }
func (h *Records) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *Records) WithGroup(string) slog.Handler                { return h }

func (h *Records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// Messages is the message of every record kept so far, in order.
func (h *Records) Messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	msgs := make([]string, len(h.recs))
	for i, r := range h.recs {
		msgs[i] = r.Message
	}
	return msgs
}

// Named is the records kept so far whose message is msg.
func (h *Records) Named(msg string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.recs {
		if r.Message == msg {
			out = append(out, r)
		}
	}
	return out
}
