package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

//go:embed gcra.lua
var gcraSrc string

var gcraScript = goredis.NewScript(gcraSrc)

// ErrKeyRefused marks a rate limit report in which Redis answered every
// failed key's call with a refusal of what that key holds (a key of
// another type, a value the script cannot read). Redis itself is up: no
// outage for a circuit breaker to count, or one buyer's key, in every
// report while he buys, would take Redis away from every purchase.
var ErrKeyRefused = errors.New("refused by Redis for what the key holds")

// keyRefused reports whether err is Redis refusing one call for what its
// key holds, as opposed to Redis down, busy, loading, out of memory or
// read-only, which fail every key's call, and every purchase, alike.
func keyRefused(err error) bool {
	var re goredis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "WRONGTYPE ") || strings.HasPrefix(msg, "ERR user_script:")
}

// Limit is a rate limit shared by every node, kept in Redis with GCRA: one
// key per limited id holding its theoretical arrival time. Nodes report
// the requests they admitted in batches (admission.Distributed), so the
// request path never waits on Redis.
type Limit struct {
	c         Client
	prefix    string
	interval  float64 // ms per request
	tolerance float64 // ms of burst
}

// NewLimit returns the limit name of perSecond requests with burst, its
// keys under prefix.
func NewLimit(c Client, prefix, name string, perSecond float64, burst int) *Limit {
	if prefix == "" {
		prefix = "surge"
	}
	iv := 1000 / perSecond
	return &Limit{c: c, prefix: prefix + ":rl:" + name + ":", interval: iv, tolerance: iv * float64(burst)}
}

// Spend records that each key of spent admitted that many requests and
// returns the keys now over the limit with how long they stay blocked.
// One pipelined round trip serves every key (each key is its own script
// call, so keys may live on different Redis Cluster slots). Each key's
// answer stands on its own: when some calls fail (a shard down, a key of
// another type), the error says so and blocked still holds the keys the
// others found over the limit, whose spends Redis recorded; dropping them
// let those keys through for another interval.
func (l *Limit) Spend(ctx context.Context, spent map[string]int64) (map[string]time.Duration, error) {
	if len(spent) == 0 {
		return nil, nil
	}
	args := []any{strconv.FormatFloat(l.interval, 'f', 6, 64), strconv.FormatFloat(l.tolerance, 'f', 6, 64), 0}
	names := make([]string, 0, len(spent))
	keys := make([][]string, 0, len(spent))
	argv := make([][]any, 0, len(spent))
	for k, n := range spent {
		a := slices.Clone(args)
		a[2] = n
		names, keys, argv = append(names, k), append(keys, []string{l.prefix + k}), append(argv, a)
	}
	cmds, err := evalMany(ctx, l.c, gcraScript, keys, argv, nil)
	var (
		blocked map[string]time.Duration
		failed  int
		first   error
		refused = true // every failed call was Redis refusing its key
	)
	for i, cmd := range cmds {
		k := names[i]
		ms, cerr := cmd.Int64()
		if cerr != nil {
			if failed++; first == nil {
				first = cerr
			}
			refused = refused && keyRefused(cerr)
			continue
		}
		if ms > 0 {
			if blocked == nil {
				blocked = make(map[string]time.Duration)
			}
			blocked[k] = time.Duration(ms) * time.Millisecond
		}
	}
	switch {
	case failed > 0 && refused:
		return blocked, fmt.Errorf("redis: rate limit: %d of %d keys %w: %w", failed, len(names), ErrKeyRefused, first)
	case failed > 0:
		return blocked, fmt.Errorf("redis: rate limit: %d of %d keys unanswered: %w", failed, len(names), first)
	case err != nil: // no command to tell (the script could not be loaded)
		return blocked, fmt.Errorf("redis: rate limit: %w", err)
	}
	return blocked, nil
}
