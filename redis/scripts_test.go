package redis_test

import (
	"context"
	"testing"

	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// TestScriptsSurviveScriptFlush: a Redis that forgot its scripts (restarted,
// SCRIPT FLUSH) answers NOSCRIPT; the one runner loads the script and runs
// the refused calls again, whether one call or a pipelined many, for every
// script (the rate limit's single calls failed "redis: nil" after a flush
// until a pipelined call loaded it; a CI run's other packages flush the
// one Redis while the cluster tests spend).
func TestScriptsSurviveScriptFlush(t *testing.T) {
	ctx := context.Background()
	c := dial(t)
	lim := redis.NewLimit(c, servicetest.Namespace(t), "buyer", 1.0/3600, 1)
	spend := map[string]int64{"a": 5, "b": 5, "c": 5}
	for round := range 2 {
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		blocked, err := lim.Spend(ctx, spend)
		if err != nil {
			t.Fatalf("round %d: Spend after SCRIPT FLUSH: %v", round, err)
		}
		if len(blocked) != len(spend) {
			t.Fatalf("round %d: blocked %v, want every key over a limit of one an hour", round, blocked)
		}
	}
	// One key is one call, sent on its own: it too must load the script
	// it was refused for, not send another (the rate limit's was sent as
	// an empty script, which answers nil).
	for round := range 2 {
		if round == 0 {
			if err := c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		one, err := lim.Spend(ctx, map[string]int64{"d": 5})
		if err != nil || len(one) != 1 {
			t.Fatalf("one key, round %d: blocked %v, err %v", round, one, err)
		}
	}
}
