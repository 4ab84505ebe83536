//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/servicetest"
	"golang.org/x/sys/unix"
)

// The upgrade tests send SIGUSR2 to a real `surge serve` under load,
// several times in a row, and check what the issue asks of a handover: no
// transport error, no 5xx, every 201 in the export afterwards. Each
// process after the first is started by the one before it; the test makes
// itself a child subreaper so that each, once its parent has exited,
// becomes the test's child and its exit status can be read.

func TestUpgradeUnderLoad(t *testing.T) {
	upgradeUnderLoad(t, "embedded", nil)
}

func TestClusterUpgradeUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	upgradeUnderLoad(t, "cluster", clusterArgs(t))
}

// subreaper makes the test process adopt the orphans among its
// descendants: each new process of an upgrade, once its parent exited.
func subreaper(t *testing.T) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("become a child subreaper: %v", err)
	}
}

// generation is one process of a chain of upgrades.
type generation struct {
	pid    int
	exited <-chan struct{}
	state  func() *os.ProcessState // once exited
}

// adopt waits for pid, which has become the test's child (its parent
// exited, the test is the subreaper), and kills it at the end of the test
// if it still runs.
func adopt(t *testing.T, pid int) generation {
	t.Helper()
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatalf("find pid %d: %v", pid, err)
	}
	exited := make(chan struct{})
	var st *os.ProcessState
	go func() {
		for {
			var err error
			// Until its parent, the old process, has exited, pid is not
			// the test's child and Wait fails at once (ECHILD): wait
			// while it lives.
			if st, err = p.Wait(); errors.Is(err, syscall.ECHILD) && alive(pid) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			break
		}
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGKILL) // by pid: p may not be the test's child yet
		select {
		case <-exited:
		case <-time.After(10 * time.Second): // a zombie its old parent reaps at its own end
		}
	})
	return generation{pid: pid, exited: exited, state: func() *os.ProcessState { return st }}
}

