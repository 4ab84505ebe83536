package sqlite

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
)

// TestNotReadyWhileCommitStalls: a commit the disk neither completes nor
// fails (an fsync that hangs on a dying or throttled disk) left Ready
// answering nil for as long as it lasted, so /readyz kept a load balancer
// sending buyers to a node where every purchase waited out its timeout.
// Once a commit has been under way longer than commitStall the store is
// not ready, and it is ready again once the commit completes.
func TestNotReadyWhileCommitStalls(t *testing.T) {
	commithook.Install()
	ctx := t.Context()
	s, end := endingSales(t, "a")
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready before the stall: %v", err)
	}
	release, reserved := stallWhile(t, func() error {
		_, _, err := s.Reserve(ctx, "a", []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(end.Add(-time.Minute)))
		return err
	})
	const within = 15 * time.Second
	for deadline := time.Now().Add(within); s.Ready(ctx) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("Ready still nil %v into a commit that neither completed nor failed", within)
		}
	}
	t.Logf("while stalled: %v", s.Ready(ctx))
	release()
	if err := <-reserved; err != nil {
		t.Fatalf("the stalled Reserve, once the disk went on: %v", err)
	}
	// The writer answers its buyers, then marks itself idle.
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		err := s.Ready(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready %v after the stalled commit completed: %v", within, err)
		}
	}
}
