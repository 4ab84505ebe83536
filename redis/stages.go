package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surgehq/surge"
)

// StagePass is a pass over Redis's keys for staging keys (install.go)
// that an install left behind. An install records its epoch in the
// bucket's set of installs before it stages anything, so that the next
// one drops what it left should it never reach its swap; versions before
// that record did not, and the staging keys of their crashed installs are
// found by no install and no removal: only by reading the keys. The zero
// value starts a pass; one caller at a time.
type StagePass struct{ keyPass }

// keyPass is a pass over every key of every server (each master of a
// Redis Cluster), a part at a time.
type keyPass struct {
	servers map[string]*serverPass // by the address the client calls it at
}

// serverPass is where a pass is in one server's keys.
type serverPass struct {
	id     string // the server's run_id, when its cursor was given
	cursor uint64 // where its scan goes on
	done   bool   // read whole
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
	done, err = s.scan(ctx, &p.keyPass, globEscape(s.prefix)+":{*}:s[0-9]*:[uko]", count, func(k string) {
		if st, ok := s.parseStage(k); ok {
			found = append(found, st)
		}
	})
	if err != nil {
		return nil, false, fmt.Errorf("redis: scan for staging keys: %w", err)
	}
	return found, done, nil
}

// scan reads the next count keys or so matching match of every server
// from where p left off, handing each to each (one call at a time), and
// reports whether p has read every server whole.
func (s *Stock) scan(ctx context.Context, p *keyPass, match string, count int64, each func(key string)) (done bool, err error) {
	if p.servers == nil {
		p.servers = map[string]*serverPass{}
	}
	var mu sync.Mutex
	masters := map[string]bool{} // the servers of this call
	scan := func(ctx context.Context, c *goredis.Client) error {
		addr := c.Options().Addr
		mu.Lock()
		masters[addr] = true
		sp := p.servers[addr]
		if sp == nil {
			sp = &serverPass{}
			p.servers[addr] = sp
		}
		id, cur, skip := sp.id, sp.cursor, sp.done
		mu.Unlock()
		if skip {
			return nil
		}
		// A cursor is a place in one server's hash table, whose hashes are
		// seeded at random when it starts: on another server behind the
		// same address (the master Sentinel failed over to, all of them
		// "FailoverClient"; a server restarted) it skipped keys at random,
		// and the pass ended without them. The server's run_id, read on
		// the same connection, tells; one that refuses INFO (an ACL
		// without @dangerous) is read as before.
		var info *goredis.StringCmd
		var scanned *goredis.ScanCmd
		_, _ = c.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
			info = pipe.Info(ctx, "server")
			scanned = pipe.Scan(ctx, cur, match, count)
			return nil
		})
		keys, next, err := scanned.Result()
		if err != nil {
			return err
		}
		now := runID(info.Val())
		mu.Lock()
		defer mu.Unlock()
		if cur != 0 && now != id {
			next = 0 // another server: its pass starts over (the keys read are its own all the same)
			sp.done = false
		} else {
			sp.done = next == 0
		}
		sp.id, sp.cursor = now, next
		for _, k := range keys {
			each(k)
		}
		return nil
	}
	switch c := s.c.(type) {
	case *goredis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *goredis.Client:
		err = scan(ctx, c)
	default:
		return false, fmt.Errorf("a client of type %T", s.c)
	}
	if err != nil {
		return false, err
	}
	// Only the servers of this call count: a master a replica took over
	// from (an operator's CLUSTER FAILOVER, which fails no call) or that
	// left the cluster is read no more, and a pass waiting for it to be
	// read whole never ended. Its slots are another master's now, read
	// under that one's address.
	done = true
	for addr, sp := range p.servers {
		if !masters[addr] {
			delete(p.servers, addr)
			continue
		}
		done = done && sp.done
	}
	return done, nil
}

// runID reads the run_id of INFO server's answer ("" without one).
func runID(info string) string {
	for line := range strings.Lines(info) {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return id
		}
	}
	return ""
}

// SalePass is a pass over Redis's keys for the sales whose live state or
// waiting room they hold (ScanSales). The zero value starts a pass; one
// caller at a time.
type SalePass struct{ keyPass }

// ScanSales reads the next count keys or so of every server (of every
// master of a Redis Cluster) from where p left off, and returns the sales
// whose live state or waiting room those keys are part of, each once;
// done once p has read every server whole. Nothing else finds the keys a
// Redis brought back from before a sale was archived (an older snapshot
// or AOF reloaded, a replica promoted): no one reads an archived sale's.
func (s *Stock) ScanSales(ctx context.Context, p *SalePass, count int64) (sales []string, done bool, err error) {
	seen := map[string]bool{}
	done, err = s.scan(ctx, &p.keyPass, globEscape(s.prefix)+":{*}:*", count, func(k string) {
		if sale, ok := s.saleOf(k); ok && !seen[sale] {
			seen[sale] = true
			sales = append(sales, sale)
		}
	})
	if err != nil {
		return nil, false, fmt.Errorf("redis: scan for sales: %w", err)
	}
	return sales, done, nil
}

// saleOf reads the sale a key of a live state (stock.go keys, but its
// staging keys) or of a waiting room (queue.go, but its dropped mark)
// belongs to.
func (s *Stock) saleOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.prefix+":{")
	if !ok {
		return "", false
	}
	tag, name, ok := strings.Cut(rest, "}:")
	if !ok {
		return "", false
	}
	sale, room := strings.CutPrefix(tag, "wr:")
	if room && name == "dropped" {
		// The mark a dropped waiting room leaves, meant to stay (queue.go
		// Drop): it expires on its own.
		return "", false
	}
	if !room {
		if len(name) > 1 && name[0] == 's' && name[1] >= '0' && name[1] <= '9' {
			// A staging key: the stages' pass drops those (ScanStages), an
			// archived sale's included, and a removal would leave one no
			// install recorded.
			return "", false
		}
		sale, _, _ = strings.Cut(tag, "#")
	}
	return sale, surge.ValidID(sale)
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