// TestUpgradeLeavesNoProcess: an upgrade test adopts the new process while
// its parent, the old process, still drains, so it is not yet the test's
// child; it must still end with the test. New processes left running hold
// their ports and data directories (they were found orphaned after runs).
func TestUpgradeLeavesNoProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	next := 0
	t.Run("upgrade", func(t *testing.T) {
		dataDir, token := t.TempDir(), "upgrade-leaves-admin-token"
		pidFile := filepath.Join(t.TempDir(), "surge.pid")
		p := startProc(t, dataDir, token, "--pid-file", pidFile)
		next = upgradeUntilHandover(t, p, pidFile)
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if !alive(next) {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(next, syscall.SIGKILL)
			t.Fatalf("the upgrade's new process %d still runs after the test that adopted it", next)
		}
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// timed measures how long each exchange waited for its answer, retries
// of the Transport included: what a client sees.
type timed struct {
	rt      http.RoundTripper
	slowest atomic.Int64 // nanoseconds, since the last Swap

	mu   sync.Mutex
	errs []string // the first transport errors, for the report
}

func (tr *timed) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := tr.rt.RoundTrip(req)
	d := int64(time.Since(start))
	if err != nil && !errors.Is(err, context.Canceled) {
		tr.mu.Lock()
		if len(tr.errs) < 10 {
			tr.errs = append(tr.errs, fmt.Sprintf("%s after %v: %v", start.Format("15:04:05.000"), time.Duration(d), err))
		}
		tr.mu.Unlock()
	}
	for {
		cur := tr.slowest.Load()
		if d <= cur || tr.slowest.CompareAndSwap(cur, d) {
			break
		}
	}
	return resp, err
}

// fireMixed is fire with two kinds of clients: half keep their
// connections alive, half open one per request.
func (s *shopper) fireMixed(base string, workers int, keepAlive, fresh *timed, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for i := range workers {
		tr := fresh
		if i%2 == 0 {
			tr = keepAlive
		}
		hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		wg.Go(func() { s.worker(ctx, hc, base) })
	}
	stop()
}

func upgradeUnderLoad(t *testing.T, mode string, extra []string) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	const (
		stock    = 10000
		limit    = 3
		users    = 6000
		workers  = 32
		upgrades = 3
		// At most 1000 purchases a second: the sale lasts through every
		// upgrade.
		pace = time.Millisecond
	)
	dataDir, token := t.TempDir(), "upgrade-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, append(extra, "--pid-file", pidFile)...)
	cur := generation{pid: p.cmd.Process.Pid, exited: p.exited, state: func() *os.ProcessState { return p.cmd.ProcessState }}
	if got := readPID(pidFile); got != cur.pid {
		t.Fatalf("pid file holds %d, want %d", got, cur.pid)
	}

	s := newShopper(t, createSale(t, p.base, token, stock, limit), stock, limit, users, newRand(t))
	s.refusalsFinal = mode == "embedded" // see shopper
	s.pace = pacer(t, pace)
	keepAlive := &timed{rt: &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers}}
	fresh := &timed{rt: &http.Transport{DisableKeepAlives: true}}
	slowest := func() time.Duration {
		return time.Duration(max(keepAlive.slowest.Swap(0), fresh.slowest.Swap(0)))
	}
	var worst time.Duration
	s.fireMixed(p.base, workers, keepAlive, fresh, func() {
		time.Sleep(300 * time.Millisecond)
		for deadline := time.Now().Add(time.Minute); s.created.Load() < 50 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%s: before any upgrade: longest wait %v; %s", mode, slowest(), s.counters())
		for i := range upgrades {
			before, old := s.created.Load(), cur.pid
			sent := time.Now()
			if err := syscall.Kill(cur.pid, syscall.SIGUSR2); err != nil {
				t.Errorf("SIGUSR2 to %d: %v", cur.pid, err)
				return
			}
			// The pid file names the new process once it is ready to take
			// over; the old one then drains and exits.
			next := 0
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
				if next = readPID(pidFile); next != 0 && next != cur.pid {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("upgrade %d: the pid file still names %d after a minute", i+1, cur.pid)
					return
				}
			}
			select {
			case <-cur.exited:
			case <-time.After(time.Minute):
				t.Errorf("upgrade %d: the old process %d did not exit", i+1, cur.pid)
				return
			}
			if st := cur.state(); st == nil || !st.Success() {
				t.Errorf("upgrade %d: the old process %d exited with %v, want status 0", i+1, cur.pid, st)
			}
			cur = adopt(t, next)
			// The new process serves the crowd for a while.
			time.Sleep(500 * time.Millisecond)
			for deadline := time.Now().Add(time.Minute); s.created.Load() < before+50 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			w := slowest()
			worst = max(worst, w)
			t.Logf("%s: upgrade %d (pid %d -> %d): old process gone %v after SIGUSR2; longest wait %v; 201s meanwhile %d; %s",
				mode, i+1, old, next, time.Since(sent).Round(time.Millisecond), w, s.created.Load()-before, s.counters())
			if s.created.Load() == before {
				t.Errorf("upgrade %d: no purchase succeeded around it: the load did not run through", i+1)
			}
		}
	})
	t.Logf("%s: longest wait of a request over the handovers: %v", mode, worst)
	if logs, err := os.ReadFile(p.logPath); err == nil {
		for line := range strings.Lines(string(logs)) {
			if strings.Contains(line, "upgrade: the store is open") {
				t.Logf("%s: %s", mode, strings.TrimSpace(line)) // the old one's drain and the store's load
			}
		}
	}
	if n := s.dialErrs.Load() + s.broken.Load(); n > 0 {
		t.Errorf("%d transport errors (refused connections %d, broken exchanges %d): a handover must not show", n, s.dialErrs.Load(), s.broken.Load())
		for _, tr := range []*timed{keepAlive, fresh} {
			for _, e := range tr.errs {
				t.Log(e)
			}
		}
	}
	if n := s.unavailable.Load(); n > 0 {
		t.Errorf("%d answers 503 during the upgrades", n)
	}
	// Purchases the stopped clients gave up on may still be committing:
	// the sale must rest before the export is compared with it.
	settle(t, p.base, s.saleID)
	reconciled(t, p.base, token, s.saleID, stock, 15*time.Second)
	s.verify(t, p.base, token, false)
	s.checkAnswers(t)
	if t.Failed() {
		t.Logf("log of the processes:\n%s", p.logTail())
	}

	if err := syscall.Kill(cur.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cur.exited:
		if st := cur.state(); st == nil || !st.Success() {
			t.Errorf("the last process exited with %v after SIGTERM", st)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the last process %d did not exit after SIGTERM", cur.pid)
	}
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pid file outlived a clean stop: %v", err)
	}
}

// settle waits until the sale's remaining stock stays the same for half
// a second.
func settle(t *testing.T, base, saleID string) {
	t.Helper()
	c := client.New(base, "")
	last := int64(-1)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		sale, err := c.Sale(t.Context(), saleID)
		if err != nil {
			t.Fatalf("get sale: %v", err)
		}
		if sale.Remaining == last {
			return
		}
		last = sale.Remaining
	}
	t.Fatalf("the sale's remaining stock still moves 30s after the load stopped")
}

