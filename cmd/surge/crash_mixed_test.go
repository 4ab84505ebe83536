package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/outbox"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
)

// mixedLog is what the clients of the mixed crash test were told: the
// answers that are promises the next life must keep.
type mixedLog struct {
	mu       sync.Mutex
	created  map[string]api.Order // order id -> the 201's order
	at       map[string]time.Time // order id -> when its first 201 was received
	keyOrder map[string]string    // user\x00key -> order id (keyed purchases)
	paid     map[string]string    // order id -> id of the payment answered 200 "paid"
	refund   map[string]string    // payment id -> order id, answered 200 "refund_due"
	mismatch map[string]string    // payment id -> order id, answered 422 amount_mismatch
	cancel   map[string]bool      // order id -> cancel answered 200
	stock    int64                // the stock of the last PATCH answered 200
	pending  []int64              // stocks of PATCHes sent since, unanswered
	archived bool                 // the archive of the other sale answered 200
	viol     []string
}

func (l *mixedLog) violation(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.viol) < 50 {
		l.viol = append(l.viol, fmt.Sprintf(format, args...))
	}
}

// mixedSeed is the seed of the mixed crash test: CRASH_MIX_SEED replays one.
func mixedSeed(t *testing.T) uint64 {
	if s := os.Getenv("CRASH_MIX_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return rand.Uint64()
}

// TestCrashMixedWorkload SIGKILLs the real binary, several times, at
// seeded random moments of a mixed workload with events on: keyed and
// unkeyed purchases, payment webhooks (right and wrong amounts, late
// ones for ended orders), cancels, holds expiring, PATCHes of the sale's
// stock and hold, the archive of another sale, and a `surge backup`. After
// each restart every promise a client got must hold, and at the end every
// committed change must have its one event in JetStream and no event may
// name a change that never committed.
func TestCrashMixedWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"journal", nil},
		// An image of the ledger at every idle moment and clean stop: the
		// starts replay what came after it.
		{"ledger image", []string{"--ledger-image-min", "1"}},
		// Keys of ended orders leave memory at once: replays are answered
		// from disk.
		{"keys on disk", []string{"--idempotency-ttl", "1ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) { crashMixed(t, tc.flags) })
	}
}

