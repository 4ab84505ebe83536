package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"

	surgehttp "github.com/surgehq/surge/http"
)

// Zero-downtime upgrades (docs/operations.md): on SIGUSR2 the running
// process starts the binary at its own path again and hands it its
// listening sockets (cloudflare/tableflip). The sockets never close, so a
// client connecting meanwhile waits in the kernel's backlog instead of
// being refused. The order of the handover:
//
//  1. the new process takes the inherited listeners, without accepting;
//  2. it tells the old one to go (handover.ready): at once in embedded
//     mode, whose data directory only one process may hold; once it
//     serves in cluster mode, which has no such lock;
//  3. the old one stops accepting, answers what is in flight, flushes its
//     batches and closes the store, releasing the data directory;
//  4. the new one, polling the lock meanwhile (sqlite.Options.LockWait),
//     opens the store and only then accepts.
//
// Between 3 and 4 requests wait; none is refused or answered 5xx.

// upgradesKey marks a context whose serve owns its process.
type upgradesKey struct{}

// withUpgrades marks ctx as the surge process's own: serve may then hand
// its sockets to a new process on SIGUSR2. Tests that run serve inside
// their own process leave it unset: tableflip allows one upgrader per
// process, and the test's process is not serve's to replace.
func withUpgrades(ctx context.Context) context.Context {
	return context.WithValue(ctx, upgradesKey{}, true)
}

// lockWaitMargin is how much longer than --shutdown-timeout the new
// process of an upgrade waits for the old one's data directory: the old
// one drains for at most that long, then closes the engine and the store.
const lockWaitMargin = 30 * time.Second

// handover is serve's side of upgrades. A nil *handover (serve run by a
// test, the demo) listens plainly and never upgrades.
type handover struct {
	upg     *tableflip.Upgrader
	log     *slog.Logger
	pidFile string
	sig     chan os.Signal

	readyOnce sync.Once
	readyErr  error
	told      atomic.Bool            // ready told the old process to go
	token     atomic.Pointer[string] // see handToken
	// parent is the old process of the upgrade that started this one,
	// read at start: once it has exited, os.Getppid names whoever
	// adopted this process.
	parent int

	// A stop of the service reaches the process a supervisor signals,
	// the old one of an upgrade until it exits (systemd's main pid), at
	// any point of the handover. stopW tells this process's new one, by
	// one byte, that the service stops (it stops too); aliveR reads EOF
	// once that new process has exited, which a stopping old process
	// waits for: a supervisor takes its exit for the service's end and
	// kills what is left (the shipped unit's KillMode=mixed). Both ends
	// the new process holds are passed to it with the listeners.
	stopW, aliveR *os.File
	aliveW        *os.File      // the old process's aliveR reads EOF once this closes (at exit)
	parentStop    chan struct{} // closed when the old process stops the service
	stopByte      sync.Once

	mu        sync.Mutex
	stopping  bool // stop was called: the service stops
	inFlight  bool // Upgrade runs: tableflip's own stop would SIGKILL the new process
	handed    bool // an Upgrade succeeded: a new process took over
	tried     bool // an Upgrade was started
	childGone bool // waitChild saw the new process this one stopped exit
}

// Names of the files passed to the new process of an upgrade, beside
// the listeners.
const (
	stopFileName  = "surge-stop"
	aliveFileName = "surge-alive"
)

