package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoDatabaseNamesWhereTheDataDirCameFrom: surge backup (and surge
// reconcile) on a data directory without a database. Run beside the
// server's data directory without --data-dir, backup said only "stat
// surge-data/surge.db: no such file or directory": not that it looked in
// the default data directory, nor how to give another. Each answer must
// name the directory, where it came from (the default, --data-dir,
// SURGE_DATA_DIR) and what to set.
func TestNoDatabaseNamesWhereTheDataDirCameFrom(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	settlement := filepath.Join(work, "settlement.csv")
	if err := os.WriteFile(settlement, []byte("payment_id,order_id,amount,currency,status\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(work, "nope")
	for _, tc := range []struct {
		name string
		args []string
		env  string // SURGE_DATA_DIR, "" unset
		pg   string // SURGE_POSTGRES_URL, "" unset
		want []string
	}{
		{"backup, default", []string{"backup", "--to", "b.db"}, "", "", []string{"default data directory", "surge-data", "--data-dir", "SURGE_DATA_DIR"}},
		{"backup, flag", []string{"backup", "--to", "b.db", "--data-dir", missing}, "", "", []string{"--data-dir " + missing}},
		{"backup, environment", []string{"backup", "--to", "b.db"}, missing, "", []string{"SURGE_DATA_DIR=" + missing, "--data-dir"}},
		{"backup, cluster node", []string{"backup", "--to", "b.db"}, missing, "postgres://surge@db/surge", []string{"SURGE_DATA_DIR=" + missing, "SURGE_POSTGRES_URL", "PostgreSQL's own tools"}},
		{"reconcile, default", []string{"reconcile", "--settlement", settlement}, "", "", []string{"default data directory", "surge-data", "--data-dir", "SURGE_DATA_DIR"}},
		{"reconcile, environment", []string{"reconcile", "--settlement", settlement}, missing, "", []string{"SURGE_DATA_DIR=" + missing, "--data-dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SURGE_DATA_DIR", tc.env)
			if tc.env == "" {
				os.Unsetenv("SURGE_DATA_DIR")
			}
			t.Setenv("SURGE_POSTGRES_URL", tc.pg)
			if tc.pg == "" {
				os.Unsetenv("SURGE_POSTGRES_URL")
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code == 0 {
				t.Fatalf("exit 0 without a database; stdout %q", stdout.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not say %q", stderr.String(), w)
				}
			}
			if _, err := os.Stat(filepath.Join(work, "b.db")); err == nil {
				t.Error("a backup file was written")
			}
		})
	}
}
