package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

// TestSynchronousCommit reads the setting a session of the URL runs with,
// the URL's own options included.
func TestSynchronousCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name, url, want string
	}{
		{"off in the URL's options", servicetest.PostgresURL() + "&options=-c%20synchronous_commit%3Doff", "off"},
		{"local in the URL's options", servicetest.PostgresURL() + "&options=-c%20synchronous_commit%3Dlocal", "local"},
		{"on in the URL's options", servicetest.PostgresURL() + "&options=-c%20synchronous_commit%3Don", "on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := postgres.SynchronousCommit(ctx, tc.url)
			if err != nil {
				t.Fatalf("PostgreSQL (run scripts/services.sh): %v", err)
			}
			if got != tc.want {
				t.Errorf("synchronous_commit %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := postgres.SynchronousCommit(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable"); err == nil {
		t.Errorf("no error from a server that is not there")
	}
}
