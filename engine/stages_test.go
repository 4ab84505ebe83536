package engine

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// stubRoom admits the buyers whose ticket is "ok".
type stubRoom struct{}

func (stubRoom) Check(_ context.Context, sale *surge.Sale, _, ticket string) error {
	if ticket != "ok" {
		return surge.Errorf(surge.CodeNotAdmitted, "sale %s: ticket %q does not admit", sale.ID, ticket)
	}
	return nil
}

// switchRate is a RateLimiter the test opens and closes.
type switchRate struct{ refuse atomic.Bool }

func (r *switchRate) Allow(string, time.Time) (bool, time.Duration) {
	return !r.refuse.Load(), time.Second
}

// The stages of the pipeline (pipeline.go), in their order.
const (
	stFind = iota
	stForSale
	stWaitingRoom
	stValidate
	stFastPath
	stOpen
	stBuyerRate
	stSaleRate
	stInboxManager
	stInbox
	nStages
)

// TestStageOrder pins the order of the purchase pipeline's stages: row k
// sends a purchase that stage k and every later one would refuse, while
// the earlier ones let it through, and wants stage k's answer. (A closed
// engine has flushed its inboxes, so the rows that close it cannot also
// have a full inbox.)
func TestStageOrder(t *testing.T) {
	type want struct {
		code     surge.Code // of the error, or of the outcome when outcome is set
		outcome  bool
		message  string // part of the error's message, when it tells stages apart
		shedMore int64  // how much Stats().Shed grows
	}
	wants := [nStages]want{
		stFind:         {code: surge.CodeSaleNotFound},
		stForSale:      {code: surge.CodeSaleNotFound},
		stWaitingRoom:  {code: surge.CodeNotAdmitted},
		stValidate:     {code: surge.CodeInvalid, message: "quantity"},
		stFastPath:     {code: surge.CodeSoldOut, outcome: true},
		stOpen:         {code: surge.CodeUnavailable},
		stBuyerRate:    {code: surge.CodeRateLimited, message: "buyer", shedMore: 1},
		stSaleRate:     {code: surge.CodeRateLimited, message: "sale", shedMore: 1},
		stInboxManager: {code: surge.CodeOverloaded, shedMore: 1},
		stInbox:        {code: surge.CodeOverloaded, shedMore: 0},
	}
	for k := range nStages {
		w := wants[k]
		t.Run(string(w.code)+"/"+[nStages]string{"find", "for sale", "waiting room", "validate", "fast path",
			"open", "buyer rate", "sale rate", "inbox manager", "inbox"}[k], func(t *testing.T) {
			fail := func(stage int) bool { return stage >= k }
			ctx := context.Background()
			clk := fixedClock()
			g := newGate()
			defer g.open()
			sq := openStore(t, t.TempDir())
			hooks := &hookStore{Store: sq}
			hooks.before = func(n int64) {
				if n == 1 {
					g.wait()
				}
			}
			st := struct {
				*hookStore
				surge.Archiver
			}{hooks, sq}
			buyer, saleRate, manager := &switchRate{}, &switchRate{}, &stubInbox{admit: true}
			cfg := testConfig(clk)
			cfg.InboxSize = 1
			cfg.WaitingRoom = stubRoom{}
			cfg.BuyerRate, cfg.SaleRate = buyer, saleRate
			cfg.InboxManager = func() InboxManager { return manager }
			e := openEngine(t, st, cfg)

			// Both sales have a waiting room; "old" is archived.
			room := &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueFIFO, TicketSeconds: 60}
			now := clk.Now()
			old := input("old", 5, 1)
			old.StartsAt, old.EndsAt, old.WaitingRoom = &now, ptr(now.Add(time.Hour)), room
			mustCreate(t, e, old)
			live := input("s", 5, 1)
			live.StartsAt, live.WaitingRoom = &now, room
			mustCreate(t, e, live)
			clk.Advance(2 * time.Hour)
			if _, err := e.Archive(ctx, "old"); err != nil {
				t.Fatal(err)
			}

			if fail(stInbox) && !fail(stOpen) {
				// One purchase holds the store, the next fills the inbox.
				buy := func(user string) {
					go e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: user, Quantity: 1}, Tickets: []string{"ok"}})
				}
				buy("f1")
				<-g.entered
				buy("f2")
				waitFor(t, "a full inbox", func() bool { return inboxLen(e, "s") == 1 })
			}
			buyer.refuse.Store(fail(stBuyerRate))
			saleRate.refuse.Store(fail(stSaleRate))
			manager.mu.Lock()
			manager.admit = !fail(stInboxManager)
			manager.mu.Unlock()
			if fail(stFastPath) {
				e.lookup("s").remaining.Store(0) // the hint says sold out
			}
			if fail(stOpen) {
				if err := e.Close(); err != nil {
					t.Fatal(err)
				}
			}

			req := PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "u", Quantity: 1}, Tickets: []string{"ok"}}
			switch {
			case fail(stFind):
				req.SaleID = "nope"
			case fail(stForSale):
				req.SaleID = "old"
			}
			if fail(stWaitingRoom) {
				req.Tickets = []string{"bad"}
			}
			if fail(stValidate) {
				req.Purchase.Quantity = 0
			}
			shed := e.Stats().Shed
			out, err := e.Purchase(ctx, req)

			got := surge.Code("")
			if w.outcome {
				if err != nil {
					t.Fatalf("err %v, want the outcome %s", err, w.code)
				}
				got = out.Code
			} else {
				var se *surge.Error
				if err == nil || !surge.HasCode(err, w.code) {
					t.Fatalf("(%+v, %v), want the error %s", out, err, w.code)
				}
				if errors.As(err, &se) && !strings.Contains(se.Message, w.message) {
					t.Errorf("message %q, want it to mention %q", se.Message, w.message)
				}
				got = w.code
			}
			if got != w.code {
				t.Errorf("answer %s, want %s", got, w.code)
			}
			if d := e.Stats().Shed - shed; d != w.shedMore {
				t.Errorf("Stats().Shed grew by %d, want %d", d, w.shedMore)
			}
		})
	}
}
