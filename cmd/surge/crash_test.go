package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// The crash tests drive the real binary: they build it once, run
// `surge serve` as a subprocess, fire purchases at it, kill it (SIGKILL)
// or stop it (SIGTERM) mid-stream, restart it on the same data directory
// and check that every answer the clients got is on disk and that the
// sale's invariants hold.

var (
	buildOnce sync.Once
	binDir    string // removed by TestMain
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	// The tests set SURGE_* variables themselves; the developer's own must
	// not leak into them (or into the servers they start).
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SURGE_") {
			os.Unsetenv(k)
		}
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// surgeBinary builds the command once per test binary and returns its path.
func surgeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if binDir, buildErr = os.MkdirTemp("", "surge-crash-test-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "surge")
		cmd := exec.Command(goTool, "build", "-o", binPath, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one `surge serve` subprocess.
type proc struct {
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:PORT
	logPath string
	exited  chan struct{} // closed once Wait returned
}

// startProc starts `surge serve` on dataDir and waits until it is ready.
// The process is killed at the end of the test if it is still running.
func startProc(t *testing.T, dataDir, token string, extra ...string) *proc {
	t.Helper()
	bin := surgeBinary(t)
	return startCmd(t, func(addr string) *exec.Cmd { return serveCmd(bin, dataDir, token, addr, extra...) })
}

// startCmd starts the `surge serve` that cmd makes for a free address and
// waits until it is ready.
func startCmd(t *testing.T, cmd func(addr string) *exec.Cmd) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		p, err := launchCmd(t, cmd(addr), addr)
		if err == nil {
			return p
		}
		// Another process may have taken the port between freeAddr and
		// the server's listen; try another one.
		if attempt == 3 || !strings.Contains(err.Error(), "listen on") {
			t.Fatal(err)
		}
		t.Logf("retrying on another port: %v", err)
	}
}

// serveCmd is the command startProc runs.
func serveCmd(bin, dataDir, token, addr string, extra ...string) *exec.Cmd {
	cmd := exec.Command(bin, "serve",
		"--data-dir", dataDir,
		"--http-addr", addr,
		"--admin-token", token,
		"--insecure-user-header",
		"--shutdown-timeout", "10s",
	)
	cmd.Args = append(cmd.Args, extra...)
	return cmd
}

// launchCmd starts cmd, a `surge serve` listening on addr, and waits until
// it is ready.
func launchCmd(t *testing.T, cmd *exec.Cmd, addr string) (*proc, error) {
	logFile, err := os.CreateTemp(t.TempDir(), "serve-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	p := &proc{cmd: cmd, base: "http://" + addr, logPath: logFile.Name(), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				t.Errorf("surge (pid %d) did not die after SIGKILL", cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("log of surge (pid %d):\n%s", cmd.Process.Pid, p.logTail())
		}
	})
	if err := p.waitReady(startWithin); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// startWithin is how long a test waits for a started surge to be ready.
// Only a failure waits it out: a cluster node's start (its schema's
// migrations wait on PostgreSQL's one migration lock, taken by every
// other test's node) took over 10 s on a loaded CI machine, failing
// TestServeOnOneCPU and TestReadinessFollowsRedis on a wait nothing there
// is about.
const startWithin = time.Minute

// waitReady polls /readyz until it answers 200, the process exits or the
// deadline passes.
func (p *proc) waitReady(within time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("surge exited (%v) before it was ready:\n%s", p.cmd.ProcessState, p.logTail())
		default:
		}
		resp, err := hc.Get(p.base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("surge was not ready within %v:\n%s", within, p.logTail())
}

// stop sends sig and waits for the process to exit.
func (p *proc) stop(t *testing.T, sig os.Signal, within time.Duration) *os.ProcessState {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-p.exited:
		return p.cmd.ProcessState
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("surge did not exit within %v of %v", within, sig)
		return nil
	}
}

// intent is one purchase a buyer wants; its key is the same on every try.
type intent struct {
	user, key string
	qty       int64
	tries     int
}

func (it intent) id() string { return it.user + "\x00" + it.key }

// answer is what a purchase got back.
type answer struct {
	status int
	order  api.Order // 201
	code   string    // error code of any other status
	replay bool      // Idempotent-Replayed: true
	body   string
	bad    error // a complete answer that could not be decoded
	// sent and received bound when the server decided: after sent,
	// before received.
	sent, received time.Time
}

