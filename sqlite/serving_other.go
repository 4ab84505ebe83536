//go:build !linux

package sqlite

import "os"

// markServing does nothing where OFD locks do not exist (Surge is built
// and tested on Linux): served cannot tell there.
func markServing(*os.File) error { return nil }

// served cannot tell where OFD locks do not exist: the caller assumes a
// store holds dir.
func served(string) (held, known bool) { return false, false }
