package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestChangeFeedLossLogged: a node whose PostgreSQL goes away for a few
// seconds loses the connection it listens for other nodes' changes on.
// Until it listens again it hears of them only at its periodic sync, so
// an operator must see both the loss and the return in its log, once each
// (not once per reconnect attempt, one a second). The listener reconnected
// without a word: the node's log said nothing of its change feed at all.
func TestChangeFeedLossLogged(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	px := servicetest.NewProxy(t, "127.0.0.1:5432")
	recs := &servicetest.Records{Level: slog.LevelInfo}
	a := openStoreAt(t, redisURL(), "postgres://postgres@"+px.Addr+"/test?sslmode=disable",
		cluster.Config{Prefix: ns, Schema: ns, NodeID: "a", Logger: slog.New(recs)})
	defer a.Close()
	b := openStore(t, ns, cluster.Config{})
	defer b.Close()
	sl := mustSale(t, b, "feed-log", 10, 1)
	n := 0
	// heardRename renames the sale on node b until node a hears of it.
	heardRename := func(within time.Duration) bool {
		for deadline := time.Now().Add(within); time.Now().Before(deadline); {
			n++
			name := fmt.Sprintf("rename %d", n)
			if _, err := b.UpdateSale(ctx, sl.ID, surge.SalePatch{Name: &name}, surge.At(time.Now())); err != nil {
				t.Fatalf("rename the sale on node b: %v", err)
			}
			timer := time.NewTimer(500 * time.Millisecond)
		wait:
			for {
				select {
				case id := <-a.Changed():
					if id == sl.ID {
						timer.Stop()
						return true
					}
				case <-timer.C:
					break wait
				}
			}
		}
		return false
	}
	if !heardRename(10 * time.Second) {
		t.Fatal("node a never heard an announcement before the outage")
	}

	feed := func() []slog.Record {
		var out []slog.Record
		seen := map[string]bool{}
		for _, m := range recs.Messages() {
			if strings.Contains(m, "change feed") && !seen[m] {
				seen[m] = true
				out = append(out, recs.Named(m)...)
			}
		}
		return out
	}
	if got := feed(); len(got) != 0 {
		t.Fatalf("before any outage the log speaks of the change feed: %v", got)
	}

	px.Cut() // PostgreSQL gone for node a: every reconnect is refused
	time.Sleep(3500 * time.Millisecond)
	// Forget what was heard before the cut: a late announcement of the
	// renames above would pass for one heard after the outage.
drain:
	for {
		select {
		case <-a.Changed():
		default:
			break drain
		}
	}
	px.Restore()
	if !heardRename(20 * time.Second) {
		t.Fatal("node a never heard an announcement again after PostgreSQL came back")
	}

	var lost, back []slog.Record
	for _, r := range feed() {
		switch {
		case r.Level == slog.LevelWarn && strings.Contains(r.Message, "lost"):
			lost = append(lost, r)
		case r.Level == slog.LevelInfo && strings.Contains(r.Message, "back"):
			back = append(back, r)
		}
	}
	if len(lost) != 1 || len(back) != 1 || !lost[0].Time.Before(back[0].Time) {
		t.Fatalf("after a 3.5 s outage of PostgreSQL, the log said of the change feed %v (%d warnings of its loss, %d notes of its return); "+
			"want one warning that it is lost, then one note that it is back", feed(), len(lost), len(back))
	}
}
