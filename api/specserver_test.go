package api_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/sqlite"
)

// specServer serves the real API over a SQLite store in dir, with the
// engine's and the handler's configs as given, until the test ends (its
// streams ended first, then the server, the engine and the store).
// Cleanups a test registers after it run before it, as t.Cleanup does.
func specServer(t *testing.T, dir string, ecfg engine.Config, hcfg surgehttp.Config) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(ctx, store, ecfg)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	handler := surgehttp.New(eng, hcfg)
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		handler.CloseStreams()
		srv.Close()
		if err := eng.Close(); err != nil {
			t.Errorf("close engine: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return srv
}