// replaceFile puts a file with content b and mode at path by renaming, as
// an operator installs a new binary under a running one.
func replaceFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeFailedKeepsServing: a SIGUSR2 while the binary at the
// process's path cannot start leaves the process serving, its pid file
// as it was; once a good binary is back, the next SIGUSR2 upgrades, and
// the new process serves on the API and the admin listener alike.
func TestUpgradeFailedKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	good, err := os.ReadFile(surgeBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "surge")
	replaceFile(t, bin, good)
	dataDir, token := t.TempDir(), "failed-upgrade-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	admin := "http://" + freeAddr(t)
	addr := freeAddr(t)
	p, err := launchCmd(t, serveCmd(bin, dataDir, token, addr, "--admin-addr", strings.TrimPrefix(admin, "http://"), "--pid-file", pidFile), addr)
	if err != nil {
		t.Fatal(err)
	}
	saleID := createSale(t, admin, token, 10, 1)
	hc := &http.Client{Timeout: 10 * time.Second}
	buy := func(base, user string) {
		t.Helper()
		a, err := purchase(t.Context(), hc, base, saleID, intent{user: user, key: "k-" + user, qty: 1})
		if err != nil || a.status != http.StatusCreated {
			t.Fatalf("purchase of %s: %+v, %v; want 201", user, a, err)
		}
	}
	buy(p.base, "u1")

	replaceFile(t, bin, []byte("#!/bin/sh\necho 'this binary is broken' >&2\nexit 3\n"))
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !strings.Contains(p.logTail(), "upgrade failed; this process serves on"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no failed upgrade in the log:\n%s", p.logTail())
		}
	}
	select {
	case <-p.exited:
		t.Fatalf("the process exited after a failed upgrade: %v", p.cmd.ProcessState)
	default:
	}
	if got := readPID(pidFile); got != p.cmd.Process.Pid {
		t.Errorf("pid file holds %d after a failed upgrade, want %d", got, p.cmd.Process.Pid)
	}
	buy(p.base, "u2")

	replaceFile(t, bin, good)
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			t.Errorf("the old process exited with %v, want status 0", p.cmd.ProcessState)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the old process did not exit after the upgrade:\n%s", p.logTail())
	}
	next := adopt(t, readPID(pidFile))
	if next.pid == 0 || next.pid == p.cmd.Process.Pid {
		t.Fatalf("pid file holds %d after the upgrade", next.pid)
	}
	buy(p.base, "u3")
	// The admin listener was handed over too.
	if sale, err := client.New(admin, token).Sale(t.Context(), saleID); err != nil || sale.Remaining != 7 {
		t.Errorf("sale read on the admin listener after the upgrade: %+v, %v; want 7 remaining", sale, err)
	}
	if err := syscall.Kill(next.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-next.exited:
		if st := next.state(); st == nil || !st.Success() {
			t.Errorf("the new process exited with %v after SIGTERM", st)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the new process did not exit after SIGTERM")
	}
}

// TestUpgradeNotHeldBySilentConnection: a connection opened to the API
// that has not sent a request when SIGUSR2 arrives (a browser's
// preconnect, a slow client) must not hold the embedded handover until
// the server's 5 s ReadHeaderTimeout: the new process waits for the data
// directory until the old one is done, and every purchase waits in the
// backlog meanwhile. The silent connection is closed instead (its client
// reconnects, to the new process).
func TestUpgradeNotHeldBySilentConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-silent-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile)
	plain := createSale(t, p.base, token, 100, 1)
	silent, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(100 * time.Millisecond) // accepted
	upgradeUntilHandover(t, p, pidFile)
	status, took := purchaseDuringUpgrade(t, p.base, plain)
	if status >= 500 {
		t.Errorf("purchase during the upgrade: %d", status)
	}
	if took > 2*time.Second {
		t.Errorf("a purchase waited %v during the upgrade: one silent connection held the old process's handover", took.Round(time.Millisecond))
	}
}

// purchaseDuringUpgrade buys one unit of saleID at base (buyer b1, key
// k1) and returns the answer's status and how long it took.
func purchaseDuringUpgrade(t *testing.T, base, saleID string) (int, time.Duration) {
	t.Helper()
	began := time.Now()
	req, _ := http.NewRequest("POST", base+"/v1/sales/"+saleID+"/purchases", nil)
	req.Header.Set("X-User-ID", "b1")
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	took := time.Since(began)
	if err != nil {
		t.Fatalf("purchase: %v after %v", err, took)
	}
	resp.Body.Close()
	t.Logf("purchase answered %d after %v", resp.StatusCode, took.Round(time.Millisecond))
	return resp.StatusCode, took
}