func crashMixed(t *testing.T, flags []string) {
	const (
		lives   = 6
		users   = 1000
		limit   = 3
		stock0  = 1500
		price   = 250
		workers = 24
		secret  = "whsec_crash_mixed_0123456789"
	)
	seed := mixedSeed(t)
	t.Logf("seed %d (replay: CRASH_MIX_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	nc, _, _ := servicetest.NATS(t)
	dataDir, token := t.TempDir(), "mixed-admin-token"
	extra := append([]string{"--nats-url", servicetest.NATSURL(), "--payment-webhook-secret", secret}, flags...)
	p := startProc(t, dataDir, token, extra...)
	admin := client.New(p.base, token)
	ctx := context.Background()
	sale, err := admin.CreateSale(ctx, api.NewSale{Name: new("mixed"), Stock: new(int64(stock0)), PerUserLimit: new(int64(limit)),
		HoldSeconds: new(int64(2)), PriceCents: new(int64(price)), Currency: new("EUR")})
	if err != nil {
		t.Fatal(err)
	}
	other, err := admin.CreateSale(ctx, api.NewSale{Name: new("other"), StartsAt: new(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)), Stock: new(int64(5)), PerUserLimit: new(int64(1))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateSale(ctx, other.ID, api.SalePatch{EndsAt: new(api.EndsAt(time.Now().UTC().Format(time.RFC3339Nano)))}); err != nil {
		t.Fatalf("end the other sale: %v", err)
	}
	filter := saleSubjects(t, nc, sale.ID)
	l := &mixedLog{created: map[string]api.Order{}, keyOrder: map[string]string{}, paid: map[string]string{},
		refund: map[string]string{}, mismatch: map[string]string{}, cancel: map[string]bool{}, stock: stock0}

	var backupFile string
	var backupStart time.Time
	var backupOut []byte
	var backupErr error
	for life := range lives {
		delay := time.Duration(400+rng.IntN(1200)) * time.Millisecond
		lifeSeed := rng.Uint64()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		base := p.base
		for w := range workers {
			wg.Go(func() {
				mixedWorker(l, base, token, secret, sale.ID, users, price, stop, rand.New(rand.NewPCG(lifeSeed, uint64(w))))
			})
		}
		wg.Go(func() { mixedAdmin(l, base, token, sale.ID, stop, rand.New(rand.NewPCG(lifeSeed, 1000))) })
		if life == 0 {
			wg.Go(func() {
				time.Sleep(delay / 2)
				a := client.New(base, token)
				a.HTTP.Timeout = 2 * time.Second
				_, err := a.ArchiveSale(context.Background(), other.ID)
				if err == nil {
					l.mu.Lock()
					l.archived = true
					l.mu.Unlock()
				}
				t.Logf("archive of %s: %v", other.ID, err)
			})
		}
		if life == 1 {
			backupFile = filepath.Join(t.TempDir(), "backup.db")
			wg.Go(func() {
				time.Sleep(delay / 3)
				backupStart = time.Now()
				backupOut, backupErr = exec.Command(surgeBinary(t), "backup", "--data-dir", dataDir, "--to", backupFile).CombinedOutput()
			})
		}
		sig := syscall.SIGKILL
		if rng.IntN(3) == 0 {
			sig = syscall.SIGTERM
		}
		time.Sleep(delay)
		if st := p.stop(t, sig, 20*time.Second); st.Success() != (sig == syscall.SIGTERM) {
			t.Errorf("surge exited with %v after %v", st, sig)
		}
		close(stop)
		wg.Wait()
		l.mu.Lock()
		t.Logf("life %d ended by %v after %v: %d created, %d paid, %d refund_due, %d cancelled, stock %d",
			life+1, sig, delay, len(l.created), len(l.paid), len(l.refund), len(l.cancel), l.stock)
		l.mu.Unlock()
		p = startProc(t, dataDir, token, extra...)
		checkMixed(t, l, p.base, token, dataDir, sale.ID, other.ID, limit)
		if t.Failed() {
			t.Fatalf("after life %d (seed %d)", life+1, seed)
		}
		if life == 1 {
			if backupErr != nil {
				t.Errorf("surge backup while serving: %v\n%s", backupErr, backupOut)
			} else {
				checkBackup(t, l, backupFile, backupStart)
				checkRestored(t, backupFile, sale.ID, limit)
			}
		}
	}

	// Every hold has ended by now (hold_seconds ≤ 3): wait for the expiry
	// and the relay, then compare the stream with the committed changes.
	time.Sleep(4 * time.Second)
	checkMixed(t, l, p.base, token, dataDir, sale.ID, other.ID, limit)
	db := openRO(t, filepath.Join(dataDir, sqlite.FileName))
	waitUntil(t, "the outbox to drain", time.Minute, func() bool {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM outbox`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	want := map[string]bool{}
	for _, o := range exportOrders(t, p.base, token, sale.ID) {
		want[o.ID+":reserved"] = true
		if o.Status != "reserved" {
			want[o.ID+":"+o.Status] = true
		}
	}
	rows, err := db.Query(`SELECT id, order_id FROM payments WHERE status IN ('refund_due', 'refunded')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, order string
		if err := rows.Scan(&id, &order); err != nil {
			t.Fatal(err)
		}
		want[order+":refund_due:"+id] = true
	}
	rows.Close()
	seen := map[string]int{}
	reservedSeen := map[string]bool{}
	for _, m := range servicetest.ReadStream(t, nc, outbox.DefaultStream, filter) {
		var e api.OrderEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("message %s: %v", m.Data, err)
		}
		seen[e.ID]++
		checkEvent(t, e, m.MsgID, reservedSeen)
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("committed change %s has %d events in %s after the crashes, want exactly 1", id, seen[id], outbox.DefaultStream)
		}
	}
	for id, n := range seen {
		if !want[id] {
			t.Errorf("event %s (%d messages) was published for a change that never committed", id, n)
		}
	}
	t.Logf("%d committed changes, %d distinct events", len(want), len(seen))
	if st := p.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Errorf("surge exited with %v after SIGTERM", st)
	}
}

