package http

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
)

// Listing limits of GET /v1/sales: a page is bounded, so a flood of
// listings costs what a page costs, whatever the number of sales.
const (
	DefaultSalesPage = 100
	MaxSalesPage     = 1000
)

// revalidate is the Cache-Control of every sale read: its remaining
// stock and status change every moment of a sale, so a cache or CDN in
// front may keep it but must ask again before handing it out (else each
// edge would show a sale "scheduled" until its copy aged, its 404 before
// the sale existed too). Not a short max-age: edges would flip to "live"
// each at its own moment.
var revalidate = []string{"no-cache"}

// listSales serves one page from the engine's memory: no store call.
func (s *Server) listSales(w http.ResponseWriter, r *http.Request) {
	w.Header()["Cache-Control"] = revalidate
	// URL.Query drops a pair it cannot read (a bad escape, a semicolon)
	// without a word: the listing would then answer its defaults for a
	// limit, archived or cursor it was given and could not read.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		invalid(w, "malformed query string: %v", err)
		return
	}
	// An unknown parameter is refused, not ignored: a typo'd one
	// (?archive=true, ?limt=5) would answer the defaults, the live sales
	// or a page of 100, to a client that believes it asked otherwise.
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if name != "limit" && name != "cursor" && name != "archived" {
			invalid(w, "unknown query parameter %q: GET /v1/sales takes limit, cursor and archived", name)
			return
		}
	}
	one := func(name string) (string, bool) {
		v := q[name]
		if len(v) > 1 {
			invalid(w, "query parameter %q appears more than once", name)
			return "", false
		}
		if len(v) == 0 {
			return "", true
		}
		return v[0], true
	}
	limitStr, ok := one("limit")
	if !ok {
		return
	}
	archivedStr, ok := one("archived")
	if !ok {
		return
	}
	cursorStr, ok := one("cursor")
	if !ok {
		return
	}
	limit := DefaultSalesPage
	if _, given := q["limit"]; given {
		n, err := strconv.Atoi(limitStr)
		if err != nil || n < 1 || n > MaxSalesPage {
			invalid(w, "limit must be an integer from 1 to %d", MaxSalesPage)
			return
		}
		limit = n
	}
	archived := archivedStr == "true"
	if _, given := q["archived"]; given && !archived && archivedStr != "false" {
		invalid(w, `archived must be "true" or "false"`)
		return
	}
	var after *engine.SaleCursor
	if _, given := q["cursor"]; given {
		c, ok := decodeCursor(cursorStr, archived)
		if !ok {
			invalid(w, "cursor is not one this listing returned as next_cursor")
			return
		}
		after = &c
	}
	page, next := s.svc.SalesPage(archived, after, limit)
	out := api.SalesPage{Sales: make([]api.Sale, 0, len(page))}
	for _, sl := range page {
		out.Sales = append(out.Sales, toSaleJSON(sl))
	}
	if next != nil {
		out.NextCursor = encodeCursor(*next, archived)
	}
	writeJSON(w, http.StatusOK, out)
}

// A cursor is the last sale of a page (creation time, id) and which
// listing it belongs to, base64url-encoded: opaque to clients, and
// stateless, so any node of a cluster can continue a listing.
const cursorVersion = "1"

func encodeCursor(c engine.SaleCursor, archived bool) string {
	raw := cursorVersion + "." + cursorKind(archived) + "." + strconv.FormatInt(c.CreatedAt.UnixNano(), 10) + "." + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func cursorKind(archived bool) string {
	if archived {
		return "a"
	}
	return "l"
}

// decodeCursor refuses anything encodeCursor did not make for this
// listing (a cursor of the archived listing does not page the live one).
func decodeCursor(s string, archived bool) (engine.SaleCursor, bool) {
	if s == "" || len(s) > 200 {
		return engine.SaleCursor{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return engine.SaleCursor{}, false
	}
	parts := strings.SplitN(string(raw), ".", 4)
	if len(parts) != 4 || parts[0] != cursorVersion {
		return engine.SaleCursor{}, false
	}
	if parts[1] != cursorKind(archived) {
		return engine.SaleCursor{}, false
	}
	ns, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || !surge.ValidID(parts[3]) {
		return engine.SaleCursor{}, false
	}
	return engine.SaleCursor{CreatedAt: time.Unix(0, ns).UTC(), ID: parts[3]}, true
}

// archiveSale takes an ended sale out of service (admin); archiving an
// archived sale answers the same 200.
func (s *Server) archiveSale(w http.ResponseWriter, r *http.Request) {
	id, ok := s.adminSaleID(w, r)
	if !ok || !noQueryNoInput(w, r) || !noBody(w, r) {
		return
	}
	st, err := s.svc.Archive(r.Context(), id)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	// The archive stands whatever happens here: the queue is only memory
	// or, in cluster mode, Redis, which the store's own removal of the
	// archived sale's state drops too, retried by the leader (a later
	// archive call drops it again as well).
	if err := s.room.Drop(r.Context(), id); err != nil {
		s.log.Warn("drop the waiting room of an archived sale", "sale", id, "err", err)
	}
	writeJSON(w, http.StatusOK, toSaleJSON(st))
}

func parseTimeField(name string, v *string) (*time.Time, error) {
	if v == nil {
		return nil, nil
	}
	t, err := api.ParseTime(*v)
	if err != nil {
		return nil, fmt.Errorf("%s must be an RFC 3339 time such as 2026-11-23T10:00:00Z", name)
	}
	// Times are answered and stored in UTC: an offset that moves the
	// instant out of years 0001-9999 would not be RFC 3339 there (and the
	// store could not read it back), nor a gRPC Timestamp. Such a time is
	// RFC 3339 as sent, so the message names the range, not the format.
	if !surge.Representable(t) {
		return nil, fmt.Errorf("%s must lie between years 0001 and 9999 in UTC", name)
	}
	return &t, nil
}

func (s *Server) createSale(w http.ResponseWriter, r *http.Request) {
	if err := s.auth.admin(r); err != nil {
		unauthenticated(w, r, err)
		return
	}
	if !noQuery(w, r) {
		return
	}
	body, ok := readBody(w, r, MaxSaleBody)
	if !ok {
		return
	}
	var req api.NewSale
	if err := decodeStrict(body, &req); err != nil {
		invalid(w, "%v", err)
		return
	}
	in := surge.SaleInput{
		ID: req.ID, Name: req.Name, Stock: req.Stock, PerUserLimit: req.PerUserLimit,
		PriceCents: req.PriceCents, Currency: req.Currency, HoldSeconds: req.HoldSeconds,
	}
	var err error
	if in.StartsAt, err = parseTimeField("starts_at", req.StartsAt); err != nil {
		invalid(w, "%v", err)
		return
	}
	if in.EndsAt, err = parseTimeField("ends_at", req.EndsAt); err != nil {
		invalid(w, "%v", err)
		return
	}
	if in.WaitingRoom, err = waitingRoomInput(req.WaitingRoom); err != nil {
		invalid(w, "%v", err)
		return
	}
	sale, err := s.svc.CreateSale(r.Context(), in)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/sales/"+sale.ID)
	writeJSON(w, http.StatusCreated, toSaleJSON(sale))
}

func (s *Server) getSale(w http.ResponseWriter, r *http.Request) {
	w.Header()["Cache-Control"] = revalidate
	id, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeSaleNotFound), "sale not found")
		return
	}
	sale, err := s.svc.Sale(id)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSaleJSON(sale))
}
