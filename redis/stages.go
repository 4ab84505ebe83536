package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// StagePass is a pass over Redis's keys for staging keys (install.go)
// that an install left behind. An install records its epoch in the
// bucket's set of installs before it stages anything, so that the next
// one drops what it left should it never reach its swap; versions before
// that record did not, and the staging keys of their crashed installs are
// found by no install and no removal: only by reading the keys. The zero
// value starts a pass; one caller at a time.
type StagePass struct {
	cursors map[string]uint64 // per server (each master of a Redis Cluster), where its scan goes on
	done    map[string]bool   // the servers read whole
}

// Stage is a staging key found by ScanStages.
type Stage struct {
	Key   string
	Sale  string
	Epoch int64
	tag   string // the bucket's hash tag
}

// ScanStages reads the next count keys or so of every server (of every
// master of a Redis Cluster) from where p left off, and returns the
// staging keys among them; done once p has read every server whole.
func (s *Stock) ScanStages(ctx context.Context, p *StagePass, count int64) (found []Stage, done bool, err error) {
	if p.cursors == nil {
		p.cursors, p.done = map[string]uint64{}, map[string]bool{}
	}
	match := globEscape(s.prefix) + ":{*}:s[0-9]*:[uko]"
	var mu sync.Mutex
	scan := func(ctx context.Context, c *goredis.Client) error {
		addr := c.Options().Addr
		mu.Lock()
		cur, skip := p.cursors[addr], p.done[addr]
		mu.Unlock()
		if skip {
			return nil
		}
		keys, next, err := c.Scan(ctx, cur, match, count).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		p.cursors[addr], p.done[addr] = next, next == 0
		for _, k := range keys {
			if st, ok := s.parseStage(k); ok {
				found = append(found, st)
			}
		}
		return nil
	}
	switch c := s.c.(type) {
	case *goredis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *goredis.Client:
		err = scan(ctx, c)
	default:
		return nil, false, fmt.Errorf("redis: scan for staging keys: a client of type %T", s.c)
	}
	if err != nil {
		return nil, false, fmt.Errorf("redis: scan for staging keys: %w", err)
	}
	done = true
	for _, d := range p.done {
		done = done && d
	}
	return found, done, nil
}

// parseStage reads a staging key's sale and epoch (stageKeys).
func (s *Stock) parseStage(key string) (Stage, bool) {
	rest, ok := strings.CutPrefix(key, s.prefix+":{")
	if !ok {
		return Stage{}, false
	}
	tag, rest, ok := strings.Cut(rest, "}:s")
	if !ok || len(rest) < 3 || rest[len(rest)-2] != ':' || !strings.Contains("uko", rest[len(rest)-1:]) {
		return Stage{}, false
	}
	epoch, err := strconv.ParseInt(rest[:len(rest)-2], 10, 64)
	if err != nil || epoch < 0 {
		return Stage{}, false
	}
	sale, _, _ := strings.Cut(tag, "#")
	return Stage{Key: key, Sale: sale, Epoch: epoch, tag: tag}, true
}

// DropStages deletes the staging keys found by ScanStages that no install
// will swap in, all in one round trip, and returns how many it deleted:
// those of sales archived (archived tells), and of others those whose
// epoch is not recorded (an install of this version under way records
// its own) and not newer than the bucket's state (an older version's
// install under way would be). Each is checked and deleted in one script.
func (s *Stock) DropStages(ctx context.Context, found []Stage, archived func(sale string) bool) (int, error) {
	if len(found) == 0 {
		return 0, nil
	}
	keys := make([][]string, len(found))
	args := make([][]any, len(found))
	for i, st := range found {
		b := s.prefix + ":{" + st.tag + "}:"
		keys[i] = []string{st.Key, b + "st", b + "m"}
		flag := "0"
		if archived(st.Sale) {
			flag = "1"
		}
		args[i] = []any{st.Epoch, flag}
	}
	cmds, err := evalMany(ctx, s.c, dropStageScript, keys, args, nil)
	n := 0
	for _, c := range cmds {
		if v, err := c.Int64(); err == nil {
			n += int(v)
		}
	}
	if err != nil {
		return n, fmt.Errorf("redis: drop staging keys: %w", err)
	}
	return n, nil
}

// globEscape quotes the characters SCAN's MATCH reads as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
