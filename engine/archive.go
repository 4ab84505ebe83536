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

// Archive takes an ended sale, or one yet to start (calling it off),
// without reserved orders out of service: its pipeline and live state go,
// it leaves the default listing, and it stays readable (GET, orders
// export). not_archivable otherwise.
func (e *Engine) Archive(ctx context.Context, id string) (SaleState, error) {
	a, ok := e.store.(surge.Archiver)
	if !ok {
		return SaleState{}, surge.Errorf(surge.CodeNotArchivable, "this server's store cannot archive sales")
	}
	if e.closing.Load() {
		return SaleState{}, surge.ErrUnavailable
	}
	sctx, unlock, err := e.lockSales(ctx)
	if err != nil {
		return SaleState{}, err
	}
	return saleChange(sctx, e, unlock, func() (SaleState, error) { return e.archive(ctx, sctx, a, id) })
}

// archive is Archive under e.mu; sctx bounds the store's call.
func (e *Engine) archive(ctx, sctx context.Context, a surge.Archiver, id string) (SaleState, error) {
	s := e.lookup(id)
	if s == nil {
		if st, ok := e.archived.Load().byID[id]; ok {
			return st, nil // archived already: the same answer
		}
		return SaleState{}, surge.ErrSaleNotFound
	}
	now := e.cfg.Now()
	if !s.snap().Archivable(now) {
		return SaleState{}, surge.Errorf(surge.CodeNotArchivable,
			"sale %s has not ended: only a sale past its ends_at, or one yet to start, can be archived", id)
	}
	done, err := a.ArchiveSale(sctx, id, now)
	if surge.HasCode(err, surge.CodeSaleNotFound) && e.shared != nil {
		// Another node archived it first and this one has not heard yet:
		// the same answer as archiving again.
		actx, cancel := e.afterward(ctx)
		defer cancel()
		if list, lerr := a.ArchivedSales(actx); lerr == nil {
			e.takeArchived(list, nil)
			if st, ok := e.archived.Load().byID[id]; ok {
				return st, nil
			}
		}
	}
	if err != nil {
		return SaleState{}, storeErr(err)
	}
	e.takeArchived([]surge.ArchivedSale{done}, nil)
	e.log.Info("sale archived", "sale", id, "remaining", done.Remaining)
	return e.archived.Load().byID[id], nil
}

// takeArchived moves the live sales among list to the archive, except
// those keep names; the caller holds e.mu.
func (e *Engine) takeArchived(list []surge.ArchivedSale, keep map[string]bool) {
	live, old := *e.sales.Load(), e.archived.Load()
	var (
		m  map[string]*sale
		ar *archive
	)
	for _, done := range list {
		if _, ok := live[done.ID]; !ok || keep[done.ID] {
			continue
		}
		if m == nil {
			m = maps.Clone(live)
			ar = &archive{byID: maps.Clone(old.byID), order: slices.Clone(old.order)}
		}
		delete(m, done.ID)
		st := archivedState(done)
		ar.byID[done.ID] = st
		i, _ := slices.BinarySearchFunc(ar.order, st, func(x, t SaleState) int { return compareSales(x.CreatedAt, x.ID, t.CreatedAt, t.ID) })
		ar.order = slices.Insert(ar.order, i, st)
	}
	if m != nil {
		e.publish(m)
		e.archived.Store(ar)
		// Its series go with its pipeline: archived sales are not
		// served, and would otherwise stay on /metrics for good.
		for id := range live {
			if _, ok := m[id]; !ok {
				e.cfg.Metrics.Forget(id)
			}
		}
	}
}

// dropArchived follows a shared store: the live sales its listing no
// longer holds that it holds as archived (another node archived them)
// leave this engine's pipelines for its archive. listed is the store's
// listing of live sales.
func (e *Engine) dropArchived(ctx context.Context, listed []surge.Sale) error {
	a, ok := e.store.(surge.Archiver)
	if !ok {
		return nil
	}
	in := make(map[string]bool, len(listed))
	for _, sl := range listed {
		in[sl.ID] = true
	}
	gone := false
	for id := range *e.sales.Load() {
		if !in[id] {
			gone = true
			break
		}
	}
	if !gone {
		return nil // the common case: no store call
	}
	list, err := a.ArchivedSales(ctx)
	if err != nil {
		return fmt.Errorf("engine: list archived sales: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing.Load() {
		return nil
	}
	// A sale created here after the listing is not archived, so it is
	// not in list; one listed is live whatever list says.
	before := len(*e.sales.Load())
	e.takeArchived(list, in)
	if n := before - len(*e.sales.Load()); n > 0 {
		e.log.Info("sales archived on another node", "sales", n)
	}
	return nil
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