func openRO(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mixedWorker buys as random users, with and without keys, and does
// something with each order it gets: pays it through the webhook (now or
// late), pays a wrong amount, cancels it, or lets the hold run out.
func mixedWorker(l *mixedLog, base, token, secret, saleID string, users int, price int64, stop <-chan struct{}, rng *rand.Rand) {
	hc := &http.Client{Timeout: 2 * time.Second}
	hook := client.New(base, token)
	hook.HTTP.Timeout = 2 * time.Second
	for {
		select {
		case <-stop:
			return
		default:
		}
		user := fmt.Sprintf("m%03d", rng.IntN(users))
		key := ""
		if rng.IntN(3) > 0 {
			key = fmt.Sprintf("k%d", rng.IntN(1_000_000_000))
		}
		qty := 1 + rng.Int64N(2)
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/sales/"+saleID+"/purchases", strings.NewReader(fmt.Sprintf(`{"quantity":%d}`, qty)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-User-ID", user)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		res, err := hc.Do(req)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusCreated {
			if err == nil && res.StatusCode != http.StatusConflict && res.StatusCode != http.StatusServiceUnavailable && res.StatusCode != http.StatusTooManyRequests {
				l.violation("purchase: unexpected %d %s", res.StatusCode, b)
			}
			time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
			continue
		}
		var ob api.OrderBody
		if err := json.Unmarshal(b, &ob); err != nil {
			l.violation("201 body %s: %v", b, err)
			continue
		}
		o := ob.Order
		l.mu.Lock()
		l.created[o.ID] = o
		if l.at == nil {
			l.at = map[string]time.Time{}
		}
		if _, ok := l.at[o.ID]; !ok {
			l.at[o.ID] = time.Now()
		}
		if key != "" {
			k := user + "\x00" + key
			if prev, ok := l.keyOrder[k]; ok && prev != o.ID {
				l.viol = append(l.viol, fmt.Sprintf("key %s/%s answered with orders %s and %s", user, key, prev, o.ID))
			}
			l.keyOrder[k] = o.ID
		}
		l.mu.Unlock()

		switch r := rng.IntN(10); {
		case r < 4: // pay, maybe after a while
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
			sendPay(l, hook, secret, o, o.Quantity*price, rng)
		case r < 5: // a wrong amount
			sendPay(l, hook, secret, o, o.Quantity*price+1, rng)
		case r < 7: // cancel as the buyer, then maybe a late payment
			creq, _ := http.NewRequest(http.MethodPost, base+"/v1/orders/"+o.ID+"/cancel", nil)
			creq.Header.Set("X-User-ID", user)
			if cres, err := hc.Do(creq); err == nil {
				_, _ = io.Copy(io.Discard, cres.Body)
				cres.Body.Close()
				if cres.StatusCode == http.StatusOK {
					l.mu.Lock()
					l.cancel[o.ID] = true
					l.mu.Unlock()
				}
			}
			if rng.IntN(2) == 0 {
				sendPay(l, hook, secret, o, o.Quantity*price, rng)
			}
		default: // let the hold run out
		}
	}
}

func sendPay(l *mixedLog, hook *client.Client, secret string, o api.Order, amount int64, rng *rand.Rand) {
	id := fmt.Sprintf("evt_%s_%d", o.ID, rng.IntN(1000))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pay, err := hook.SendPaymentEvent(ctx, secret, api.PaymentEvent{ID: &id, Type: new("payment.succeeded"), OrderID: &o.ID,
		AmountCents: &amount, Currency: new("EUR"), Created: new(time.Now().Unix())})
	l.mu.Lock()
	defer l.mu.Unlock()
	var ae *client.APIError
	switch {
	case err == nil && pay.Status == "paid":
		l.paid[o.ID] = id
	case err == nil && pay.Status == "refund_due":
		l.refund[id] = o.ID
	case err == nil:
		l.viol = append(l.viol, fmt.Sprintf("payment %s answered with status %q", id, pay.Status))
	case errors.As(err, &ae) && ae.Code == "amount_mismatch":
		l.mismatch[id] = o.ID
	}
}

