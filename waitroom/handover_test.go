package waitroom

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/testclock"
)

// An upgrade's new process takes the old one's queues (Export, Import):
// every ticket of before still reads the same place and admits, a lottery
// entered before draws with the entries' own draws, a newcomer queues
// behind, and the old process places nobody once it has handed over.
func TestExportImportKeepsPlaces(t *testing.T) {
	ctx := context.Background()
	clk := testclock.New(start.Add(-time.Minute))
	fifo, lottery := saleWith("fifo", 1, surge.QueueFIFO, 3600), saleWith("lot", 1, surge.QueueLottery, 3600)
	oldMem := NewMemory(0)
	old, err := New(Config{Secret: testSecret, Backend: oldMem, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var fifoBefore, lotBefore []Status
	for _, u := range []string{"a", "b", "c"} {
		fifoBefore = append(fifoBefore, join(t, old, fifo, u))
		lotBefore = append(lotBefore, join(t, old, lottery, u))
	}
	if err := old.Drop(ctx, "archived"); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	if q, n, err := oldMem.Export(&buf); err != nil || q != 2 || n != 6 {
		t.Fatalf("export: %d queues, %d entries, %v; want 2, 6", q, n, err)
	}
	// The old process places nobody after the copy, nor draws.
	_, _, err = old.Join(ctx, fifo, "late")
	wantCode(t, err, surge.CodeUnavailable, "retry")
	if !errors.Is(err, ErrMoved) {
		t.Errorf("join after the export: %v, want ErrMoved", err)
	}

	newMem := NewMemory(0)
	if q, n, err := newMem.Import(bytes.NewReader(buf.Bytes())); err != nil || q != 2 || n != 6 {
		t.Fatalf("import: %d queues, %d entries, %v; want 2, 6", q, n, err)
	}
	r, err := New(Config{Secret: testSecret, Backend: newMem, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i, was := range fifoBefore {
		if st := status(t, r, fifo, was.Ticket); st.Position != was.Position || !st.AdmitAt.Equal(was.AdmitAt) {
			t.Errorf("%s after the import: %+v, was %+v", was.UserID, st, was)
		}
		if again := join(t, r, fifo, was.UserID); again.Position != int64(i+1) {
			t.Errorf("%s joined again at %d, had %d", was.UserID, again.Position, i+1)
		}
	}
	if d := join(t, r, fifo, "d"); d.Position != 4 || !d.AdmitAt.After(fifoBefore[2].AdmitAt) {
		t.Errorf("a newcomer: %+v, want position 4 after c", d)
	}
	if _, _, err := r.Join(ctx, saleWith("archived", 1, surge.QueueFIFO, 60), "x"); !errors.Is(err, surge.ErrSaleNotFound) {
		t.Errorf("join of a sale dropped before the export: %v, want not found", err)
	}

	// The draw, made by the new process, follows the draws the entries
	// were given by the old one.
	clk.Set(start)
	var slots []int64
	for _, was := range lotBefore {
		st := status(t, r, lottery, was.Ticket)
		if st.AdmitAt.IsZero() {
			t.Fatalf("%s not drawn: %+v", was.UserID, st)
		}
		e, _ := newMem.Lookup(ctx, queueOf(lottery), was.UserID, start)
		slots = append(slots, e.Slot)
		clk.Set(st.AdmitAt)
		if err := r.Check(ctx, lottery, was.UserID, was.Ticket); err != nil {
			t.Errorf("%s's ticket of before the export, at its turn: %v", was.UserID, err)
		}
		clk.Set(start)
	}
	for i := range lotBefore {
		for j := range lotBefore {
			di, dj := mustEntry(t, oldMem, lottery, lotBefore[i].UserID).Draw, mustEntry(t, oldMem, lottery, lotBefore[j].UserID).Draw
			if di < dj && slots[i] > slots[j] {
				t.Errorf("slots %v do not follow the old process's draws", slots)
			}
		}
	}
}

func mustEntry(t *testing.T, m *Memory, s *surge.Sale, user string) Entry {
	t.Helper()
	_, e, err := m.Place(context.Background(), queueOf(s), user)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A file that does not hold together is refused whole: two buyers on one
// slot would both be admitted to it.
func TestImportRefusesInconsistentQueues(t *testing.T) {
	for name, st := range map[string]memQueueState{
		"a slot twice":       {SaleID: "s", Epoch: 7, Seq: 2, Last: 1, Users: []string{"a", "b"}, Seqs: []int64{1, 2}, Draws: []uint64{0, 0}, Slots: []int64{1, 1}},
		"a slot past last":   {SaleID: "s", Epoch: 7, Seq: 1, Last: 0, Users: []string{"a"}, Seqs: []int64{1}, Draws: []uint64{0}, Slots: []int64{5}},
		"a number past seq":  {SaleID: "s", Epoch: 7, Seq: 1, Last: 3, Users: []string{"a"}, Seqs: []int64{2}, Draws: []uint64{0}, Slots: []int64{0}},
		"no epoch":           {SaleID: "s", Seq: 1, Last: 0, Users: []string{"a"}, Seqs: []int64{1}, Draws: []uint64{0}, Slots: []int64{0}},
		"lengths differ":     {SaleID: "s", Epoch: 7, Seq: 1, Last: 0, Users: []string{"a"}, Seqs: []int64{1}, Draws: []uint64{0}},
		"undrawn after draw": {SaleID: "s", Epoch: 7, Seq: 1, Last: -1, Drawn: true, Users: []string{"a"}, Seqs: []int64{1}, Draws: []uint64{3}, Slots: []int64{Unassigned}},
	} {
		if _, err := st.queue(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := NewMemory(0).Import(bytes.NewReader([]byte("not gob"))); err == nil {
		t.Error("garbage imported")
	}
}

// A room given a previous key still verifies its tickets, and signs with
// its own.
func TestPreviousKeyVerifies(t *testing.T) {
	clk := testclock.New(start.Add(-time.Minute))
	s := saleWith("s", 1, surge.QueueFIFO, 60)
	mem := NewMemory(0)
	old, err := New(Config{Secret: testSecret, Backend: mem, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	was := join(t, old, s, "a")
	other := []byte("another secret of thirty-two bytes!!")
	r, err := New(Config{Secret: other, Previous: [][]byte{testSecret}, Backend: mem, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	st := status(t, r, s, was.Ticket)
	if _, err := old.signer.parse(st.Ticket); !errors.Is(err, errForged) {
		t.Errorf("the new room signs with the previous key: %v", err)
	}
	if _, err := New(Config{Secret: other, Previous: [][]byte{[]byte("short")}}); err == nil {
		t.Error("a short previous key was accepted")
	}
}
