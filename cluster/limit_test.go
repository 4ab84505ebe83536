package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge/cluster"
)

// The shared GCRA limit on the real Redis: requests within rate and burst
// pass, the excess blocks for as long as GCRA says, keys are independent.
func TestSharedLimit(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{})
	defer s.Close()
	l := s.SharedLimit("buyer", 10, 5) // 100 ms per request, 500 ms of burst
	ctx := context.Background()
	blocked, err := l.Spend(ctx, map[string]int64{"alice": 3, "bob": 1})
	if err != nil || len(blocked) != 0 {
		t.Fatalf("within the burst: %v, %v", blocked, err)
	}
	blocked, err = l.Spend(ctx, map[string]int64{"alice": 5})
	if err != nil {
		t.Fatal(err)
	}
	// 8 requests at once: 800 ms of arrivals against 500 ms of tolerance.
	if w := blocked["alice"]; w < 200*time.Millisecond || w > 310*time.Millisecond {
		t.Errorf("alice blocked for %v, want about 300ms", w)
	}
	if _, ok := blocked["bob"]; ok {
		t.Errorf("bob blocked")
	}
	time.Sleep(400 * time.Millisecond)
	blocked, err = l.Spend(ctx, map[string]int64{"alice": 1})
	if err != nil || len(blocked) != 0 {
		t.Errorf("after the block: %v, %v", blocked, err)
	}
}
