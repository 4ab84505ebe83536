package main

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// logSwitch changes the level and the format of serve's logger, and of
// every logger derived from it, while it runs (SIGHUP). slog has LevelVar
// for the level but nothing for the format, hence switchHandler.
type logSwitch struct {
	level slog.LevelVar
	json  atomic.Bool
}

// set applies a level and a format newLogger accepted.
func (s *logSwitch) set(level, format string) {
	var lv slog.Level
	if lv.UnmarshalText([]byte(level)) == nil {
		s.level.Set(lv)
	}
	s.json.Store(format == "json")
}

// switchHandler keeps a text and a JSON handler side by side, with the
// same attributes and groups (WithAttrs and WithGroup derive both), and
// picks one per record by the switch: a change costs no lock, no
// allocation, and no logger has to be rebuilt.
type switchHandler struct {
	sw         *logSwitch
	text, json slog.Handler
}

func (h switchHandler) cur() slog.Handler {
	if h.sw.json.Load() {
		return h.json
	}
	return h.text
}

func (h switchHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.cur().Enabled(ctx, l)
}

func (h switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.cur().Handle(ctx, r)
}

func (h switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return switchHandler{sw: h.sw, text: h.text.WithAttrs(as), json: h.json.WithAttrs(as)}
}

func (h switchHandler) WithGroup(name string) slog.Handler {
	return switchHandler{sw: h.sw, text: h.text.WithGroup(name), json: h.json.WithGroup(name)}
}
