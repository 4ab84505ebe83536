// Command baseline is a BASELINE, NOT SURGE. It is the flash-sale design
// of the usual tutorial, kept only as the yardstick that bench/cluster.sh
// measures Surge's cluster mode against:
//
//   - a plain net/http handler for POST /v1/sales/{id}/purchases, with
//     Surge's request shape (X-User-ID names the buyer, an optional
//     Idempotency-Key, an optional JSON body {"quantity":N});
//   - ONE Redis Lua call per request, which decrements the stock if enough
//     is left, checks the buyer's count against the per-user limit, and
//     records the idempotency key;
//   - ONE autocommit INSERT per reserved order into PostgreSQL (pgx v5
//     pool), after which it answers 201 with the order; 409 sold_out or
//     limit_reached otherwise. If the INSERT fails, a second script gives
//     the units back and the buyer gets 503.
//
// It is correct where the benchmark looks (Redis decides every purchase
// atomically, so it never oversells or breaks the per-user limit, and a
// replayed key gets its first order back) but naive on purpose: nothing is
// batched, so every purchase pays a Redis round trip and a PostgreSQL
// commit of its own. It has none of Surge's other machinery either: a
// replay that races its first request's INSERT is answered before that
// order is durable, a Redis that loses its state sells the stock again
// (no epoch fence, no rebuild, no reconciliation), and there is no load
// shedding and no sold-out fast path. Do not use it for anything but
// benchmarks.
//
// The stock of a sale is set in Redis by its first purchase (-stock, the
// same for every sale id), so the program needs no admin API; GET
// /v1/sales/{id} answers the stock and remaining units, which is all
// surge bench reads before it fires. Orders go to a table "orders" of the
// connection's search_path (created if missing), with the same columns and
// unique indexes as Surge's.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
)

// reserve decides one purchase.
// KEYS: stock, held (user -> units), idem (user \n key -> record).
// ARGV: initial stock, per-user limit, user, key, quantity, order id,
// created (Unix ms). Returns {"+"} reserved, {"R", record} replay,
// {"S", remaining} sold out, {"L"} limit reached.
var reserve = goredis.NewScript(`
local stock = redis.call('GET', KEYS[1])
if not stock then
  stock = ARGV[1]
  redis.call('SET', KEYS[1], stock)
end
local uk
if ARGV[4] ~= '' then
  uk = ARGV[3] .. '\n' .. ARGV[4]
  local rec = redis.call('HGET', KEYS[3], uk)
  if rec then return {'R', rec} end
end
local qty = tonumber(ARGV[5])
if tonumber(stock) < qty then return {'S', stock} end
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if held + qty > tonumber(ARGV[2]) then return {'L'} end
redis.call('DECRBY', KEYS[1], qty)
redis.call('HINCRBY', KEYS[2], ARGV[3], qty)
if uk then
  redis.call('HSET', KEYS[3], uk, ARGV[6] .. '|' .. ARGV[5] .. '|' .. ARGV[7])
end
return {'+'}
`)

// undo gives back the units of a purchase whose INSERT failed.
// KEYS as reserve; ARGV: user, key, quantity.
var undo = goredis.NewScript(`
redis.call('INCRBY', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[2], ARGV[1], -tonumber(ARGV[3]))
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[3], ARGV[1] .. '\n' .. ARGV[2]) end
return 1
`)

const schema = `
CREATE TABLE IF NOT EXISTS orders (
    id         text PRIMARY KEY,
    sale_id    text NOT NULL,
    user_id    text NOT NULL,
    quantity   bigint NOT NULL CHECK (quantity > 0),
    status     text NOT NULL,
    idem_key   text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS orders_idem ON orders (sale_id, user_id, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_by_sale ON orders (sale_id);
`

