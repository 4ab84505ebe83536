package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/waitroom"
)

// TestWaitingRoomScriptFreesInBackground: queue.lua drops a queue's
// sorted sets of buyers (up to a million) when the users hash was lost
// (evicted), when it rebuilds them, and when the lottery is drawn; it did
// so with DEL, on Redis's one thread, stalling every sale's purchases for
// a large queue's, as the waiting room's drop did
// (TestWaitingRoomDropFreesInBackground). UNLINK frees them in the
// background. A private redis-server: its count of objects freed in the
// background is no other test's.
func TestWaitingRoomScriptFreesInBackground(t *testing.T) {
	ctx := context.Background()
	c := privateRedis(t)
	qs := redis.NewQueues(c, "surge", 0)
	start := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name    string
		lottery bool
		lose    string // the key of the queue lost before the next call
		then    func(q waitroom.Queue) error
	}{
		{"users hash lost", false, "users", func(q waitroom.Queue) error {
			_, _, err := qs.Join(ctx, q, "late", start.Add(-time.Minute))
			return err
		}},
		{"seq lost, rebuilt", false, "seq", func(q waitroom.Queue) error {
			_, _, err := qs.Join(ctx, q, "late", start.Add(-time.Minute))
			return err
		}},
		{"lottery drawn", true, "", func(q waitroom.Queue) error {
			_, err := qs.Lookup(ctx, q, "buyer0", start.Add(time.Second))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := waitroom.Queue{SaleID: fmt.Sprint("big", tc.lottery, tc.lose), Lottery: tc.lottery,
				Schedule: waitroom.Schedule{Start: start, Rate: 10}}
			// More buyers than a sorted set keeps in one allocation
			// (zset-max-listpack-entries, 128) and than Redis frees at
			// once whatever the command (64).
			for i := range 300 {
				if _, _, err := qs.Join(ctx, q, fmt.Sprint("buyer", i), start.Add(-time.Minute)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.lose != "" {
				// DEL: a key lost is not this test's count.
				if err := c.Del(ctx, "surge:{wr:"+q.SaleID+"}:"+tc.lose).Err(); err != nil {
					t.Fatal(err)
				}
			}
			freedInBackground(t, c, "the queue's buyers", func() {
				if err := tc.then(q); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