// newHandover takes over SIGUSR2 when ctx is the process's own
// (withUpgrades); otherwise it returns nil. stopAsked is called when the
// old process of the upgrade that started this one stops the service.
func newHandover(ctx context.Context, pidFile string, log *slog.Logger, stopAsked func()) (*handover, error) {
	if ctx.Value(upgradesKey{}) == nil {
		return nil, nil
	}
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile})
	if err != nil {
		return nil, fmt.Errorf("serve: upgrades: %w", err)
	}
	h := &handover{upg: upg, log: log, pidFile: pidFile, sig: make(chan os.Signal, 1), parentStop: make(chan struct{})}
	// Before anything else: SIGUSR2's default action kills the process.
	signal.Notify(h.sig, syscall.SIGUSR2)
	if upg.HasParent() {
		// The old process waits for this one to be ready: it is the
		// parent still.
		h.parent = os.Getppid()
		log.Info("upgrade: this process takes over from its parent", "pid", os.Getpid(), "parent", h.parent)
		// Taken before Ready, which closes what was passed and not taken.
		// An old process of a build without them passes neither.
		if f, err := upg.Fds.File(stopFileName); err == nil && f != nil {
			go h.watchParentStop(f, stopAsked)
		}
		if f, err := upg.Fds.File(aliveFileName); err == nil && f != nil {
			h.aliveW = f // held until this process exits
		}
	}
	// This process's own pair, for its next upgrade's new process (the
	// same names: they replace the ones taken above, which that new
	// process must not get).
	stopR, stopW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("serve: upgrades: %w", err)
	}
	aliveR, aliveW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("serve: upgrades: %w", err)
	}
	err = errors.Join(upg.Fds.AddFile(stopFileName, stopR), upg.Fds.AddFile(aliveFileName, aliveW))
	// AddFile keeps copies of its own.
	stopR.Close()
	aliveW.Close()
	if err != nil {
		return nil, fmt.Errorf("serve: upgrades: %w", err)
	}
	h.stopW, h.aliveR = stopW, aliveR
	return h, nil
}

// watchParentStop reads the byte by which the old process of the upgrade
// that started this one says it stops the service (SIGINT or SIGTERM): this
// process then stops too (stopAsked) and does not wait for it to exit
// (waitParent): it waits for this one. EOF means it exited, nothing more.
func (h *handover) watchParentStop(f *os.File, stopAsked func()) {
	defer f.Close()
	var b [1]byte
	if n, _ := f.Read(b[:]); n == 1 {
		h.log.Info("upgrade: the old process is stopping the service (SIGINT or SIGTERM); this process stops too")
		close(h.parentStop)
		stopAsked()
	}
}

// upgrading says whether this process is the new one of an upgrade.
func (h *handover) upgrading() bool { return h != nil && h.upg.HasParent() }

// oldPID is the old process of the upgrade that started this one; 0 if
// this process is no upgrade's.
func (h *handover) oldPID() int {
	if !h.upgrading() {
		return 0
	}
	return h.parent
}

// lockWait is how long the store waits for the data directory: in an
// upgrade, as long as the old process may take to drain and close.
func (h *handover) lockWait(c serveConfig) time.Duration {
	if !h.upgrading() {
		return 0
	}
	return c.shutdownTimeout + lockWaitMargin
}

// listen returns a listener on addr, the setting of flag: the old
// process's in an upgrade, a new one otherwise. Its error names the flag:
// with three listeners set, "address already in use" alone left the
// operator to guess which.
func (h *handover) listen(flag, addr string) (net.Listener, error) {
	var (
		ln  net.Listener
		err error
	)
	if h == nil {
		ln, err = net.Listen("tcp", addr)
	} else {
		ln, err = h.upg.Listen("tcp", addr)
	}
	// tableflip formats the errno into its text (%s, not %w).
	if err != nil && (errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), syscall.EADDRINUSE.Error())) {
		// The first thing a second `surge serve` on one machine meets.
		return nil, fmt.Errorf("listen on %s (--%s): %w: another process listens on %s (another surge serve?); stop it, or choose another --%s (port 0 picks a free one)",
			addr, flag, err, addr, flag)
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s (--%s): %w", addr, flag, err)
	}
	return &closeOnce{Listener: ln}, nil
}

// ready writes the pid file and, in an upgrade, tells the old process to
// stop accepting, drain and exit. Listeners not taken by then (a flag
// dropped in the new version) are closed. Only the first call acts.
func (h *handover) ready() error {
	if h == nil {
		return nil
	}
	h.readyOnce.Do(func() {
		if h.readyErr = h.upg.Ready(); h.readyErr != nil {
			h.readyErr = fmt.Errorf("upgrade: %w", h.readyErr)
		} else {
			h.told.Store(true)
		}
	})
	return h.readyErr
}

