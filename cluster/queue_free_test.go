package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/waitroom"
)

// TestWaitingRoomDropFreesInBackground: dropping an archived sale's
// waiting room (up to a million buyers: a hash and sorted sets of as many)
// freed them with DEL, on Redis's one thread: 1.5 s for a million on the
// development machine, during which every node's purchases of every sale
// waited past their read timeout. UNLINK frees them in the background, as
// the live state's installs and removals already do. A private
// redis-server: its count of objects freed in the background is no other
// test's.
func TestWaitingRoomDropFreesInBackground(t *testing.T) {
	ctx := context.Background()
	c := privateRedis(t)
	qs := redis.NewQueues(c, "surge", 0)
	start := time.Now().Add(time.Hour)
	q := waitroom.Queue{SaleID: "big", Schedule: waitroom.Schedule{Start: start, Rate: 10}}
	// More buyers than Redis frees at once whatever the command (64).
	for i := range 200 {
		if _, _, err := qs.Join(ctx, q, fmt.Sprint("buyer", i), start.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	freedInBackground(t, c, "the waiting room's keys", func() {
		if err := qs.Drop(ctx, "big"); err != nil {
			t.Fatal(err)
		}
	})
	if n, err := c.Exists(ctx, "surge:{wr:big}:users").Result(); err != nil || n != 0 {
		t.Fatalf("the waiting room's users after the drop: %d %v", n, err)
	}
}
