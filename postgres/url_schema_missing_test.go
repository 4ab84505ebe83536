package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

// A URL whose search_path names a schema that does not exist (not
// created yet, or misspelt) is refused with an error that says so, not
// PostgreSQL's "no schema has been selected to create in", which named
// neither the search_path nor what to do.
func TestURLSchemaMissingSaysSo(t *testing.T) {
	ns := servicetest.Namespace(t) // never created
	u := url()
	if strings.Contains(u, "?") {
		u += "&search_path=" + ns
	} else {
		u += "?search_path=" + ns
	}
	db, err := postgres.Open(context.Background(), u, postgres.Options{})
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded with a search_path naming no schema")
	}
	if msg := err.Error(); !strings.Contains(msg, "search_path") || !strings.Contains(msg, ns) || !strings.Contains(msg, "CREATE SCHEMA") {
		t.Fatalf("Open's error %q does not say the search_path %s names no schema to create", msg, ns)
	}
}