// watch upgrades on each SIGUSR2 until the process has handed over or
// ctx ends. A failed upgrade (the new binary does not start, exits early,
// or is not ready within a minute) leaves this process serving. oldWait
// bounds the wait for the old process of the upgrade that started this
// one, which tableflip requires gone before the next upgrade.
func (h *handover) watch(ctx context.Context, oldWait time.Duration) {
	if h == nil {
		return
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-h.upg.Exit():
				return
			case <-h.sig:
			}
			if ctx.Err() != nil {
				return // the signal came with a stop
			}
			if os.Getpid() == 1 {
				// PID 1 of its PID namespace (a container's main process):
				// its exit after the handover ends the namespace, and the
				// kernel kills the new process with it, every connection cut.
				h.log.Error("SIGUSR2: upgrade refused: this process is PID 1 (a container's main process), whose exit would kill the new process with it; this process serves on: replace the container instead")
				continue
			}
			if err := h.awaitOld(ctx, oldWait); err != nil {
				if ctx.Err() != nil {
					return
				}
				h.log.Error("upgrade failed; this process serves on", "err", err)
				continue
			}
			exe, _ := os.Executable()
			h.mu.Lock()
			if h.stopping {
				h.mu.Unlock()
				return // the signal came with a stop
			}
			h.inFlight, h.tried = true, true
			h.mu.Unlock()
			h.log.Info("SIGUSR2: upgrading: starting the binary again", "binary", exe)
			if tok := h.token.Load(); tok != nil && *tok != "" {
				_ = os.Setenv(upgradeTokenEnv, *tok)
			}
			err := h.upgrade()
			_ = os.Unsetenv(upgradeTokenEnv)
			h.mu.Lock()
			h.inFlight, h.handed = false, err == nil
			stopping := h.stopping
			h.mu.Unlock()
			if stopping {
				// A stop came while the new process started (stop left
				// the upgrader to this goroutine): it was told to stop
				// too, and either has (err: tableflip saw it exit) or has
				// taken over and now stops (nil).
				h.upg.Stop()
				if err != nil {
					h.log.Warn("upgrade called off: this process is stopping (SIGINT or SIGTERM), and the new process, not yet ready, stopped too", "err", err)
				} else {
					h.log.Info("upgrade: the new process took over as the service stopped; it stops too")
				}
				return
			}
			if err == nil {
				// Handed over: this process drains and exits. A SIGUSR2
				// that came meanwhile (an operator's second) must not start
				// another upgrade, which tableflip refuses ("already
				// upgraded") and which would be logged as a failure.
				return
			}
			if ctx.Err() != nil {
				// SIGINT/SIGTERM as the new process failed: this process
				// stops rather than serve on (its stop follows).
				h.log.Warn("upgrade called off: this process is stopping (SIGINT or SIGTERM), and the new process, not yet ready, stopped too", "err", err)
				return
			}
			h.log.Error("upgrade failed; this process serves on", "err", err)
		}
	}()
}

// awaitOld waits, at most d, until the old process of the upgrade that
// started this one has exited: a SIGUSR2 while it still drains (a deploy
// script signalling the pid file's process at once) upgrades once it is
// gone, rather than fail with tableflip's "parent hasn't exited". It
// returns ctx's error if ctx ends first.
func (h *handover) awaitOld(ctx context.Context, d time.Duration) error {
	if !h.upgrading() {
		return nil
	}
	quick, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	err := h.upg.WaitForParent(quick)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		return ctx.Err() // gone (err: it misbehaved on its way out), or ctx ended
	}
	h.log.Info("SIGUSR2: the old process of the last upgrade still drains; upgrading once it has exited", "old_pid", os.Getppid())
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := h.upg.WaitForParent(wctx); errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("the old process of the last upgrade has not exited within %v", d)
	}
	return ctx.Err()
}

// upgrade is tableflip's Upgrade, asked again for a moment if it answers
// that the old process has not exited after awaitOld saw it exit:
// tableflip's own loop learns of the exit through a channel of its own,
// which it may not have read yet.
func (h *handover) upgrade() error {
	err := h.upg.Upgrade()
	for i := 0; i < 50 && err != nil && err.Error() == "parent hasn't exited"; i++ {
		time.Sleep(10 * time.Millisecond)
		err = h.upg.Upgrade()
	}
	return err
}

