package engine

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/surgehq/surge"
)

// archive is the archived sales' final states, sorted as listed.
type archive struct {
	byID  map[string]SaleState
	order []SaleState
}

// compareSales orders sales as they are listed: by creation, then id.
func compareSales(aCreated time.Time, aID string, bCreated time.Time, bID string) int {
	return cmp.Or(aCreated.Compare(bCreated), cmp.Compare(aID, bID))
}

// publish makes m the live sales; the caller holds e.mu (or is Open).
func (e *Engine) publish(m map[string]*sale) {
	order := slices.Collect(maps.Values(m))
	slices.SortFunc(order, func(a, b *sale) int { return compareSales(a.CreatedAt, a.ID, b.CreatedAt, b.ID) })
	e.sales.Store(&m)
	e.order.Store(&order)
}

func archivedState(a surge.ArchivedSale) SaleState {
	return SaleState{Sale: a.Sale, Remaining: a.Remaining, Status: surge.SaleEnded, Archived: true}
}

// loadArchived reads the archived sales' records (no ledger, no orders:
// a few hundred bytes each) so that reading them costs no store call.
func (e *Engine) loadArchived(ctx context.Context) error {
	ar := &archive{byID: map[string]SaleState{}}
	if a, ok := e.store.(surge.Archiver); ok {
		list, err := a.ArchivedSales(ctx)
		if err != nil {
			return fmt.Errorf("engine: load archived sales: %w", err)
		}
		for _, sl := range list {
			st := archivedState(sl)
			ar.byID[sl.ID] = st
			ar.order = append(ar.order, st)
		}
	}
	e.archived.Store(ar)
	return nil
}

// Archive takes an ended sale without reserved orders out of service: its
// pipeline and live state go, it leaves the default listing, and it stays
// readable (GET, orders export). not_archivable otherwise.
func (e *Engine) Archive(ctx context.Context, id string) (SaleState, error) {
	a, ok := e.store.(surge.Archiver)
	if !ok {
		return SaleState{}, surge.Errorf(surge.CodeNotArchivable, "this server's store cannot archive sales")
	}
	if e.closing.Load() {
		return SaleState{}, surge.ErrUnavailable
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.lookup(id)
	if s == nil {
		if st, ok := e.archived.Load().byID[id]; ok {
			return st, nil // archived already: the same answer
		}
		return SaleState{}, surge.ErrSaleNotFound
	}
	now := e.cfg.Now()
	if s.Window(now) != surge.CodeEnded {
		return SaleState{}, surge.Errorf(surge.CodeNotArchivable,
			"sale %s has not ended: only a sale past its ends_at can be archived", id)
	}
	done, err := a.ArchiveSale(ctx, id, now)
	if err != nil {
		return SaleState{}, err
	}
	m := maps.Clone(*e.sales.Load())
	delete(m, id)
	e.publish(m)
	old := e.archived.Load()
	st := archivedState(done)
	ar := &archive{byID: maps.Clone(old.byID), order: slices.Clone(old.order)}
	ar.byID[id] = st
	i, _ := slices.BinarySearchFunc(ar.order, st, func(x, t SaleState) int { return compareSales(x.CreatedAt, x.ID, t.CreatedAt, t.ID) })
	ar.order = slices.Insert(ar.order, i, st)
	e.archived.Store(ar)
	e.log.Info("sale archived", "sale", id, "remaining", done.Remaining)
	return st, nil
}

// SaleCursor marks where a page of sales ended: the last sale listed.
type SaleCursor struct {
	CreatedAt time.Time
	ID        string
}

// SalesPage lists up to limit sales after the cursor (nil: from the
// first), oldest first: the archived ones if archived is set, else the
// others. next is nil on the last page. It reads memory only.
func (e *Engine) SalesPage(archived bool, after *SaleCursor, limit int) (page []SaleState, next *SaleCursor) {
	limit = max(limit, 1)
	var more bool
	if archived {
		order := e.archived.Load().order
		from := pageStart(len(order), after, func(i int) (time.Time, string) { return order[i].CreatedAt, order[i].ID })
		page = slices.Clone(order[from:min(from+limit, len(order))])
		more = from+len(page) < len(order)
	} else {
		order := *e.order.Load()
		from := pageStart(len(order), after, func(i int) (time.Time, string) { return order[i].CreatedAt, order[i].ID })
		page = make([]SaleState, 0, min(limit, len(order)-from))
		for _, s := range order[from:min(from+limit, len(order))] {
			page = append(page, e.state(s))
		}
		more = from+len(page) < len(order)
	}
	if more && len(page) > 0 {
		last := page[len(page)-1]
		next = &SaleCursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	return page, next
}

// pageStart is the index of the first of n sorted sales after the cursor.
func pageStart(n int, after *SaleCursor, key func(i int) (time.Time, string)) int {
	if after == nil {
		return 0
	}
	return sort.Search(n, func(i int) bool {
		c, id := key(i)
		return compareSales(c, id, after.CreatedAt, after.ID) > 0
	})
}
