package redis_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// TestScanStagesReadsEveryMaster: on a Redis Cluster each master holds
// its own slots' keys and SCAN reads one server: the pass over the keys
// for staging keys that crashed installs left must read every master
// whole, and find no other key.
func TestScanStagesReadsEveryMaster(t *testing.T) {
	ctx := context.Background()
	rc := servicetest.StartRedisCluster(t, 3, 0)
	c, err := redis.Dial(ctx, rc.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	masters := map[string]bool{}
	for i := range 30 {
		// A staging key of a bucket, and keys of the live state beside it.
		for _, k := range []string{fmt.Sprintf("p:{s%d#1}:s7:o", i), fmt.Sprintf("p:{s%d#1}:o", i), fmt.Sprintf("p:{s%d#1}:st", i)} {
			if err := c.SAdd(ctx, k, "x").Err(); err != nil {
				t.Fatal(err)
			}
		}
		m, err := rc.MasterOf(ctx, fmt.Sprintf("p:{s%d#1}:o", i))
		if err != nil {
			t.Fatal(err)
		}
		masters[m] = true
	}
	if len(masters) < 2 {
		t.Fatalf("the keys are on %d master(s); the test needs them spread", len(masters))
	}
	st := redis.New(c, "p")
	var pass redis.StagePass
	found := map[string]bool{}
	for round := 0; ; round++ {
		got, done, err := st.ScanStages(ctx, &pass, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range got {
			if s.Epoch != 7 || s.Key != "p:{"+s.Sale+"#1}:s7:o" {
				t.Errorf("found %+v, not a staging key of epoch 7", s)
			}
			found[s.Sale] = true
		}
		if done {
			break
		}
		if round > 100 {
			t.Fatal("the pass never ended")
		}
	}
	if len(found) != 30 {
		t.Errorf("the pass found the staging keys of %d sales of 30, over %d masters", len(found), len(masters))
	}
}
