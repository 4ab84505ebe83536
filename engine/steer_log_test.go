package engine

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/servicetest"
)

// TestSteerLogSaysNoEnd: the line a change of a sale logs says a sale
// without an end has none, not that it ends in year 1 (the zero time), and
// gives the end of one that has it.
func TestSteerLogSaysNoEnd(t *testing.T) {
	for _, c := range []struct {
		name  string
		patch surge.SalePatch
		want  string
	}{
		{"no end", surge.SalePatch{Stock: ptr(int64(20))}, "ends_at=none"},
		{"end removed", surge.SalePatch{EndsAt: ptr(time.Time{})}, "ends_at=none"},
		{"end set", surge.SalePatch{EndsAt: ptr(time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC))}, "ends_at=2031-01-02T03:04:05.000Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs servicetest.Log
			cfg := testConfig(fixedClock())
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Value.Kind() == slog.KindTime {
					a.Value = slog.StringValue(a.Value.Time().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
				}
				return a
			}}))
			hs := &hookStore{Store: openStore(t, t.TempDir())}
			e := openEngine(t, hs, cfg)
			mustCreate(t, e, input("s", 10, 2))
			if _, err := e.UpdateSale(context.Background(), "s", c.patch); err != nil {
				t.Fatalf("update: %v", err)
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, `msg="sale changed"`) {
					line = l
				}
			}
			if line == "" {
				t.Fatalf("no \"sale changed\" line in the log:\n%s", logs.String())
			}
			if strings.Contains(line, "0001-01-01") || !strings.Contains(line, c.want) {
				t.Errorf("the change logged %q, want %s and no year-1 time", line, c.want)
			}
		})
	}
}
