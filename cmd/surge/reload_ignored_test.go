package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge/servicetest"
)

// TestReloadRestartKeyWarnedEachTime: a setting that needs a restart,
// changed in the file, is not applied by SIGHUP; docs/operations.md says
// such settings "are logged as ignored". Every reload must say so while
// the file and the running value differ, not only the first: an operator
// who edits something else later and sends SIGHUP again reads "config
// reloaded" and believes the whole file is in force.
func TestReloadRestartKeyWarnedEachTime(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "surge.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("max-batch: 512\nrate-limit-ip: 100\n")
	args := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--admin-token", "reload-ignored-admin-token"}
	var logBuf servicetest.Log
	srv := startReloadable(t, args, &logBuf)
	const warn = "needs a restart; ignored until then"
	ignored := func() int { return strings.Count(grepLines(logBuf.String(), warn), "key=max-batch") }
	for i, body := range []string{
		"max-batch: 100\nrate-limit-ip: 100\n", // the restart-only key changes
		"max-batch: 100\nrate-limit-ip: 50\n",  // a later edit of a live key
		"max-batch: 100\nrate-limit-ip: 50\n",  // nothing new
	} {
		write(body)
		srv.reload(args)
		if got := ignored(); got != i+1 {
			t.Errorf("reload %d: max-batch is 100 in the file and %d in force, yet the log warns of it %d times in %d reloads:\n%s",
				i+1, srv.config().maxBatch, got, i+1, logBuf.String())
		}
	}
	// Set back to the running value: nothing is ignored any more.
	write("max-batch: 512\nrate-limit-ip: 50\n")
	srv.reload(args)
	if got := ignored(); got != 3 {
		t.Errorf("after max-batch went back to its running value the log warns of it again (%d warnings in all, want 3):\n%s", got, logBuf.String())
	}
}