// mixedAdmin changes the sale while it sells: its stock up (and down a
// little) and its hold.
func mixedAdmin(l *mixedLog, base, token, saleID string, stop <-chan struct{}, rng *rand.Rand) {
	a := client.New(base, token)
	a.HTTP.Timeout = 2 * time.Second
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(50+rng.IntN(200)) * time.Millisecond):
		}
		l.mu.Lock()
		next := l.stock + int64(rng.IntN(7)) - 2
		l.pending = append(l.pending, next)
		l.mu.Unlock()
		s, err := a.UpdateSale(context.Background(), saleID, api.SalePatch{Stock: &next, HoldSeconds: new(int64(1 + rng.IntN(3)))})
		l.mu.Lock()
		if err == nil {
			if s.Stock != next {
				l.viol = append(l.viol, fmt.Sprintf("PATCH stock %d answered stock %d", next, s.Stock))
			}
			l.stock, l.pending = next, nil
		}
		l.mu.Unlock()
	}
}

// checkMixed checks every promise of the log against the restarted server.
func checkMixed(t *testing.T, l *mixedLog, base, token, dataDir, saleID, otherID string, limit int64) {
	t.Helper()
	checkMixedWith(t, l, base, token, saleID, otherID, limit, func() *sql.Rows {
		rows, err := openRO(t, filepath.Join(dataDir, sqlite.FileName)).Query(`SELECT id, order_id, status FROM payments`)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	})
}

func checkMixedWith[R interface {
	Next() bool
	Scan(...any) error
}](t *testing.T, l *mixedLog, base, token, saleID, otherID string, limit int64, payments func() R) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.viol {
		t.Error(v)
	}
	orders := exportOrders(t, base, token, saleID)
	rank := map[string]int{"reserved": 0, "paid": 1, "cancelled": 1, "expired": 1}
	for id, o := range l.created {
		got, ok := orders[id]
		switch {
		case !ok:
			t.Errorf("order %s (user %s, key %q) was answered 201 but is gone after the restart", id, o.UserID, o.IdempotencyKey)
			continue
		case got.UserID != o.UserID || got.Quantity != o.Quantity || got.IdempotencyKey != o.IdempotencyKey:
			t.Errorf("order %s answered as %+v, found as %+v", id, o, got)
		}
		if _, ok := rank[got.Status]; !ok {
			t.Errorf("order %s has status %q", id, got.Status)
		}
	}
	for id, pay := range l.paid {
		if got := orders[id]; got.Status != "paid" {
			t.Errorf("order %s was answered paid by payment %s, but is %q after the restart", id, pay, got.Status)
		}
	}
	for id := range l.cancel {
		if got := orders[id]; got.Status != "cancelled" {
			t.Errorf("order %s was answered cancelled, but is %q after the restart", id, got.Status)
		}
	}
	held := map[string]int64{}
	var live int64
	keys := map[string]string{}
	for _, o := range orders {
		if o.Status == "reserved" || o.Status == "paid" {
			held[o.UserID] += o.Quantity
			live += o.Quantity
		}
		if o.IdempotencyKey != "" {
			k := o.UserID + "\x00" + o.IdempotencyKey
			if prev, dup := keys[k]; dup {
				t.Errorf("orders %s and %s share buyer %s and key %q: the key bought twice", prev, o.ID, o.UserID, o.IdempotencyKey)
			}
			keys[k] = o.ID
		}
	}
	for u, n := range held {
		if n > limit {
			t.Errorf("buyer %s holds %d units, over the per-user limit %d", u, n, limit)
		}
	}
	s, err := client.New(base, token).Sale(context.Background(), saleID)
	if err != nil {
		t.Fatalf("get sale: %v", err)
	}
	okStock := s.Stock == l.stock
	for _, p := range l.pending {
		okStock = okStock || s.Stock == p
	}
	if !okStock {
		t.Errorf("sale stock %d after the restart; the last PATCH answered 200 set %d (unanswered since: %v)", s.Stock, l.stock, l.pending)
	} else if s.Stock == l.stock {
		l.pending = nil
	} else {
		l.stock, l.pending = s.Stock, nil
	}
	if live > s.Stock {
		t.Errorf("oversold: %d units reserved or paid of a stock of %d", live, s.Stock)
	}
	if s.Remaining != s.Stock-live {
		t.Errorf("sale says remaining %d of stock %d, but its orders hold %d units (remaining should be %d)", s.Remaining, s.Stock, live, s.Stock-live)
	}
	if l.archived {
		arch, err := client.New(base, token).ArchivedSales(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range arch {
			found = found || a.ID == otherID
		}
		if !found {
			t.Errorf("sale %s was answered archived, but is not archived after the restart", otherID)
		}
	}
	// Every key that reserved replays its order, whatever became of it.
	hc := &http.Client{Timeout: 5 * time.Second}
	n := 0
	for k, id := range l.keyOrder {
		if n++; n > 300 {
			break
		}
		user, key, _ := strings.Cut(k, "\x00")
		o := l.created[id]
		for try := 0; ; try++ {
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/sales/"+saleID+"/purchases", strings.NewReader(fmt.Sprintf(`{"quantity":%d}`, o.Quantity)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-User-ID", user)
			req.Header.Set("Idempotency-Key", key)
			res, err := hc.Do(req)
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusServiceUnavailable && try < 50 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			var ob api.OrderBody
			_ = json.Unmarshal(b, &ob)
			if res.StatusCode != http.StatusCreated || ob.Order.ID != id || res.Header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("key %s/%s reserved order %s (now %s); its replay after the restart answered %d %s", user, key, id, orders[id].Status, res.StatusCode, b)
			}
			break
		}
	}
	// Payments, from the database itself (read-only beside the server).
	status := map[string]string{}
	rows := payments()
	byOrder := map[string]int{}
	for rows.Next() {
		var id, order, st string
		if err := rows.Scan(&id, &order, &st); err != nil {
			t.Fatal(err)
		}
		status[id] = st
		if st == "paid" {
			byOrder[order]++
		}
	}
	for order, pay := range l.paid {
		if status[pay] != "paid" {
			t.Errorf("payment %s of order %s was answered paid, but is recorded as %q after the restart", pay, order, status[pay])
		}
	}
	for pay, order := range l.refund {
		if status[pay] != "refund_due" && status[pay] != "refunded" {
			t.Errorf("payment %s of order %s was answered refund_due, but is recorded as %q after the restart", pay, order, status[pay])
		}
	}
	for pay, order := range l.mismatch {
		if status[pay] != "amount_mismatch" {
			t.Errorf("payment %s of order %s was answered amount_mismatch, but is recorded as %q after the restart", pay, order, status[pay])
		}
	}
	for order, n := range byOrder {
		if n != 1 || orders[order].Status != "paid" {
			t.Errorf("order %s (%s) has %d paid payments", order, orders[order].Status, n)
		}
	}
	for id, o := range orders {
		if o.Status == "paid" && byOrder[id] == 0 {
			t.Errorf("order %s is paid without a payment that paid it", id)
		}
	}
}

