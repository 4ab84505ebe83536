package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/surgehq/surge/servicetest"
)

// TestURLPoolSizeKept: docs/cluster.md tells operators to size
// max_connections for their nodes, but every node opened 16 connections
// whatever its URL said: pgx's own pool_max_conns was parsed and then
// overwritten, so a deployment of many nodes could not make each take
// fewer. The URL's size is kept; without one a node takes 16; a size
// under 2 is refused, since a sale's change holds one connection (its
// install lock) while it uses another.
func TestURLPoolSizeKept(t *testing.T) {
	for _, tc := range []struct {
		name, param string
		want        int32
		err         string
	}{
		{"the URL's size", "&pool_max_conns=3", 3, ""},
		{"a larger one", "&pool_max_conns=40", 40, ""},
		{"none: the default", "", 16, ""},
		{"one connection", "&pool_max_conns=1", 0, "pool_max_conns=1: a node needs at least 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			u := servicetest.PostgresURL() + tc.param
			db, err := Open(ctx, u, Options{Schema: servicetest.Namespace(t)})
			if tc.err != "" {
				if err == nil {
					db.Close()
					t.Fatalf("Open with %s: no error; want %q", tc.param, tc.err)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Open with %s: %v; want %q", tc.param, err, tc.err)
				}
				if cerr := CheckURL(u); cerr == nil || !strings.Contains(cerr.Error(), tc.err) {
					t.Errorf("CheckURL with %s: %v; want %q, as Open says", tc.param, cerr, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := db.pool.Config().MaxConns; got != tc.want {
				t.Errorf("Open with %q: a pool of %d connections; want %d", tc.param, got, tc.want)
			}
		})
	}
}

// TestNamesPoolSize: pool_max_conns is found in either form of a
// connection string, and only as a parameter's name.
func TestNamesPoolSize(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"postgres://u@h/db?pool_max_conns=4", true},
		{"postgresql://u@h/db?sslmode=disable&pool_max_conns=4", true},
		{"postgres://u@h/db?sslmode=disable", false},
		{"postgres://pool_max_conns@h/db", false},
		{"host=h dbname=db pool_max_conns=4", true},
		{"host=h pool_max_conns = 4", true},
		{"pool_max_conns=4 host=h", true},
		{"host=h application_name=xpool_max_conns", false},
	} {
		if got := namesPoolSize(tc.url); got != tc.want {
			t.Errorf("namesPoolSize(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}