type order struct {
	ID             string `json:"id"`
	SaleID         string `json:"sale_id"`
	UserID         string `json:"user_id"`
	Quantity       int64  `json:"quantity"`
	Status         string `json:"status"`
	CreatedAt      string `json:"created_at"`
	ExpiresAt      string `json:"expires_at"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

type app struct {
	rdb    *goredis.Client
	db     *pgxpool.Pool
	prefix string
	stock  int64
	limit  int64
	hold   time.Duration
	seq    atomic.Uint64
	epoch  uint64 // start time, the high half of order ids
}

func main() {
	var (
		addr     = flag.String("addr", "127.0.0.1:8097", "listen address")
		redisURL = flag.String("redis-url", "redis://127.0.0.1:6379/0", "Redis")
		pgURL    = flag.String("postgres-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL (search_path=SCHEMA in the query picks the schema)")
		stock    = flag.Int64("stock", 1000000000, "stock of every sale, set in Redis by the sale's first purchase")
		prefix   = flag.String("prefix", "baseline", "prefix of every Redis key")
		limit    = flag.Int64("per-user-limit", 1, "units one buyer may hold in a sale")
		pgConns  = flag.Int("pg-conns", 16, "PostgreSQL pool size (Surge's default is 16 too)")
	)
	flag.Parse()
	ctx := context.Background()

	ropt, err := goredis.ParseURL(*redisURL)
	if err != nil {
		log.Fatalf("baseline: redis url: %v", err)
	}
	rdb := goredis.NewClient(ropt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		log.Fatalf("baseline: redis: %v", err)
	}
	pcfg, err := pgxpool.ParseConfig(*pgURL)
	if err != nil {
		log.Fatalf("baseline: postgres url: %v", err)
	}
	pcfg.MaxConns = int32(*pgConns)
	db, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		log.Fatalf("baseline: postgres: %v", err)
	}
	if _, err := db.Exec(ctx, schema); err != nil {
		log.Fatalf("baseline: create table: %v", err)
	}

	a := &app{rdb: rdb, db: db, prefix: *prefix, stock: *stock, limit: *limit, hold: 15 * time.Minute,
		epoch: uint64(time.Now().UnixMilli())}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sales/{id}/purchases", a.purchase)
	mux.HandleFunc("GET /v1/sales/{id}", a.sale)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	log.Printf("baseline (the tutorial design, not Surge) listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}

func (a *app) keys(sale string) []string {
	b := a.prefix + ":{" + sale + "}:"
	return []string{b + "stock", b + "held", b + "idem"}
}

// nextID is time-ordered, like Surge's, so the primary-key index appends
// at its right edge.
func (a *app) nextID() string {
	b := make([]byte, 0, 32)
	b = append(b, "o_"...)
	b = strconv.AppendUint(b, a.epoch, 36)
	b = append(b, '_')
	b = strconv.AppendUint(b, a.seq.Add(1), 36)
	return string(b)
}

func (a *app) purchase(w http.ResponseWriter, r *http.Request) {
	sale := r.PathValue("id")
	user := r.Header.Get("X-User-ID")
	key := r.Header.Get("Idempotency-Key")
	if user == "" {
		writeErr(w, http.StatusUnauthorized, "unauthorized", "X-User-ID is required")
		return
	}
	qty := int64(1)
	var body struct {
		Quantity *int64 `json:"quantity"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeErr(w, http.StatusBadRequest, "invalid_body", err.Error())
		return
	}
	if body.Quantity != nil {
		qty = *body.Quantity
	}
	if qty < 1 || qty > 1000 {
		writeErr(w, http.StatusBadRequest, "invalid_quantity", "quantity must be between 1 and 1000")
		return
	}

	// Not r.Context(): a client that hangs up must not cancel a call
	// that may already have taken the units or committed the order (and
	// an INSERT that did commit must not be "undone" in Redis).
	ctx := context.WithoutCancel(r.Context())
	now := time.Now().UTC().Truncate(time.Millisecond)
	id := a.nextID()
	keys := a.keys(sale)
	res, err := reserve.Run(ctx, a.rdb, keys, a.stock, a.limit, user, key, qty, id, now.UnixMilli()).StringSlice()
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", "redis: "+err.Error())
		return
	}
	switch res[0] {
	case "S":
		writeErr(w, http.StatusConflict, "sold_out", "the sale is sold out")
		return
	case "L":
		writeErr(w, http.StatusConflict, "limit_reached", "you already hold the most units this sale allows")
		return
	case "R": // replay: the first answer
		f := strings.Split(res[1], "|")
		q, _ := strconv.ParseInt(f[1], 10, 64)
		ms, _ := strconv.ParseInt(f[2], 10, 64)
		created := time.UnixMilli(ms).UTC()
		writeOrder(w, order{ID: f[0], SaleID: sale, UserID: user, Quantity: q, Status: "reserved",
			CreatedAt: stamp(created), ExpiresAt: stamp(created.Add(a.hold)), IdempotencyKey: key})
		return
	}

	var idem *string
	if key != "" {
		idem = &key
	}
	_, err = a.db.Exec(ctx, `INSERT INTO orders (id, sale_id, user_id, quantity, status, idem_key, created_at, expires_at)
		VALUES ($1, $2, $3, $4, 'reserved', $5, $6, $7)`, id, sale, user, qty, idem, now, now.Add(a.hold))
	if err != nil {
		// Give the units back, so a failed insert does not lose stock.
		_ = undo.Run(ctx, a.rdb, keys, user, key, qty).Err()
		writeErr(w, http.StatusServiceUnavailable, "unavailable", "postgres: "+err.Error())
		return
	}
	writeOrder(w, order{ID: id, SaleID: sale, UserID: user, Quantity: qty, Status: "reserved",
		CreatedAt: stamp(now), ExpiresAt: stamp(now.Add(a.hold)), IdempotencyKey: key})
}

// sale answers the little of GET /v1/sales/{id} that surge bench reads.
func (a *app) sale(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rem, err := a.rdb.Get(r.Context(), a.keys(id)[0]).Int64()
	if errors.Is(err, goredis.Nil) {
		rem, err = a.stock, nil
	}
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", "redis: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, "{\"id\":%q,\"stock\":%d,\"remaining\":%d,\"per_user_limit\":%d,\"status\":\"live\"}\n",
		id, a.stock, rem, a.limit)
}

func stamp(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z") }

func writeOrder(w http.ResponseWriter, o order) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]order{"order": o})
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "{\"error\":{\"code\":%q,\"message\":%q}}\n", code, msg)
}
