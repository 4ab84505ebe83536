package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// failsFirstWrite refuses the first write only, as a disk that was full
// for a moment (another process's file removed right after) does: the
// report's later lines are written, its first is not.
type failsFirstWrite struct {
	failed bool
	out    bytes.Buffer
}

func (w *failsFirstWrite) Write(p []byte) (int, error) {
	if !w.failed {
		w.failed = true
		return 0, errors.New("no space left on device")
	}
	return w.out.Write(p)
}

// TestReconcileReportPartlyWrittenIsNotClean: a table report whose first
// line ("read N settlement rows, ...") could not be written is a report
// not written whole; docs/payments.md: exit 3 when the books match but the
// report could not be written, and the write's error on stderr. The
// table dropped the first line's error: the command exited 0 with a
// report missing its counts, and said nothing of the failed write.
func TestReconcileReportPartlyWrittenIsNotClean(t *testing.T) {
	dir, st := openBooks(t)
	defer st.Close()
	ids := reconcileData(t, st, false)
	for _, c := range []struct {
		file string
		want int
	}{{"clean.csv", 3}, {"amount_differs.csv", 1}} {
		var stdout failsFirstWrite
		var stderr bytes.Buffer
		code := run(context.Background(), []string{"reconcile", "--data-dir", dir, "--settlement", settlementFile(t, c.file, ids)}, &stdout, &stderr)
		if code != c.want || !strings.Contains(stderr.String(), "no space left") {
			t.Errorf("reconcile %s, the report's first line unwritten: exit status %d, stderr %q, written %q; want exit %d and the write's error on stderr",
				c.file, code, stderr.String(), stdout.out.String(), c.want)
		}
	}
}