// waitParent waits, at most d, for the old process of the upgrade that
// started this one to exit. A stop must not end this process first: a
// supervisor that follows the pid file (systemd's PIDFile=, with the
// shipped unit's KillMode=mixed) takes this process's exit for the
// service's end and kills what is left of it, the old process amid its
// drain, requests in flight unanswered.
func (h *handover) waitParent(d time.Duration) {
	// An old process never told to go (cluster mode tells it once this
	// one serves) serves on: there is nothing to wait for.
	if !h.upgrading() || !h.told.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	// An old process that stops the service itself waits for this one
	// (waitChild): waiting for it in turn would hold both until the
	// timeout.
	go func() {
		select {
		case <-h.parentStop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := h.upg.WaitForParent(ctx); err != nil && !h.parentStopped() {
		h.log.Warn("upgrade: the old process did not exit in time", "err", err)
	}
}

// parentStopped reports whether the old process of the upgrade that
// started this one has stopped the service.
func (h *handover) parentStopped() bool {
	select {
	case <-h.parentStop:
		return true
	default:
		return false
	}
}

// waitChild waits, at most d, for the new process of an upgrade to exit
// once this process has stopped the service (stop): a supervisor that
// signalled this process, its main pid until it exits, takes its exit for
// the service's end and kills what is left of it (the shipped unit's
// KillMode=mixed), the new process amid its own stop.
func (h *handover) waitChild(d time.Duration) {
	if h == nil {
		return
	}
	deadline := time.Now().Add(d)
	for {
		h.mu.Lock()
		stopping, inFlight, handed := h.stopping, h.inFlight, h.handed
		h.mu.Unlock()
		if !stopping {
			return
		}
		if !inFlight && !handed {
			// No new process, or tableflip saw it exit (one that wrote
			// the pid file had reported ready: it stopped).
			h.mu.Lock()
			h.childGone = h.tried
			h.mu.Unlock()
			return
		}
		if !inFlight {
			break
		}
		if time.Now().After(deadline) {
			h.log.Warn("upgrade: the new process did not stop in time")
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Its copy of aliveW is the last: this process's closed with the
	// upgrade (tableflip closes what it passed on).
	_ = h.aliveR.SetReadDeadline(deadline)
	var b [1]byte
	if _, err := h.aliveR.Read(b[:]); errors.Is(err, os.ErrDeadlineExceeded) {
		h.log.Warn("upgrade: the new process did not stop in time")
		return
	}
	h.mu.Lock()
	h.childGone = true
	h.mu.Unlock()
}

// done is closed once a new process has taken over: this one must then
// finish what is in flight and exit.
func (h *handover) done() <-chan struct{} {
	if h == nil {
		return nil
	}
	return h.upg.Exit()
}

// stop ends upgrades for a process that is shutting down for good; the
// listeners' copies kept for a new process close, so the sockets close
// with the server's own listeners. The pid file stays until removePIDFile.
// The service stops, wherever an upgrade stands: a new process, starting
// or serving, is told to stop too. While one starts, the upgrader is
// stopped once it has (watch): tableflip's own stop SIGKILLs it, which
// may have reported ready already (its pid file written, in cluster mode
// serving).
func (h *handover) stop() {
	if h == nil {
		return
	}
	signal.Stop(h.sig)
	h.stopByte.Do(func() { _, _ = h.stopW.Write([]byte{1}) })
	h.mu.Lock()
	h.stopping = true
	inFlight := h.inFlight
	h.mu.Unlock()
	if !inFlight {
		h.upg.Stop()
	}
}

// removePIDFile removes the pid file if it still names this process (after
// a handover it names the new one). Serve calls it as it returns, once the
// store is closed: whoever waits for the file to go (a script restarting
// surge, a supervisor that watches it) may then start another process on
// the data directory at once. Removed when a stop began, the file was gone
// while the process still drained and held the directory, and a start
// then was refused as "data directory in use".
func (h *handover) removePIDFile() {
	if h == nil || h.pidFile == "" || h.parentStopped() {
		// The old process that stopped the service with this one exits
		// last, holding the data directory until then: it removes the
		// file, which names this process.
		return
	}
	h.mu.Lock()
	childGone := h.childGone
	h.mu.Unlock()
	b, err := os.ReadFile(h.pidFile)
	if err != nil {
		return
	}
	// The file names this process, or the new process of an upgrade that
	// this one stopped along with itself, gone now: only it could have
	// written the file since.
	if pid := strings.TrimSpace(string(b)); pid == strconv.Itoa(os.Getpid()) || childGone {
		if err := os.Remove(h.pidFile); err != nil {
			h.log.Warn("could not remove the pid file", "err", err)
		}
	}
}

// upgradeTokenEnv carries the admin token to the new process of an
// upgrade when no source it reads names one (surge generated it): it is
// set only while the upgrade starts the new process, and no setting reads
// it, so it never outranks the config file, as SURGE_ADMIN_TOKEN would.
const upgradeTokenEnv = "SURGE_UPGRADE_ADMIN_TOKEN"

// handToken sets the admin token an upgrade hands to the new process:
// the token in force when the configuration names none (a generated one,
// or one a file named before a reload dropped it, which the reload
// keeps), "" when it names one, which the new process reads itself.
func (h *handover) handToken(token string) {
	if h == nil {
		return
	}
	h.token.Store(&token)
}

// handedToken is the admin token the new process of an upgrade takes,
// read once from its environment, which it then leaves; "" if none.
func (h *handover) handedToken() string {
	tok, ok := os.LookupEnv(upgradeTokenEnv)
	if !ok {
		return ""
	}
	_ = os.Unsetenv(upgradeTokenEnv)
	if !h.upgrading() {
		return "" // set by someone else: only a parent hands a token over
	}
	return tok
}

// listeners are a node's listening sockets, each closed once whoever
// closes it first (a handover, then http.Server.Shutdown).
type listeners struct {
	api, admin, debug net.Listener
}

// closeOnce is a listener that closes once; later Closes return the
// first one's result instead of "use of closed network connection".
type closeOnce struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *closeOnce) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// listen opens the node's listeners (the old process's in an upgrade),
// before the store opens: their connections wait in the backlog until
// the node serves.
func (c serveConfig) listen() (l listeners, err error) {
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if l.api, err = c.handover.listen("http-addr", c.httpAddr); err != nil {
		return l, err
	}
	if c.adminAddr != "" {
		if l.admin, err = c.handover.listen("admin-addr", c.adminAddr); err != nil {
			return l, err
		}
	}
	if c.debugAddr != "" {
		if l.debug, err = c.handover.listen("debug-addr", c.debugAddr); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (l listeners) close() {
	for _, ln := range []net.Listener{l.api, l.admin, l.debug} {
		if ln != nil {
			ln.Close()
		}
	}
}

// nodeID is the cluster node name of this process: in an upgrade, a set
// --node-id gets the pid appended, since the old process still holds its
// name (and maybe the leader's lease) while both serve.
func (h *handover) nodeID(id string) string {
	if !h.upgrading() || id == "" {
		return id
	}
	return id + "." + strconv.Itoa(os.Getpid())
}

// openConns counts a server's open connections, from its ConnState hook,
// and holds those accepted through listen, so that a handover can close
// the ones that never sent a request (a browser's preconnect, a slow
// client): waiting for them would hold the handover until the server's
// ReadHeaderTimeout. Only a connection's opening and closing take a lock
// or cost an atomic add; a read, one atomic load (its first, a swap).
type openConns struct {
	n atomic.Int64
	// write bounds each write to an HTTP/2 connection: the server's
	// write timeout (0: h2WriteTimeout, the default's). Set before listen.
	write time.Duration

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

// A trackedConn's state: fresh until its first byte is read (served: a
// request is on its way, see Read), or until a handover closes it silent
// (closing).
const (
	connFresh int32 = iota
	connServed
	connClosing
)

// trackedConn is a connection accepted through openConns.listen.
type trackedConn struct {
	net.Conn
	o      *openConns
	opened time.Time
	state  atomic.Int32
	// idle: the server's last word on the connection was StateIdle
	// (HTTP/2 reports it whenever its last stream ends).
	idle atomic.Bool
	// h2: the connection began with HTTP/2's preface (h2c with prior
	// knowledge). head holds its first bytes until there are enough to
	// tell; only the connection's reader touches it.
	h2    atomic.Bool
	head  [len(h2Preface)]byte
	headN int
	// h2Served: net/http's HTTP/2 server serves the connection: it has
	// reported a state of it (it registers a connection, which Shutdown's
	// GOAWAY reaches, before its first report). Until then a connection
	// that sent the preface's first bytes is on its way to that server,
	// and a Shutdown begun meanwhile would never send it a GOAWAY.
	h2Served atomic.Bool
}

// h2Preface is how an HTTP/2 connection with prior knowledge begins (the
// part net/http looks at first).
const h2Preface = "PRI * HTTP/2.0"

// Read marks the connection as no longer silent at its first byte: a
// client whose request is on its way (its header not whole yet) has sent
// one, and closing it would lose it.
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.state.Load() == connFresh {
		c.state.CompareAndSwap(connFresh, connServed)
	}
	if c.headN < len(c.head) && n > 0 {
		c.headN += copy(c.head[c.headN:], b[:n])
		if c.headN == len(c.head) {
			c.h2.Store(string(c.head[:]) == h2Preface)
		}
	}
	return n, err
}

// h2WriteTimeout bounds each write to an HTTP/2 connection: the server's
// write timeout (30 s by default; openConns.write), which HTTP/1.1
// applies to each answer. net/http's
// HTTP/2 server sets no write deadline on the connection (a stream's
// deadline only queues a reset behind the connection's blocked write, and
// its WriteByteTimeout is renewed by each byte a client lets through), so
// a client that opens a large window, asks for more than the socket
// buffers hold and stops reading would keep the connection, every handler
// on it and any event stream's slot for good. A write of at most a frame
// that does not finish in 30 s closes the connection.
const h2WriteTimeout = 30 * time.Second

// Write bounds each write to an HTTP/2 connection by the server's write
// timeout.
func (c *trackedConn) Write(b []byte) (int, error) {
	if c.h2.Load() {
		d := c.o.write
		if d <= 0 {
			d = h2WriteTimeout
		}
		_ = c.Conn.SetWriteDeadline(time.Now().Add(d))
	}
	return c.Conn.Write(b)
}

// CloseWrite passes net/http's half-close on (closeWriteAndWait: the FIN
// that lets a client read an error answer before the connection's reset)
// to a connection that has one, as the admin listener's *net.TCPConn.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *trackedConn) Close() error {
	c.o.mu.Lock()
	delete(c.o.conns, c)
	c.o.mu.Unlock()
	return c.Conn.Close()
}

// trackingListener accepts trackedConns.
type trackingListener struct {
	net.Listener
	o *openConns
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, o: l.o, opened: time.Now()}
	l.o.mu.Lock()
	if l.o.conns == nil {
		l.o.conns = make(map[*trackedConn]struct{})
	}
	l.o.conns[tc] = struct{}{}
	l.o.mu.Unlock()
	return tc, nil
}

// listen wraps the listener a server serves, whose ConnState hook is
// track's.
func (o *openConns) listen(ln net.Listener) net.Listener { return trackingListener{ln, o} }

// track returns the ConnState hook that counts, calling next first (with
// the connection listen's wraps, which next may know the type of).
func (o *openConns) track(next func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	return func(c net.Conn, st http.ConnState) {
		tc, _ := c.(*trackedConn)
		if tc != nil {
			tc.idle.Store(st == http.StateIdle)
			// HTTP/1's reader reports no state for a connection it hands
			// to the HTTP/2 server: after the preface, a report is that
			// server's.
			if tc.h2.Load() && (st == http.StateActive || st == http.StateIdle) {
				tc.h2Served.Store(true)
			}
		}
		if next != nil {
			if tc != nil {
				c = tc.Conn // the type next knows, under the wrapper
			}
			next(c, st)
		}
		switch st {
		case http.StateNew:
			o.n.Add(1)
		case http.StateClosed, http.StateHijacked:
			o.n.Add(-1)
		}
	}
}

// closeSilent closes the connections opened before openedBefore that have
// not sent a request.
func (o *openConns) closeSilent(openedBefore time.Time) {
	var silent []*trackedConn
	o.mu.Lock()
	for c := range o.conns {
		if c.opened.Before(openedBefore) && c.state.CompareAndSwap(connFresh, connClosing) {
			silent = append(silent, c)
		}
	}
	o.mu.Unlock()
	for _, c := range silent {
		c.Close()
	}
}

// allIdleOrH2 reports whether every connection open is idle between
// requests (HTTP/2's, since ending keep-alive closes HTTP/1's) or is
// served by the HTTP/2 server: none silent, no HTTP/1 request in flight,
// and none with its HTTP/2 preface on its way. Shutdown's GOAWAY
// ends an HTTP/2 connection after the calls it names as served, busy or
// not; ending keep-alive alone never ends one that always has a call in
// flight (net/http sends its GOAWAY only when its last stream ends).
func (o *openConns) allIdleOrH2() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for c := range o.conns {
		if !c.idle.Load() && !c.h2Served.Load() {
			return false
		}
	}
	return true
}

// silentGrace is how long a handover lets a connection that has not sent
// a request yet stay open: a request already on its way is served, and a
// client whose connection it closes unused reconnects, to the new process.
const silentGrace = 250 * time.Millisecond

// handOver finishes this process's connections once a new process has
// taken the listeners, without http.Server.Shutdown: Shutdown drops
// without an answer a request it reads after it began, and a client
// does not retry a request on a connection it had just opened. So:
//
//  1. the listeners close: new connections wait in the backlog of the
//     socket, which the new process holds;
//  2. keep-alives end: idle connections close at once (a client that
//     sent a request on one just then retries it on a new connection, as
//     HTTP clients do for requests they may replay: net/http's for GET
//     and for a POST with an Idempotency-Key), and every other
//     connection closes after its next answer, the first request of a
//     connection just opened included;
//  3. connections that have sent no request within silentGrace close;
//  4. once no connection is left, or after timeout, the caller's
//     shutdown finds nothing to cut.
func (s *server) handOver(timeout time.Duration) {
	// The limiters, not their sockets: closing one also ends an Accept
	// waiting for a slot.
	for _, ln := range []*surgehttp.ConnLimiter{s.conns.Load(), s.adminConns} {
		if ln != nil {
			ln.Close()
		}
	}
	servers := []*http.Server{s.http}
	counts := []*openConns{&s.open}
	if s.admin != nil {
		servers, counts = append(servers, s.admin), append(counts, &s.adminOpen)
	}
	for _, hs := range servers {
		hs.SetKeepAlivesEnabled(false)
	}
	// An HTTP/2 connection already idle stays open when keep-alive ends
	// (net/http's issue 26303). Closing it outright would lose a call on
	// its way (a gRPC client sees UNAVAILABLE, not knowing whether it
	// bought); Shutdown's GOAWAY names the last stream served, so a
	// client retries any later one. A busy HTTP/2 connection is never
	// idle and needs that GOAWAY too. Shutdown is started only once every
	// HTTP/1 connection left is idle: it drops an HTTP/1 request it
	// finishes reading after it began.
	gctx, gcancel := context.WithTimeout(context.Background(), timeout)
	defer gcancel()
	goaway := make([]bool, len(servers))
	// Event streams never end by themselves: their clients reconnect, to
	// the new process (retry: in the stream, EventSource's default).
	for _, end := range s.endStreams {
		end()
	}
	deadline := time.Now().Add(timeout)
	silentFrom := time.Now().Add(silentGrace)
	for wait := time.Millisecond; time.Now().Before(deadline); wait = min(2*wait, 50*time.Millisecond) {
		left := int64(0)
		for _, o := range counts {
			left += o.n.Load()
		}
		if left == 0 {
			return
		}
		for i, o := range counts {
			if !goaway[i] && o.n.Load() > 0 && o.allIdleOrH2() {
				goaway[i] = true
				go func(hs *http.Server) { _ = hs.Shutdown(gctx) }(servers[i])
			}
		}
		if now := time.Now(); now.After(silentFrom) {
			for _, o := range counts {
				o.closeSilent(now.Add(-silentGrace))
			}
		}
		time.Sleep(wait)
	}
	s.log.Warn("connections still open after the shutdown timeout; closing them")
}
