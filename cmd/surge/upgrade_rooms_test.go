//go:build linux

package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// TestUpgradeKeepsWaitingRooms: an embedded server's waiting rooms live
// in its memory, and a zero-downtime upgrade (SIGUSR2) mid-sale must be
// invisible to the buyers in them: those in line keep their positions and
// turns, one admitted buys with the ticket the old process gave, a lottery
// entrant keeps their entry, rejoining keeps one's place, and a newcomer
// queues behind them all, on no place handed out before. Without
// --waiting-room-secret (the default) the tickets are signed with the key
// surge generated; with one, the places alone are at stake. Two upgrades
// in a row: the second new process gets what the first one got.
func TestUpgradeKeepsWaitingRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	t.Run("generated key", func(t *testing.T) { upgradeKeepsRooms(t) })
	t.Run("waiting-room-secret", func(t *testing.T) {
		upgradeKeepsRooms(t, "--waiting-room-secret", "upgrade-rooms-secret-0123456789abcdef")
	})
}

func upgradeKeepsRooms(t *testing.T, extra ...string) {
	dataDir, token := t.TempDir(), "upgrade-rooms-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, append(extra, "--pid-file", pidFile)...)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	admin := client.New(p.base, token)
	room := func(id string, startsIn time.Duration, rate int64, order string) {
		t.Helper()
		_, err := admin.CreateSale(ctx, api.NewSale{ID: new(id), Name: new(id), Stock: new(int64(100)), PerUserLimit: new(int64(1)),
			StartsAt:    new(time.Now().Add(startsIn).UTC().Format(time.RFC3339Nano)),
			WaitingRoom: &api.NewWaitingRoom{AdmitPerSecond: new(rate), Policy: new(order), TicketSeconds: new(int64(600))}})
		if err != nil {
			t.Fatalf("create sale %s: %v", id, err)
		}
	}
	room("line", time.Hour, 1, surge.QueueFIFO)      // everyone waits
	room("turn", -time.Minute, 100, surge.QueueFIFO) // admitted at once
	room("draw", time.Hour, 1, surge.QueueLottery)   // before the draw
	join := func(sale, user string) api.Queue {
		t.Helper()
		q, err := admin.AsUser(user).JoinQueue(ctx, sale)
		if err != nil {
			t.Fatalf("%s joins %s: %v", user, sale, err)
		}
		return q
	}
	pos := func(q api.Queue) int64 {
		if q.Position == nil {
			return -1
		}
		return *q.Position
	}
	line := map[string]api.Queue{}
	for i, u := range []string{"w1", "w2", "w3"} {
		if line[u] = join("line", u); pos(line[u]) != int64(i+1) || line[u].AdmittedAt == nil {
			t.Fatalf("%s joined at %+v, want position %d", u, line[u], i+1)
		}
	}
	turn := join("turn", "a1")
	for deadline := time.Now().Add(10 * time.Second); !turn.Admitted; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a1 not admitted: %+v", turn)
		}
		var err error
		if turn, err = admin.QueueStatus(ctx, "turn", turn.Ticket); err != nil {
			t.Fatal(err)
		}
	}
	draw := map[string]api.Queue{"l1": join("draw", "l1"), "l2": join("draw", "l2")}

	cur := generation{pid: p.cmd.Process.Pid, exited: p.exited, state: func() *os.ProcessState { return p.cmd.ProcessState }}
	for n := 1; n <= 2; n++ {
		cur = upgradeReady(t, cur, pidFile, p.base)
		for i, u := range []string{"w1", "w2", "w3"} {
			q, err := admin.QueueStatus(ctx, "line", line[u].Ticket)
			if err != nil {
				t.Fatalf("upgrade %d: %s reads its place in line with the ticket the old process gave: %v", n, u, err)
			}
			if pos(q) != int64(i+1) || q.AdmittedAt == nil || *q.AdmittedAt != *line[u].AdmittedAt {
				t.Errorf("upgrade %d: %s's place is %+v, was %+v", n, u, q, line[u])
			}
		}
		if q := join("line", "w2"); pos(q) != 2 {
			t.Errorf("upgrade %d: w2 joined again at position %d, had 2", n, pos(q))
		}
		for u, was := range draw {
			q, err := admin.QueueStatus(ctx, "draw", was.Ticket)
			if err != nil {
				t.Fatalf("upgrade %d: lottery entrant %s reads its entry: %v", n, u, err)
			}
			if q.Status != client.QueueWaiting || q.Position != nil {
				t.Errorf("upgrade %d: lottery entrant %s: %+v, want waiting for the draw", n, u, q)
			}
		}
	}
	// A newcomer queues behind everyone placed before the upgrades.
	w4 := join("line", "w4")
	if pos(w4) != 4 || w4.AdmittedAt == nil || *w4.AdmittedAt <= *line["w3"].AdmittedAt {
		t.Errorf("a newcomer after the upgrades: %+v, want position 4, admitted after w3 (%s)", w4, *line["w3"].AdmittedAt)
	}
	// The admitted buyer buys with the old process's ticket, once.
	if _, err := admin.AsUser("a1").Purchase(ctx, "turn", client.PurchaseOptions{Ticket: turn.Ticket}); err != nil {
		t.Errorf("a1, admitted before the upgrades, buys with its ticket: %v", err)
	}
	if _, err := admin.AsUser("a1").Purchase(ctx, "turn", client.PurchaseOptions{Ticket: turn.Ticket}); !surge.HasCode(err, surge.CodeLimitReached) {
		t.Errorf("a1 buys a second time: %v, want limit_reached", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dataDir, "waitrooms*")); len(left) != 0 {
		t.Errorf("the rooms' handover left %v in the data directory", left)
	}
	if err := syscall.Kill(cur.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cur.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the last process %d did not exit after SIGTERM", cur.pid)
	}
	// A plain restart is no handover: the rooms start empty, as
	// docs/protection.md says, and a ticket of before is refused.
	again := startProc(t, dataDir, token, extra...)
	if _, err := client.New(again.base, token).QueueStatus(ctx, "line", line["w1"].Ticket); !surge.HasCode(err, surge.CodeInvalidTicket) {
		t.Errorf("a ticket of before a restart: %v, want invalid_ticket", err)
	}
}

// upgradeReady sends cur SIGUSR2 and returns the new process once the old
// one has exited and the new one is ready at base.
func upgradeReady(t *testing.T, cur generation, pidFile, base string) generation {
	t.Helper()
	if err := syscall.Kill(cur.pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	next := 0
	for deadline := time.Now().Add(time.Minute); next == 0 || next == cur.pid; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pid file still names %d a minute after SIGUSR2", cur.pid)
		}
		next = readPID(pidFile)
	}
	select {
	case <-cur.exited:
	case <-time.After(time.Minute):
		t.Fatalf("the old process %d did not exit", cur.pid)
	}
	if st := cur.state(); st == nil || !st.Success() {
		t.Errorf("the old process %d exited with %v, want status 0", cur.pid, st)
	}
	g := adopt(t, next)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := get(t, base+"/readyz", ""); code == http.StatusOK {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new process %d is not ready after 20 s", next)
		}
	}
}
