package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestReconcileCountsInWords: the table's summary and the error that ends
// the command say "1 mismatch" and "1 sale", not "1 mismatches" and "1
// sales", and keep the plural for other counts.
func TestReconcileCountsInWords(t *testing.T) {
	for _, c := range []struct {
		file      string
		refundDue bool
		read      string // the table's first line
		last      string // its last line, and the error's count
	}{
		{"paid_not_in_surge.csv", false, "read 3 settlement rows, 3 payments, 4 orders of 1 sale", "1 mismatch"},
		{"paid_not_at_provider.csv", true, "read 1 settlement row, 4 payments, 4 orders of 1 sale", "2 mismatches"},
	} {
		t.Run(c.file, func(t *testing.T) {
			dir, st := openBooks(t)
			defer st.Close()
			ids := reconcileData(t, st, c.refundDue)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"reconcile", "--data-dir", dir, "--settlement", settlementFile(t, c.file, ids)}, &stdout, &stderr)
			lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			if code != 1 || lines[0] != c.read || lines[len(lines)-1] != c.last || stderr.String() != "surge: reconcile: "+c.last+"\n" {
				t.Errorf("exit %d, table:\n%s\nstderr %q; want exit 1, the table from %q to %q, stderr %q",
					code, stdout.String(), stderr.String(), c.read, c.last, "surge: reconcile: "+c.last+"\n")
			}
		})
	}
}