// checkBackup: the copy `surge backup` took while serving holds every
// order answered 201 before the backup began.
func checkBackup(t *testing.T, l *mixedLog, file string, began time.Time) {
	t.Helper()
	db := openRO(t, file)
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM orders`).Scan(&n); err != nil {
		t.Fatalf("read the backup: %v", err)
	}
	t.Logf("backup holds %d orders", n)
	in := map[string]bool{}
	rows, err := db.Query(`SELECT id FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		in[id] = true
	}
	for id, at := range l.at {
		if at.Before(began) && !in[id] {
			t.Errorf("order %s was answered 201 at %v, before the backup began (%v), but the backup lacks it", id, at.Format(time.StampMicro), began.Format(time.StampMicro))
		}
	}
}

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	var kids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, n)
		}
	}
	return kids
}

// TestCrashDuringUpgrade: the mixed workload on an embedded server that
// is upgraded (SIGUSR2) and then SIGKILLed, old and new process alike, at
// a seeded random moment of the handover; the restart keeps every promise.
func TestCrashDuringUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	subreaper(t)
	const (
		lives   = 6
		users   = 1000
		limit   = 3
		stock0  = 1500
		price   = 250
		workers = 16
		secret  = "whsec_crash_mixed_0123456789"
	)
	seed := mixedSeed(t)
	t.Logf("seed %d (replay: CRASH_MIX_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	nc, _, _ := servicetest.NATS(t)
	dataDir, token := t.TempDir(), "upgrade-crash-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	extra := []string{"--nats-url", servicetest.NATSURL(), "--payment-webhook-secret", secret, "--pid-file", pidFile}
	p := startProc(t, dataDir, token, extra...)
	admin := client.New(p.base, token)
	ctx := context.Background()
	sale, err := admin.CreateSale(ctx, api.NewSale{Name: new("mixed"), Stock: new(int64(stock0)), PerUserLimit: new(int64(limit)),
		HoldSeconds: new(int64(2)), PriceCents: new(int64(price)), Currency: new("EUR")})
	if err != nil {
		t.Fatal(err)
	}
	_ = saleSubjects(t, nc, sale.ID)
	l := &mixedLog{created: map[string]api.Order{}, keyOrder: map[string]string{}, paid: map[string]string{},
		refund: map[string]string{}, mismatch: map[string]string{}, cancel: map[string]bool{}, stock: stock0}
	for life := range lives {
		before := time.Duration(200+rng.IntN(600)) * time.Millisecond
		after := time.Duration(rng.IntN(1500)) * time.Millisecond
		lifeSeed := rng.Uint64()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				mixedWorker(l, p.base, token, secret, sale.ID, users, price, stop, rand.New(rand.NewPCG(lifeSeed, uint64(w))))
			})
		}
		wg.Go(func() { mixedAdmin(l, p.base, token, sale.ID, stop, rand.New(rand.NewPCG(lifeSeed, 1000))) })
		time.Sleep(before)
		old := p.cmd.Process.Pid
		if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		// Kill the whole service: the old process, the new one it started.
		victims := append([]int{old}, childrenOf(old)...)
		if n := readPID(pidFile); n != 0 && n != old {
			victims = append(victims, n)
		}
		for _, pid := range victims {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range victims[1:] {
			waitUntil(t, fmt.Sprintf("pid %d to die", pid), 10*time.Second, func() bool { return !alive(pid) })
		}
		<-p.exited
		close(stop)
		wg.Wait()
		l.mu.Lock()
		t.Logf("life %d: SIGUSR2 after %v, SIGKILL %v later (pids %v): %d created, %d paid, %d cancelled",
			life+1, before, after, victims, len(l.created), len(l.paid), len(l.cancel))
		l.mu.Unlock()
		p = startProc(t, dataDir, token, extra...)
		checkMixed(t, l, p.base, token, dataDir, sale.ID, "", limit)
		if t.Failed() {
			t.Fatalf("after life %d (seed %d)", life+1, seed)
		}
	}
	if st := p.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Errorf("surge exited with %v after SIGTERM", st)
	}
}

