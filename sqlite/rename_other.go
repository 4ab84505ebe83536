//go:build !linux

package sqlite

// renameNoReplace renames from to to unless to exists (renameIfAbsent:
// Surge is built and tested on Linux, which has an atomic way).
func renameNoReplace(from, to string) error { return renameIfAbsent(from, to) }
