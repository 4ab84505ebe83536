// Package storetest is the contract suite of surge.Store. Every backend
// runs it unchanged from its own tests:
//
//	func TestContract(t *testing.T) { storetest.Run(t, harness) }
//
// The suite drives the store with explicit times (never the wall clock), so
// its outcomes are deterministic, and checks behaviour only through the
// surge.Store interface, so it says nothing about how a backend works.
package storetest

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// Harness opens stores of one backend.
type Harness struct {
	// New prepares a fresh, empty dataset for one subtest and returns the
	// function that opens a store over it. Calling open again after the
	// previous store was closed must reopen the same data: that is how the
	// suite tests durability and recovery. open should fail t if it cannot
	// open; the suite closes every store it opens.
	New func(t *testing.T) (open func(t *testing.T) surge.Store)
}

// Run runs the whole contract suite against the backend h opens.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("storetest: Harness.New is nil")
	}
	t.Run("Sales", func(t *testing.T) { testSales(t, h) })
	t.Run("Reserve", func(t *testing.T) { testReserve(t, h) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, h) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, h) })
	t.Run("Pay", func(t *testing.T) { testPay(t, h) })
	t.Run("Transitions", func(t *testing.T) { testTransitions(t, h) })
	t.Run("HoldEnd", func(t *testing.T) { testHoldEnd(t, h) })
	t.Run("Expire", func(t *testing.T) { testExpire(t, h) })
	t.Run("Orders", func(t *testing.T) { testOrders(t, h) })
	t.Run("Recovery", func(t *testing.T) { testRecovery(t, h) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, h) })
	t.Run("Archive", func(t *testing.T) { testArchive(t, h) })
	t.Run("ArchiveUnstarted", func(t *testing.T) { testArchiveUnstarted(t, h) })
	t.Run("Steer", func(t *testing.T) { testSteer(t, h) })
	t.Run("Payments", func(t *testing.T) { testPayments(t, h) })
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, h) })
}

// holdSeconds is the hold of the suite's sales unless a test says otherwise.
const holdSeconds = 60

const hold = holdSeconds * time.Second

// at is the suite's clock: a fixed base time plus d.
func at(d time.Duration) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(d)
}