// upgradeUntilHandover sends p SIGUSR2, adopts the new process once the
// pid file names it, and returns once the old one has closed its
// listeners: the next connection waits for the new process.
func upgradeUntilHandover(t *testing.T, p *proc, pidFile string) (next int) {
	t.Helper()
	old := p.cmd.Process.Pid
	sent := time.Now()
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if next = readPID(pidFile); next != 0 && next != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pid file still names %d a minute after SIGUSR2", old)
		}
	}
	adopt(t, next)
	t.Logf("new process %d ready to take over %v after SIGUSR2", next, time.Since(sent).Round(time.Millisecond))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if log, _ := os.ReadFile(p.logPath); strings.Contains(string(log), "a new process took over the listeners") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old process never began its handover")
		}
	}
	time.Sleep(100 * time.Millisecond)
	return next
}

// TestUpgradeWithKeyServerDownKeepsServing: an embedded server that takes
// its buyers' keys from --jwks-url is upgraded (SIGUSR2) while the key
// server does not answer (an identity provider's blip). The new process
// cannot start without the keys, as any start cannot; docs/operations.md:
// "If the upgrade fails before the new process is ready (the binary does
// not start, refuses its flags, …), the old process logs `upgrade failed;
// this process serves on` and keeps serving." The shop must not go dark:
// the new process must find out before it tells the old one to go.
func TestUpgradeWithKeyServerDownKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	_, doc := ecKeySet(t)
	var down atomic.Bool
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(doc)
	}))
	defer keys.Close()
	dataDir, token := t.TempDir(), "upgrade-jwks-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile, "--jwks-url", keys.URL)
	saleID := createSale(t, p.base, token, 10, 1)

	down.Store(true)
	upgradeFailsServingOn(t, p, saleID, "while the key server was down")
}

// upgradeFailsServingOn sends p SIGUSR2 for an upgrade the new process
// cannot complete (why says what stops it), and checks that p, the old
// process, serves the sale on and logs the failed upgrade
// (docs/operations.md: "a failed upgrade ... leaves this process
// serving"), rather than drain and exit with nothing serving after it.
func upgradeFailsServingOn(t *testing.T, p *proc, saleID, why string) {
	t.Helper()
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	// Whatever happens to the upgrade, some process must serve the sale.
	time.Sleep(3 * time.Second)
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(p.base + "/v1/sales/" + saleID)
	if err != nil {
		exited := "the old process still runs"
		select {
		case <-p.exited:
			exited = "the old process exited (" + p.cmd.ProcessState.String() + ") after it was told to go"
		default:
		}
		t.Fatalf("after an upgrade %s, nothing serves the sale: %v; %s; want the upgrade refused before the old "+
			"process is told to go, and the old process serving on\n%s", why, err, exited, p.logTail())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("sale read after the upgrade %s: %d, want 200", why, resp.StatusCode)
	}
	select {
	case <-p.exited:
		t.Errorf("the old process exited (%v) although the upgrade %s failed", p.cmd.ProcessState, why)
	default:
	}
	if !strings.Contains(p.logTail(), "upgrade failed; this process serves on") {
		t.Errorf("no failed upgrade in the old process's log:\n%s", p.logTail())
	}
}