func purchase(ctx context.Context, hc *http.Client, base, saleID string, it intent) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sales/"+saleID+"/purchases",
		strings.NewReader(fmt.Sprintf(`{"quantity":%d}`, it.qty)))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-ID", it.user)
	req.Header.Set("Idempotency-Key", it.key)
	sent := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return answer{}, err // cut by the kill
	}
	a := answer{status: resp.StatusCode, replay: resp.Header.Get("Idempotent-Replayed") == "true", body: string(b),
		sent: sent, received: time.Now()}
	if a.status == http.StatusCreated {
		var v struct {
			Order *api.Order `json:"order"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.Order == nil {
			a.bad = fmt.Errorf("undecodable 201 body %q: %v", b, err)
		} else {
			a.order = *v.Order
		}
		return a, nil
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" {
		a.bad = fmt.Errorf("undecodable %d body %q: %v", a.status, b, err)
	}
	a.code = e.Error.Code
	return a, nil
}

// keyLog is everything the clients learned about one (user, key).
type keyLog struct {
	orderID string    // of the first 201
	ok      int       // 201 answers
	okAt    time.Time // when the first 201 was received
	refused []string  // codes of 409 answers
	// late holds the codes of 409s to requests sent after the key's first
	// 201 had been received: the one refusal the API never allows. A 409
	// before it is allowed (docs/api.md: only reservations are remembered;
	// after a 409 the same key may succeed once units come back, as they
	// do when a rebuild drops a killed node's reservations that never
	// became durable).
	late []string
}

// shopper fires the intents of a workload at whichever server is up and
// records every answer.
type shopper struct {
	saleID       string
	stock, limit int64
	// refusalsFinal: a key refused is never answered 201 later, as in
	// embedded mode, where no decision sees a reservation that is not yet
	// durable and no units come back in these workloads. Cluster mode
	// clears it: Redis decides ahead of PostgreSQL, so a refusal may count
	// a killed node's reservation that a rebuild then drops.
	refusalsFinal bool

	issued      map[string]int64 // intent id -> quantity; written only while no worker runs
	queue       chan intent      // pending tries; an entry is either queued or held by a worker
	outstanding atomic.Int64     // entries not yet answered for good
	drained     chan struct{}    // closed when outstanding reaches 0
	pace        <-chan time.Time // paces the tries of every worker together
	maxTries    int              // tries of one intent before it is a violation (default 100)

	mu         sync.Mutex
	keys       map[string]*keyLog
	acked      []api.Order // every 201 body
	violations []string

	sent, created, replays, refused, unavailable atomic.Int64
	dialErrs, broken                             atomic.Int64 // transport errors: refused dials, broken exchanges
}

func (s *shopper) violation(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) < 50 {
		s.violations = append(s.violations, fmt.Sprintf(format, args...))
	}
}

func (s *shopper) resolve() {
	if s.outstanding.Add(-1) == 0 {
		close(s.drained)
	}
}

// record checks and records one complete answer to it.
func (s *shopper) record(it intent, a answer) {
	if a.bad != nil {
		s.violation("%s/%s: %v", it.user, it.key, a.bad)
		return
	}
	switch a.status {
	case http.StatusCreated:
		o := a.order
		if o.SaleID != s.saleID || o.UserID != it.user || o.Quantity != it.qty || o.IdempotencyKey != it.key || o.Status != "reserved" {
			s.violation("201 for %s/%s qty %d is %+v", it.user, it.key, it.qty, o)
		}
		s.created.Add(1)
		if a.replay {
			s.replays.Add(1)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.acked = append(s.acked, o)
		k := s.keys[it.id()]
		if k == nil {
			k = &keyLog{orderID: o.ID, okAt: a.received}
			s.keys[it.id()] = k
		} else if k.orderID == "" {
			k.orderID, k.okAt = o.ID, a.received
		} else if k.orderID != o.ID {
			s.violations = append(s.violations, fmt.Sprintf("key %s/%s answered 201 with orders %s and %s", it.user, it.key, k.orderID, o.ID))
		}
		k.ok++
	case http.StatusConflict:
		if a.code != "sold_out" && a.code != "limit_reached" {
			s.violation("409 for %s/%s with code %q", it.user, it.key, a.code)
		}
		s.refused.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		k := s.keys[it.id()]
		if k == nil {
			k = &keyLog{}
			s.keys[it.id()] = k
		}
		k.refused = append(k.refused, a.code)
		if k.ok > 0 && a.sent.After(k.okAt) {
			k.late = append(k.late, a.code)
		}
	default:
		s.violation("%s/%s: unexpected answer %d: %s", it.user, it.key, a.status, a.body)
	}
}

// try sends one intent and deals with the answer; an intent that got no
// final answer goes back to the queue to be retried with the same key.
func (s *shopper) try(ctx context.Context, hc *http.Client, base string, it intent) {
	s.sent.Add(1)
	a, err := purchase(ctx, hc, base, s.saleID, it)
	if err == nil && a.status == http.StatusServiceUnavailable {
		s.unavailable.Add(1)
		err = errors.New(a.body)
		time.Sleep(5 * time.Millisecond)
	} else if err != nil && !errors.Is(err, context.Canceled) {
		// Expected around a kill: counted, not failed.
		if errors.Is(err, syscall.ECONNREFUSED) {
			s.dialErrs.Add(1)
		} else {
			s.broken.Add(1)
		}
	}
	if err != nil {
		if it.tries++; it.tries > cmp.Or(s.maxTries, 100) {
			s.violation("%s/%s: no answer after %d tries, last: %v", it.user, it.key, it.tries, err)
			s.resolve()
			return
		}
		s.queue <- it
		return
	}
	s.record(it, a)
	s.resolve()
	if a.status == http.StatusCreated && rand.IntN(4) == 0 {
		// A client that retries although it got its answer must get the
		// same order back, marked as a replay.
		s.sent.Add(1)
		b, err := purchase(ctx, hc, base, s.saleID, it)
		if err != nil || b.status == http.StatusServiceUnavailable {
			return
		}
		if b.status == http.StatusCreated && !b.replay {
			s.violation("retry of %s/%s: 201 without Idempotent-Replayed", it.user, it.key)
		}
		s.record(it, b)
	}
}

func (s *shopper) worker(ctx context.Context, hc *http.Client, base string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.drained:
			return
		case it := <-s.queue:
			if s.pace != nil {
				select {
				case <-s.pace:
				case <-ctx.Done():
					s.queue <- it
					return
				}
			}
			s.try(ctx, hc, base, it)
		}
	}
}

// fire runs workers against base until stop returns, then stops them and
// waits for them (also when stop ends the test).
func (s *shopper) fire(base string, workers int, stop func()) {
	tr := &http.Transport{MaxIdleConns: 2 * workers, MaxIdleConnsPerHost: 2 * workers}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for range workers {
		wg.Go(func() { s.worker(ctx, hc, base) })
	}
	stop()
}

func (s *shopper) counters() string {
	return fmt.Sprintf("sent %d, 201 %d (replays %d), 409 %d, 503 %d, refused connections %d, broken exchanges %d",
		s.sent.Load(), s.created.Load(), s.replays.Load(), s.refused.Load(), s.unavailable.Load(), s.dialErrs.Load(), s.broken.Load())
}

// newShopper builds a workload whose demand exceeds the stock: users with
// one to three intents of one to three units each (so some hit the
// per-user limit), a tenth of the intents sent twice concurrently.
func newShopper(t *testing.T, saleID string, stock, limit int64, users int, rng *rand.Rand) *shopper {
	s := &shopper{
		saleID: saleID, stock: stock, limit: limit,
		issued:        make(map[string]int64),
		keys:          make(map[string]*keyLog),
		refusalsFinal: true,
		drained:       make(chan struct{}),
	}
	var entries []intent
	var reachable int64 // units the buyers could hold if stock were unlimited
	for u := range users {
		user := fmt.Sprintf("u%04d", u)
		var want int64
		for j := range 1 + rng.IntN(3) {
			it := intent{user: user, key: fmt.Sprintf("key-%d-%d", u, j), qty: 1 + rng.Int64N(limit)}
			s.issued[it.id()] = it.qty
			want += it.qty
			entries = append(entries, it)
			if rng.IntN(10) == 0 {
				entries = append(entries, it)
			}
		}
		reachable += min(want, limit)
	}
	if reachable <= stock {
		t.Fatalf("workload too small: buyers can hold at most %d units of %d", reachable, stock)
	}
	rng.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
	s.queue = make(chan intent, len(entries))
	for _, it := range entries {
		s.queue <- it
	}
	s.outstanding.Store(int64(len(entries)))
	return s
}

// topUp buys single units as fresh users until the sale answers sold_out,
// so the sale is sold out whatever units the workload's quantities left.
func (s *shopper) topUp(t *testing.T, base string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	ctx := context.Background()
	for i := range s.stock + 1 {
		it := intent{user: fmt.Sprintf("topup%d", i), key: fmt.Sprintf("topup-%d", i), qty: 1}
		s.issued[it.id()] = 1
		a, err := purchase(ctx, hc, base, s.saleID, it)
		if err != nil {
			t.Fatalf("top-up purchase: %v", err)
		}
		s.record(it, a)
		if a.status != http.StatusCreated {
			if a.code != "sold_out" {
				t.Fatalf("top-up purchase: %d %s", a.status, a.body)
			}
			return
		}
	}
	t.Fatalf("sale not sold out after %d top-up units", s.stock+1)
}

// verify checks the clients' answers against the server's export and sale.
// complete says every intent got its final answer, so every order on disk
// must have been acknowledged to some client.
func (s *shopper) verify(t *testing.T, base, token string, complete bool) api.Sale {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := client.New(base, token)
	byID := make(map[string]api.Order)
	byKey := make(map[string]string)
	held := make(map[string]int64)
	var live int64
	var errs []string
	fail := func(format string, args ...any) {
		if len(errs) < 50 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	err := c.Orders(ctx, s.saleID, func(o api.Order) error {
		if _, dup := byID[o.ID]; dup {
			fail("order %s exported twice", o.ID)
		}
		byID[o.ID] = o
		if o.SaleID != s.saleID {
			fail("order %s belongs to sale %q", o.ID, o.SaleID)
		}
		// (d) one order per (user, idempotency key).
		k := intent{user: o.UserID, key: o.IdempotencyKey}.id()
		if prev, dup := byKey[k]; dup {
			fail("orders %s and %s share user %s and key %q", prev, o.ID, o.UserID, o.IdempotencyKey)
		}
		byKey[k] = o.ID
		// Every order comes from a purchase some client sent.
		if qty, ok := s.issued[k]; !ok || qty != o.Quantity {
			fail("order %+v matches no purchase sent (user, key, quantity)", o)
		}
		switch o.Status {
		case "reserved", "paid":
			live += o.Quantity
			held[o.UserID] += o.Quantity
		default:
			fail("order %s has status %q: nothing cancels or expires here", o.ID, o.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("export orders: %v", err)
	}
	sale, err := c.Sale(ctx, s.saleID)
	if err != nil {
		t.Fatalf("get sale: %v", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// (a) every 201 is on disk as answered. Each answer is compared, a
	// replay too: two purchases answered with one order id (different
	// keys or buyers) must not pass as a replay, since one of them then
	// holds no order.
	acked := make(map[string]bool)
	for _, a := range s.acked {
		acked[a.ID] = true
		o, ok := byID[a.ID]
		switch {
		case !ok:
			fail("order %s (user %s, qty %d) answered 201 but missing from the export", a.ID, a.UserID, a.Quantity)
		case o.UserID != a.UserID || o.Quantity != a.Quantity || o.IdempotencyKey != a.IdempotencyKey:
			fail("order %s answered as %s x%d key %q, exported as %s x%d key %q",
				a.ID, a.UserID, a.Quantity, a.IdempotencyKey, o.UserID, o.Quantity, o.IdempotencyKey)
		}
	}
	if complete {
		for id, o := range byID {
			if !acked[id] {
				fail("order %s (user %s, key %q) on disk was never acknowledged although its key was retried", id, o.UserID, o.IdempotencyKey)
			}
		}
	}
	// (b) no overselling.
	if live > s.stock {
		fail("%d live units of a stock of %d", live, s.stock)
	}
	// (c) per-user limit.
	for u, n := range held {
		if n > s.limit {
			fail("user %s holds %d units, limit %d", u, n, s.limit)
		}
	}
	// (e) remaining matches the orders.
	if sale.Stock != s.stock || sale.Remaining != s.stock-live {
		fail("sale says stock %d remaining %d; orders hold %d of %d", sale.Stock, sale.Remaining, live, s.stock)
	}
	for _, e := range errs {
		t.Error(e)
	}
	t.Logf("verified %d orders on disk, %d answered 201, %d live units of %d; remaining %d, status %s",
		len(byID), len(acked), live, s.stock, sale.Remaining, sale.Status)
	return sale
}

// checkAnswers reports what was wrong with the answers themselves.
func (s *shopper) checkAnswers(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	// (f) a key answered 201 is answered with that order only (checked as
	// the answers came) and never refused afterwards.
	for k, l := range s.keys {
		if len(l.late) > 0 || s.refusalsFinal && l.ok > 0 && len(l.refused) > 0 {
			user, key, _ := strings.Cut(k, "\x00")
			t.Errorf("key %s/%s answered 201 (order %s), and 409 %v (to requests sent after it: %v)", user, key, l.orderID, l.refused, l.late)
		}
	}
	for _, v := range s.violations {
		t.Error(v)
	}
}

func createSale(t *testing.T, base, token string, stock, limit int64) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.New(base, token).CreateSale(ctx, api.NewSale{
		Name: new("crash test"), Stock: new(stock), PerUserLimit: new(limit), HoldSeconds: new(int64(3600)),
	})
	if err != nil {
		t.Fatalf("create sale: %v", err)
	}
	return s.ID
}

func newRand(t *testing.T) *rand.Rand {
	seed := rand.Uint64()
	t.Logf("workload seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// pacer yields one tick every interval: it spreads the workload over the
// kill cycles so that every kill lands mid-stream.
func pacer(t *testing.T, interval time.Duration) <-chan time.Time {
	tk := time.NewTicker(interval)
	t.Cleanup(tk.Stop)
	return tk.C
}

// drainFor fires until every intent has its final answer, for at most d.
func (s *shopper) drainFor(t *testing.T, base string, workers int, d time.Duration) bool {
	t.Helper()
	drained := true
	s.fire(base, workers, func() {
		select {
		case <-s.drained:
		case <-time.After(d):
			drained = false
		}
	})
	if !drained {
		t.Errorf("%d purchases still without a final answer after %v", s.outstanding.Load(), d)
	}
	return drained
}

// The spike the crash, shutdown and backup tests send: spikeStock units,
// at most spikeLimit per buyer, spikeUsers buyers, at most one purchase
// per spikePace, so that a stop a few hundred milliseconds in lands
// before the sale sells out.
const (
	spikeStock = 3000
	spikeLimit = 3
	spikeUsers = 1500
	spikePace  = 500 * time.Microsecond
)

// pacedSpike puts that sale on the server at base and returns the shopper
// that buys it, paced.
func pacedSpike(t *testing.T, base, token string, rng *rand.Rand) *shopper {
	t.Helper()
	s := newShopper(t, createSale(t, base, token, spikeStock, spikeLimit), spikeStock, spikeLimit, spikeUsers, rng)
	s.pace = pacer(t, spikePace)
	return s
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	// At most one purchase per spikePace: the first kill (at most 600ms
	// in, so at most 1200 purchases) cannot come after the sale sold
	// out, and the sale sells out around the third.
	const (
		workers = 64
		kills   = 4
	)
	dataDir, token := t.TempDir(), "crash-admin-token"
	rng := newRand(t)

	p := startProc(t, dataDir, token)
	s := pacedSpike(t, p.base, token, rng)
	for i := range kills {
		delay := time.Duration(150+rng.IntN(451)) * time.Millisecond
		s.fire(p.base, workers, func() {
			time.Sleep(delay)
			if st := p.stop(t, syscall.SIGKILL, 10*time.Second); st.Success() {
				t.Errorf("surge exited successfully after SIGKILL: %v", st)
			}
			time.Sleep(100 * time.Millisecond) // and the clients go on trying
		})
		t.Logf("kill %d after %v: %s", i+1, delay, s.counters())
		p = startProc(t, dataDir, token)
		// Every 201 so far survived the kill.
		sale := s.verify(t, p.base, token, false)
		if t.Failed() {
			s.checkAnswers(t)
			return
		}
		if i == 0 && sale.Remaining == 0 {
			t.Errorf("sold out before the first kill: it did not land mid-stream")
		}
	}

	// The last life: fire until every intent has its final answer.
	s.pace = nil
	drained := s.drainFor(t, p.base, workers, 15*time.Second)
	s.topUp(t, p.base)
	t.Logf("final: %s", s.counters())
	if s.dialErrs.Load()+s.broken.Load() == 0 {
		t.Errorf("no connection error at all: the clients never met a killed server")
	}

	sale := s.verify(t, p.base, token, drained)
	s.checkAnswers(t)
	if sale.Remaining != 0 || sale.Status != "sold_out" {
		t.Errorf("sale not sold out at the end: remaining %d, status %q", sale.Remaining, sale.Status)
	}
	if st := p.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Errorf("surge exited with %v after SIGTERM", st)
	}
}

func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	// At most 800 purchases (spikePace) in the 400ms before SIGTERM:
	// the sale cannot sell out before it.
	const workers = 32
	dataDir, token := t.TempDir(), "graceful-admin-token"
	rng := newRand(t)

	p := startProc(t, dataDir, token)
	s := pacedSpike(t, p.base, token, rng)
	delay := time.Duration(150+rng.IntN(251)) * time.Millisecond
	var st *os.ProcessState
	s.fire(p.base, workers, func() {
		time.Sleep(delay)
		st = p.stop(t, syscall.SIGTERM, 15*time.Second)
	})
	t.Logf("SIGTERM after %v: %s", delay, s.counters())
	if !st.Success() {
		t.Fatalf("surge exited with %v after SIGTERM, want status 0", st)
	}
	if !strings.Contains(p.logTail(), "stopped cleanly") {
		t.Errorf("no clean stop in the log")
	}
	n := s.created.Load()
	if n == 0 {
		t.Fatalf("no purchase succeeded before SIGTERM: %s", s.counters())
	}

	// Every 201 of the first life is on disk, before anything else runs.
	p = startProc(t, dataDir, token)
	first := s.verify(t, p.base, token, false)
	if t.Failed() {
		s.checkAnswers(t)
		return
	}
	if first.Remaining == 0 {
		t.Errorf("sold out before SIGTERM: the shutdown did not land mid-stream")
	}

	// Then the purchases left without an answer are retried with their
	// keys, and every order on disk must have been acknowledged.
	s.pace = nil
	drained := s.drainFor(t, p.base, workers, 15*time.Second)
	s.verify(t, p.base, token, drained)
	s.checkAnswers(t)
	t.Logf("final: %s (%d answered 201 before SIGTERM)", s.counters(), n)
}

// TestCrashAfterImage: a clean stop mid-stream writes the ledger image;
// the next life starts from it, sells on and is killed; the start after
// that takes the image again and replays the orders of the life killed.
// Every 201 survives both, and the sale's stock left matches its orders.
func TestCrashAfterImage(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	const workers = 32
	dataDir, token := t.TempDir(), "image-admin-token"
	rng := newRand(t)
	image := []string{"--ledger-image-min", "1"}

	p := startProc(t, dataDir, token, image...)
	s := pacedSpike(t, p.base, token, rng)
	for life, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		delay := time.Duration(150+rng.IntN(251)) * time.Millisecond
		s.fire(p.base, workers, func() {
			time.Sleep(delay)
			p.stop(t, sig, 15*time.Second)
		})
		t.Logf("life %d ends in %v after %v: %s", life+1, sig, delay, s.counters())
		if _, err := os.Stat(filepath.Join(dataDir, "surge.ledger")); err != nil {
			t.Fatalf("no ledger image after life %d: %v", life+1, err)
		}
		p = startProc(t, dataDir, token, image...)
		sale := s.verify(t, p.base, token, false)
		if t.Failed() {
			s.checkAnswers(t)
			return
		}
		if sale.Remaining == 0 {
			t.Errorf("sold out after life %d: the stop did not land mid-stream", life+1)
		}
		if log, _ := os.ReadFile(p.logPath); !strings.Contains(string(log), "sales from the ledger image") {
			t.Errorf("life %d's start did not take the ledger image:\n%s", life+2, p.logTail())
		}
	}
	s.pace = nil
	drained := s.drainFor(t, p.base, workers, 15*time.Second)
	s.verify(t, p.base, token, drained)
	s.checkAnswers(t)
}

// TestPurchaseHelper checks the helper the crash tests rely on: if it
// misread answers, their checks would prove nothing.
func TestPurchaseHelper(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	dataDir, token := t.TempDir(), "decode-admin-token"
	p := startProc(t, dataDir, token)
	saleID := createSale(t, p.base, token, 2, 2)
	hc := &http.Client{Timeout: 5 * time.Second}
	ctx := context.Background()
	it := intent{user: "alice", key: "k1", qty: 2}
	a, err := purchase(ctx, hc, p.base, saleID, it)
	if err != nil || a.bad != nil || a.status != http.StatusCreated || a.replay {
		t.Fatalf("first purchase: %+v, %v", a, err)
	}
	if a.order.ID == "" || a.order.UserID != "alice" || a.order.Quantity != 2 || a.order.IdempotencyKey != "k1" {
		t.Errorf("201 order decoded as %+v", a.order)
	}
	b, err := purchase(ctx, hc, p.base, saleID, it)
	if err != nil || b.status != http.StatusCreated || !b.replay || b.order.ID != a.order.ID {
		t.Errorf("replay: %+v, %v; want 201 replay of %s", b, err, a.order.ID)
	}
	c, err := purchase(ctx, hc, p.base, saleID, intent{user: "bob", key: "k1", qty: 1})
	if err != nil || c.status != http.StatusConflict || c.code != "sold_out" {
		t.Errorf("purchase of a sold-out sale: %+v, %v", c, err)
	}
}

// runRefused runs `surge serve` on dataDir and expects it to refuse to
// start: a non-zero exit without ever serving. The deadline only bounds a
// failing run; a refusal comes at once. It returns the output.
func runRefused(t *testing.T, dataDir string) string {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, surgeBinary(t), "serve", "--data-dir", dataDir, "--http-addr", addr,
		"--admin-token", "refused-admin-token", "--insecure-user-header")
	b, err := cmd.CombinedOutput()
	out := string(b)
	if ctx.Err() != nil {
		t.Fatalf("surge serve did not exit; it was expected to refuse at once:\n%s", out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
		t.Fatalf("surge serve exited with %v, want a non-zero status:\n%s", err, out)
	}
	if strings.Contains(out, "serving on") {
		t.Errorf("the refused process served:\n%s", out)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("something listens on the refused process's address %s", addr)
	}
	return out
}

// TestSecondServeRefused starts two `surge serve` on one data directory:
// the second must exit non-zero at once, naming the directory and the
// first's pid, and never listen; the first goes on serving.
func TestSecondServeRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	dataDir, token := t.TempDir(), "second-serve-admin-token"
	p := startProc(t, dataDir, token)
	saleID := createSale(t, p.base, token, 10, 1)

	out := runRefused(t, dataDir)
	for _, want := range []string{dataDir, fmt.Sprintf("pid %d", p.cmd.Process.Pid)} {
		if !strings.Contains(out, want) {
			t.Errorf("the second serve's output does not name %q:\n%s", want, out)
		}
	}

	hc := &http.Client{Timeout: 10 * time.Second}
	a, err := purchase(t.Context(), hc, p.base, saleID, intent{user: "u1", key: "k1", qty: 1})
	if err != nil || a.status != http.StatusCreated {
		t.Fatalf("the first serve after the refusal: %+v, %v; want 201", a, err)
	}
	// Once the first stops, the directory is free.
	if st := p.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Fatalf("first serve exited with %v", st)
	}
	p = startProc(t, dataDir, token)
	a, err = purchase(t.Context(), hc, p.base, saleID, intent{user: "u1", key: "k1", qty: 1})
	if err != nil || a.status != http.StatusCreated || !a.replay {
		t.Errorf("replay on the next serve: %+v, %v; want the first 201 again", a, err)
	}
}

// TestServeRefusesLostDatabase removes the database of a directory that
// confirmed orders: serve must refuse to start an empty store over it,
// loudly, and leave the directory as it found it.
func TestServeRefusesLostDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	dataDir, token := t.TempDir(), "lost-db-admin-token"
	p := startProc(t, dataDir, token)
	saleID := createSale(t, p.base, token, 10, 1)
	hc := &http.Client{Timeout: 10 * time.Second}
	if a, err := purchase(t.Context(), hc, p.base, saleID, intent{user: "u1", key: "k1", qty: 1}); err != nil || a.status != http.StatusCreated {
		t.Fatalf("purchase: %+v, %v", a, err)
	}
	if st := p.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Fatalf("serve exited with %v", st)
	}
	db := filepath.Join(dataDir, "surge.db")
	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}

	out := runRefused(t, dataDir)
	for _, want := range []string{"level=ERROR", db + " is missing", "surge.hwm"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused start left a database behind (%v)", err)
	}
}
