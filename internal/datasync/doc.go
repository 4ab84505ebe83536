// Package datasync flushes a file's data to stable storage without its
// timestamps: fdatasync(2) where the platform has it, fsync elsewhere. A
// file that keeps its size then needs no journal commit for its mtime.
package datasync
