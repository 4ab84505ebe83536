package waitroom

import (
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
)

// memoryFormat names the layout Export writes. Import refuses any other:
// a build that cannot read its predecessor's queues starts them empty,
// whose new epochs refuse the old tickets, as on a restart.
const memoryFormat = 1

// memHeader opens an export; memQueueState follows, once per queue.
type memHeader struct {
	Format  int
	Queues  int
	Dropped []string
}

// memQueueState is one queue as exported: its epoch, which the tickets
// carry, its entries, and where its numbering and slots stand, so that
// the next buyer neither takes a slot already handed out nor jumps ahead.
// A lottery's random source is not written: the new process draws with a
// key of its own, as unpredictable.
type memQueueState struct {
	SaleID string
	Epoch  uint64
	Seq    int64
	Last   int64
	Drawn  bool
	// Users[i]'s entry is Seqs[i], Draws[i], Slots[i]: slices of numbers,
	// which gob reads many times faster than a slice of structs.
	Users []string
	Seqs  []int64
	Draws []uint64
	Slots []int64
}

// Export writes every queue to w, for the new process of an upgrade to
// Import, and stops m from placing anyone from then on: Join, a draw, and
// Drop answer ErrMoved, so no place is handed out that the copy lacks.
// Reads (a ticket's check, a position) still answer, from the same state
// the copy holds.
func (m *Memory) Export(w io.Writer) (queues, entries int, err error) {
	m.mu.Lock()
	m.moved.Store(true) // under m.mu: no queue is created after the list below
	ids := slices.Sorted(maps.Keys(m.queues))
	qs := make([]*memQueue, len(ids))
	for i, id := range ids {
		qs[i] = m.queues[id]
	}
	dropped := slices.Sorted(maps.Keys(m.dropped))
	m.mu.Unlock()

	enc := gob.NewEncoder(w)
	if err := enc.Encode(memHeader{Format: memoryFormat, Queues: len(qs), Dropped: dropped}); err != nil {
		return 0, 0, fmt.Errorf("waitroom: export: %w", err)
	}
	for i, mq := range qs {
		// A join holding mq.mu now is in the copy; one after sees moved.
		mq.mu.Lock()
		n := len(mq.users)
		st := memQueueState{SaleID: ids[i], Epoch: mq.epoch, Seq: mq.seq, Last: mq.last, Drawn: mq.drawn,
			Users: make([]string, 0, n), Seqs: make([]int64, 0, n), Draws: make([]uint64, 0, n), Slots: make([]int64, 0, n)}
		for u, e := range mq.users {
			st.Users, st.Seqs, st.Draws, st.Slots = append(st.Users, u), append(st.Seqs, e.Seq), append(st.Draws, e.Draw), append(st.Slots, e.Slot)
		}
		mq.mu.Unlock()
		if err := enc.Encode(&st); err != nil {
			return 0, 0, fmt.Errorf("waitroom: export %s: %w", st.SaleID, err)
		}
		entries += len(st.Users)
	}
	return len(qs), entries, nil
}

// Import loads into m, which must hold no queue yet, what Export wrote.
// Nothing is loaded unless all of it reads and holds together. Queues over
// m's bound keep their entries (those buyers were placed already) and take
// no newcomer until below it.
func (m *Memory) Import(r io.Reader) (queues, entries int, err error) {
	dec := gob.NewDecoder(r)
	var h memHeader
	if err := dec.Decode(&h); err != nil {
		return 0, 0, fmt.Errorf("waitroom: import: %w", err)
	}
	if h.Format != memoryFormat {
		return 0, 0, fmt.Errorf("waitroom: import: the queues were written in format %d; this build reads %d", h.Format, memoryFormat)
	}
	if h.Queues < 0 {
		return 0, 0, fmt.Errorf("waitroom: import: %d queues", h.Queues)
	}
	loaded := make(map[string]*memQueue, min(h.Queues, 1024)) // the count is the file's word: no allocation on it
	for range h.Queues {
		var st memQueueState
		if err := dec.Decode(&st); err != nil {
			return 0, 0, fmt.Errorf("waitroom: import: %w", err)
		}
		if _, dup := loaded[st.SaleID]; dup {
			return 0, 0, fmt.Errorf("waitroom: import: sale %s twice", st.SaleID)
		}
		mq, err := st.queue()
		if err != nil {
			return 0, 0, fmt.Errorf("waitroom: import %s: %w", st.SaleID, err)
		}
		loaded[st.SaleID] = mq
		entries += len(st.Users)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queues) != 0 || m.moved.Load() {
		return 0, 0, errors.New("waitroom: import: the backend is in use already")
	}
	m.queues = loaded
	for _, id := range h.Dropped {
		m.dropped[id] = struct{}{}
	}
	return len(loaded), entries, nil
}

// queue rebuilds the queue st describes, refusing one that does not hold
// together: two buyers on one slot, or a slot or number past where the
// queue says it stands, would admit two buyers to one place.
func (st *memQueueState) queue() (*memQueue, error) {
	n := len(st.Users)
	if st.SaleID == "" || st.Epoch == 0 || len(st.Seqs) != n || len(st.Draws) != n || len(st.Slots) != n {
		return nil, errors.New("malformed queue")
	}
	mq := newMemQueue(st.Epoch)
	mq.seq, mq.last, mq.drawn = st.Seq, st.Last, st.Drawn
	mq.users = make(map[string]Entry, n)
	mq.slots = make([]int64, 0, n)
	for i, u := range st.Users {
		e := Entry{Seq: st.Seqs[i], Draw: st.Draws[i], Slot: st.Slots[i]}
		if _, dup := mq.users[u]; dup {
			return nil, fmt.Errorf("buyer %s twice", u)
		}
		if e.Seq < 1 || e.Seq > st.Seq || e.Slot < Unassigned || e.Slot > st.Last {
			return nil, fmt.Errorf("buyer %s: entry %+v past the queue's numbering (seq %d, last slot %d)", u, e, st.Seq, st.Last)
		}
		mq.users[u] = e
		if e.Slot == Unassigned {
			mq.undraw++
		} else {
			mq.slots = append(mq.slots, e.Slot)
		}
	}
	slices.Sort(mq.slots)
	for i := 1; i < len(mq.slots); i++ {
		if mq.slots[i] == mq.slots[i-1] {
			return nil, fmt.Errorf("slot %d held twice", mq.slots[i])
		}
	}
	if mq.undraw > 0 && mq.drawn {
		return nil, errors.New("entries without a slot after the draw")
	}
	return mq, nil
}
