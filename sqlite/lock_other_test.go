//go:build !unix

package sqlite_test

import (
	"errors"
	"testing"

	"github.com/surgehq/surge/sqlite"
)

// TestOpenRefusedWithoutFlock: where flock(2) does not exist, the data
// directory's lock was a no-op, so a second process opened the directory
// beside the first and both sold the same units. Open refuses there,
// saying why, rather than serve a directory it cannot lock.
func TestOpenRefusedWithoutFlock(t *testing.T) {
	s, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{NoExpiry: true})
	if err == nil {
		s.Close()
		t.Fatal("Open served a data directory it cannot lock: a second process could serve it too and sell the same units")
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Open: %v, want errors.ErrUnsupported", err)
	}
	t.Log(err)
}
