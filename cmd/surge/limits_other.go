//go:build !unix

package main

// openFileLimit is unknown here; the connection caps take fixed defaults.
func openFileLimit() (uint64, bool) { return 0, false }