// checkEvent checks one message against the contract of docs/events.md:
// its id, header and order agree with its event, and an order's reserved
// event comes before its others.
func checkEvent(t *testing.T, e api.OrderEvent, msgID string, reserved map[string]bool) {
	t.Helper()
	if msgID != e.ID {
		t.Errorf("event %s sent with Nats-Msg-Id %q", e.ID, msgID)
	}
	want := e.Order.ID + ":" + e.Event
	if e.Event == "refund_due" {
		want += ":" + e.Ref
	}
	if e.ID != want || e.SaleID != e.Order.SaleID {
		t.Errorf("event %s: id/sale do not match its order %+v (event %s, ref %q)", e.ID, e.Order, e.Event, e.Ref)
	}
	if e.Event != "refund_due" && e.Order.Status != e.Event {
		t.Errorf("event %s carries its order with status %q", e.ID, e.Order.Status)
	}
	if e.Event == "reserved" {
		reserved[e.Order.ID] = true
	} else if !reserved[e.Order.ID] {
		t.Errorf("event %s published before its order's reserved event", e.ID)
	}
}

// checkRestored restores the backup into a new data directory and serves
// it: it must start, and its sale's figures must add up.
func checkRestored(t *testing.T, file, saleID string, limit int64) {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, sqlite.FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	token := "restored-admin-token"
	p := startProc(t, dir, token)
	defer p.stop(t, syscall.SIGTERM, 15*time.Second)
	s, err := client.New(p.base, token).Sale(context.Background(), saleID)
	if err != nil {
		t.Fatalf("restored backup: %v", err)
	}
	var live int64
	held := map[string]int64{}
	for _, o := range exportOrders(t, p.base, token, saleID) {
		if o.Status == "reserved" || o.Status == "paid" {
			live += o.Quantity
			held[o.UserID] += o.Quantity
		}
	}
	if s.Remaining != s.Stock-live || live > s.Stock {
		t.Errorf("restored backup: remaining %d of stock %d, but its orders hold %d units", s.Remaining, s.Stock, live)
	}
	for u, n := range held {
		if n > limit {
			t.Errorf("restored backup: buyer %s holds %d units, limit %d", u, n, limit)
		}
	}
	t.Logf("restored backup serves: stock %d, remaining %d, %d units held", s.Stock, s.Remaining, live)
}