// TestSIGTERMDuringEmbeddedHandover: `systemctl stop` right after an
// upgrade (SIGUSR2) of an embedded server signals the process the pid
// file names, the new one, while it still waits for the old one to drain
// and release the data directory. SIGTERM is a clean stop: exit 0
// (docs/architecture.md, Shutdown). And the new process must not exit
// before the old one is done: the shipped unit (KillMode=mixed) kills
// whatever is left in the service once its main process exits, which
// would cut the old process's drain, its requests in flight unanswered.
func TestSIGTERMDuringEmbeddedHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-sigterm-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile) // --shutdown-timeout 10s
	saleID := createSale(t, p.base, token, 10, 1)

	// A request on its way to the old process keeps its drain going
	// (a slow client: its header arrives in two parts).
	conn := startPurchase(t, p.base, saleID)
	time.Sleep(100 * time.Millisecond)

	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	nextPID := 0
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if nextPID = readPID(pidFile); nextPID != 0 && nextPID != p.cmd.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pid file still names the old process a minute after SIGUSR2")
		}
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.logTail(), "a new process took over the listeners"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the old process never began its handover")
		}
	}
	time.Sleep(100 * time.Millisecond)
	if err := syscall.Kill(nextPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The slow client's request completes meanwhile.
	time.Sleep(500 * time.Millisecond)
	_, _ = conn.Write([]byte("Idempotency-Key: k1\r\nContent-Length: 0\r\n\r\n"))

	// The new process is the old one's child until the old one exits:
	// watch both by pid.
	alive := func(pid int) bool { return syscall.Kill(pid, 0) == nil }
	var newGoneFirst bool
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		oldGone := false
		select {
		case <-p.exited:
			oldGone = true
		default:
		}
		if !alive(nextPID) && !oldGone {
			newGoneFirst = true
			break
		}
		if oldGone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("neither process exited 40s after SIGTERM")
		}
	}
	if newGoneFirst {
		t.Errorf("the new process (the service's main pid) exited while the old one still drained: a supervisor that kills the rest of the service then cuts the drain")
	}
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			t.Errorf("the old process exited with %v", p.cmd.ProcessState)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the old process did not exit")
	}
	next := adopt(t, nextPID) // the test's child now, if it still runs
	select {
	case <-next.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the new process did not exit after SIGTERM")
	}
	if st := next.state(); st != nil && !st.Success() {
		t.Errorf("the new process exited with %v after SIGTERM, want status 0", st)
	}
	if log := p.logTail(); strings.Contains(log, "surge cannot start") {
		t.Errorf("SIGTERM during the handover made the new process fail its start (exit 1) instead of stopping cleanly:\n%s", log)
	}
}

// TestSIGTERMClusterNewProcessBeforeServing: in cluster mode the new
// process of an upgrade tells the old one to go only once it serves
// (docs/operations.md, step 2). A SIGTERM to it before then (its store
// still opening: here PostgreSQL's migration table is locked) is a stop
// of a process nobody depends on: the old one serves on and was never told
// to go. It must stop at once, not wait for an old process that will not
// exit (--shutdown-timeout + 30 s).
func TestSIGTERMClusterNewProcessBeforeServing(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	args := clusterArgs(t)
	ns := ""
	for _, a := range args {
		if i := strings.Index(a, "search_path="); i >= 0 {
			ns = a[i+len("search_path="):]
		}
	}
	dataDir, token := t.TempDir(), "cluster-sigterm-admin-token"
	pidFile := t.TempDir() + "/surge.pid"
	p := startProc(t, dataDir, token, append(args, "--pid-file", pidFile)...) // --shutdown-timeout 10s
	createSale(t, p.base, token, 10, 1)

	// The new process's store will wait for the schema's migration table.
	conn := servicetest.Conn(t, ns)
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if _, err := tx.Exec(t.Context(), "LOCK TABLE surge_schema_version IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	newPID := 0
	for deadline := time.Now().Add(10 * time.Second); newPID == 0; time.Sleep(10 * time.Millisecond) {
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/task")
		for _, task := range tasks {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/task/" + task.Name() + "/children")
			if f := strings.Fields(string(b)); len(f) > 0 {
				newPID, _ = strconv.Atoi(f[0])
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no new process after SIGUSR2")
		}
	}
	time.Sleep(1500 * time.Millisecond) // it waits for the table now
	began := time.Now()
	if err := syscall.Kill(newPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// A zombie of the old process counts as stopped: the old process's
	// tableflip reaps it.
	for alive(newPID) {
		if time.Since(began) > 8*time.Second {
			t.Fatalf("the new process (pid %d), stopped with SIGTERM before it served, still runs %v later "+
				"(waiting for an old process that was never told to go)\n%s", newPID, time.Since(began).Round(time.Second), p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the new process stopped %v after SIGTERM", time.Since(began).Round(time.Millisecond))
	select {
	case <-p.exited:
		t.Fatalf("the old process exited")
	default:
	}
}

// TestSIGTERMDuringKeyFetchIsAStop: serve now treats SIGINT/SIGTERM
// before it serves as a stop, not a failed start (exit 0, "stopped
// before serving"). The fetch of --jwks-url's keys, which now runs first
// of all, is part of that start: a SIGTERM while the key server is slow
// to answer must be a stop too, not a usage error (exit 2) that a
// supervisor reports as a failure.
func TestSIGTERMDuringKeyFetchIsAStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	release := make(chan struct{})
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer keys.Close()
	defer close(release)
	var out bytes.Buffer
	cmd := serveCmd(surgeBinary(t), t.TempDir(), "jwks-stop-admin-token", freeAddr(t), "--jwks-url", keys.URL)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(time.Second) // fetching the keys
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("SIGTERM while the keys were being fetched: %v (want exit 0, a stop)\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("surge did not stop\n%s", out.String())
	}
}
