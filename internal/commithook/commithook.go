// Package commithook runs a function inside the next SQLite commit of the
// process, before it is written: the tests of the embedded store and of
// the API stall a commit there, as a disk that stops answering would, or
// end a request's context while it commits. It can also make the next
// commit fail after its rows were written into the transaction, as a
// COMMIT the disk refuses does (RefuseNext).
//
// The state is a package variable because the driver's connection hooks
// are process-wide (modernc.org/sqlite.RegisterConnectionHook): one hook,
// installed once, serves every store the test binary opens.
package commithook

import (
	"sync"
	"sync/atomic"
	"testing"

	driver "modernc.org/sqlite"
)

var (
	next      atomic.Pointer[func()]
	refuse    atomic.Bool
	installed sync.Once
)

// Install hooks every connection the driver opens from now on; call it
// before the store under test opens its connections.
func Install() {
	installed.Do(func() {
		driver.RegisterConnectionHook(func(c driver.ExecQuerierContext, _ string) error {
			c.(driver.HookRegisterer).RegisterCommitHook(func() int32 {
				if f := next.Swap(nil); f != nil {
					(*f)()
				}
				if refuse.Swap(false) {
					// Non-zero: SQLite rolls the transaction back and
					// the COMMIT fails (SQLITE_CONSTRAINT_COMMITHOOK).
					return 1
				}
				return 0
			})
			return nil
		})
	})
}

// OnNext makes f run once, inside the next commit on a hooked connection;
// nil takes back an f that has not run yet.
func OnNext(f func()) {
	if f == nil {
		next.Store(nil)
		return
	}
	next.Store(&f)
}

// StallNext holds the next commit on a hooked connection, as a disk that
// stops answering, until release (or the test's end); stalled closes once
// it is held.
func StallNext(t testing.TB) (stalled <-chan struct{}, release func()) {
	held, let := make(chan struct{}), make(chan struct{})
	OnNext(func() {
		close(held)
		<-let
	})
	var once sync.Once
	release = func() { once.Do(func() { close(let) }) }
	t.Cleanup(release)
	return held, release
}

// RefuseNext makes the next commit on a hooked connection fail, rolled
// back whole; false takes back a refusal that has not happened yet.
func RefuseNext(on bool) { refuse.Store(on) }