// TestCrashAfterLimitLowered: a buyer holds units under a raised
// per_user_limit, the limit is lowered below them, and the server is
// killed (SIGKILL) or stopped: the next start must serve, keep the
// buyer's orders, replay their key, and refuse the buyer more units.
func TestCrashAfterLimitLowered(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	for _, tc := range []struct {
		name  string
		sig   syscall.Signal
		flags []string
	}{
		{"SIGKILL", syscall.SIGKILL, nil},
		{"SIGTERM with image", syscall.SIGTERM, []string{"--ledger-image-min", "1"}},
		{"SIGKILL after image", syscall.SIGKILL, []string{"--ledger-image-min", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir, token := t.TempDir(), "limit-admin-token"
			p := startProc(t, dataDir, token, tc.flags...)
			c := client.New(p.base, token)
			ctx := context.Background()
			sale, err := c.CreateSale(ctx, api.NewSale{Name: new("limit"), Stock: new(int64(100)), PerUserLimit: new(int64(2)), HoldSeconds: new(int64(3600))})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.UpdateSale(ctx, sale.ID, api.SalePatch{PerUserLimit: new(int64(5))}); err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Timeout: 5 * time.Second}
			first, err := purchase(ctx, hc, p.base, sale.ID, intent{user: "alice", key: "a1", qty: 5})
			if err != nil || first.status != http.StatusCreated {
				t.Fatalf("purchase of 5 under limit 5: %+v %v", first, err)
			}
			if _, err := c.UpdateSale(ctx, sale.ID, api.SalePatch{PerUserLimit: new(int64(1))}); err != nil {
				t.Fatal(err)
			}
			if tc.name == "SIGKILL after image" {
				p.stop(t, syscall.SIGTERM, 15*time.Second)
				p = startProc(t, dataDir, token, tc.flags...)
				if a, err := purchase(ctx, hc, p.base, sale.ID, intent{user: "bob", key: "b1", qty: 1}); err != nil || a.status != http.StatusCreated {
					t.Fatalf("bob: %+v %v", a, err)
				}
			}
			p.stop(t, tc.sig, 15*time.Second)
			p = startProc(t, dataDir, token, tc.flags...)
			a, err := purchase(ctx, hc, p.base, sale.ID, intent{user: "alice", key: "a1", qty: 5})
			if err != nil || a.status != http.StatusCreated || a.order.ID != first.order.ID {
				t.Errorf("replay of alice's key after the restart: %d %s %v; want 201 with order %s", a.status, a.body, err, first.order.ID)
			}
			b, err := purchase(ctx, hc, p.base, sale.ID, intent{user: "alice", key: "a2", qty: 1})
			if err != nil || b.status != http.StatusConflict || b.code != "limit_reached" {
				t.Errorf("alice holds 5 units over the limit 1, yet a new purchase answered %d %s %v", b.status, b.body, err)
			}
			s, err := client.New(p.base, token).Sale(ctx, sale.ID)
			if err != nil {
				t.Fatal(err)
			}
			var live int64
			for _, o := range exportOrders(t, p.base, token, sale.ID) {
				live += o.Quantity
			}
			if s.Remaining != s.Stock-live || s.PerUserLimit != 1 {
				t.Errorf("after the restart: stock %d remaining %d limit %d; orders hold %d", s.Stock, s.Remaining, s.PerUserLimit, live)
			}
		})
	}
}
