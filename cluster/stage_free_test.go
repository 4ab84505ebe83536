package cluster_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/surgehq/surge/redis"
)

// TestLeftStagingKeyDropFreesInBackground: the leader's pass drops the
// staging keys a crashed install left (a sale's buyers, keys and held
// orders: as many entries as the sale has buyers). dropstage.lua freed
// them with DEL, on Redis's one thread, stalling every sale's purchases
// for a large sale's key, as the waiting room's drop did
// (TestWaitingRoomDropFreesInBackground). UNLINK frees them in the
// background, as install.lua and the installs' own drops already do. A
// private redis-server: its count of objects freed in the background is
// no other test's.
func TestLeftStagingKeyDropFreesInBackground(t *testing.T) {
	ctx := context.Background()
	c := privateRedis(t)
	// A staging key of epoch 5 left beside a bucket at epoch 7, its
	// install not recorded: no install will swap it in. More entries than
	// a hash keeps in one allocation (hash-max-listpack-entries, 512) and
	// than Redis frees at once whatever the command (64).
	const key = "p:{big#0}:s5:u"
	fields := make([]any, 0, 2000)
	for i := range 1000 {
		fields = append(fields, fmt.Sprint("buyer", i), 1)
	}
	if err := c.HSet(ctx, key, fields...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, "p:{big#0}:m", "epoch", 7).Err(); err != nil {
		t.Fatal(err)
	}
	st := redis.New(c, "p")
	var pass redis.StagePass
	found, done, err := st.ScanStages(ctx, &pass, 100)
	if err != nil || !done || len(found) != 1 || found[0].Key != key {
		t.Fatalf("the pass found %+v (done %v): %v, want %s", found, done, err, key)
	}
	freedInBackground(t, c, "the staging key", func() {
		n, err := st.DropStages(ctx, found, func(string) bool { return false })
		if err != nil || n != 1 {
			t.Fatalf("DropStages = %d, %v; want the key dropped", n, err)
		}
	})
	if n, err := c.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("the staging key after the drop: %d %v", n, err)
	}
}
