package http

import (
	"cmp"
	"container/list"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/surgehq/surge"
)

// ConnLimits bounds the connections a listener holds. Without bounds one
// client holding thousands of idle keep-alive connections exhausts the
// process's file descriptors and every other client is refused.
type ConnLimits struct {
	// Max bounds open connections in total. At the cap a newcomer takes
	// the slot of the longest-idle keep-alive connection, which is closed;
	// with none idle, Accept waits for a connection to close (newcomers
	// wait in the kernel's backlog meanwhile).
	Max int
	// PerAddr bounds open connections per client address (IPv6: per /64,
	// what one host usually holds); a connection over it is answered
	// 429 rate_limited and closed at once. 0: no per-address bound.
	PerAddr int
	// Exempt addresses (trusted proxies, whose connections carry many
	// clients) have no per-address bound; the total still applies.
	Exempt []netip.Prefix
	// PressureIdle is how long a keep-alive connection may stay idle once
	// open connections reach 80 % of Max (default 5 s), instead of the
	// server's IdleTimeout: under pressure idle connections make room.
	PressureIdle time.Duration
}

// DefaultPressureIdle is ConnLimits.PressureIdle's default.
const DefaultPressureIdle = 5 * time.Second

// ConnLimiter is a listener that enforces ConnLimits. Install its
// ConnState as the http.Server's hook: it learns there which connections
// are idle between requests. It is written here rather than taken from
// golang.org/x/net/netutil.LimitListener, which bounds only the total and
// waits in Accept even when idle connections could make room.
type ConnLimiter struct {
	net.Listener
	lim        ConnLimits
	exempt     atomic.Pointer[[]netip.Prefix] // lim.Exempt; SetExempt changes it
	pressureAt int
	now        func() time.Time

	mu     sync.Mutex
	open   int
	byAddr map[netip.Addr]int
	conns  map[*limitedConn]struct{} // open
	idle   list.List                 // *limitedConn, longest idle first; kept only while tracking
	wake   chan struct{}             // a connection closed, or went idle while one waits
	done   chan struct{}
	once   sync.Once

	refusing chan struct{} // a token per refusal in progress (maxRefusing)

	// tracking is set, under mu, while open connections are near the
	// pressure mark (from half of it, until a quarter): only then does a
	// connection's turn between idle and busy, twice per request, take mu
	// to keep the idle list in order. Otherwise it costs two atomic
	// stores, and the list is rebuilt from them when tracking starts.
	tracking atomic.Bool
	// waiting counts Accepts waiting for a slot: a connection going idle
	// signals wake only then.
	waiting atomic.Int32
	idleSeq atomic.Uint64 // orders connections by when they went idle

	refused, reclaimed atomic.Int64
}

// ConnStats are a ConnLimiter's counters.
type ConnStats struct {
	Open      int   `json:"open"`      // connections open now
	Idle      int   `json:"idle"`      // of them, idle between requests
	Refused   int64 `json:"refused"`   // connections closed at accept: over their address's bound
	Reclaimed int64 `json:"reclaimed"` // idle connections closed to make room
}

// LimitConns wraps ln. A Max below 1 means 1.
func LimitConns(ln net.Listener, lim ConnLimits) *ConnLimiter {
	lim.Max = max(lim.Max, 1)
	if lim.PressureIdle <= 0 {
		lim.PressureIdle = DefaultPressureIdle
	}
	l := &ConnLimiter{
		Listener: ln, lim: lim, pressureAt: lim.Max * 4 / 5, now: time.Now,
		byAddr: make(map[netip.Addr]int), conns: make(map[*limitedConn]struct{}),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		refusing: make(chan struct{}, maxRefusing),
	}
	l.SetExempt(lim.Exempt)
	return l
}

// SetExempt changes the addresses exempt from the per-address bound
// (SIGHUP changes the trusted proxies) for the connections accepted next.
func (l *ConnLimiter) SetExempt(exempt []netip.Prefix) { l.exempt.Store(&exempt) }

// limitedConn is an accepted connection; closing it frees its slot.
type limitedConn struct {
	net.Conn
	l       *ConnLimiter
	key     netip.Addr
	counted bool // in l.byAddr
	once    sync.Once

	// Set by the ConnState hook without a lock: the connection's place
	// in l.idleSeq while idle between requests (0 while busy or closed),
	// and when it went idle (UnixNano of l.now).
	idle      atomic.Uint64
	idleSince atomic.Int64

	// Guarded by l.mu.
	closed bool
	elem   *list.Element // in l.idle while idle and l.tracking
}

func (c *limitedConn) Close() error {
	c.once.Do(c.l.release(c))
	return c.Conn.Close()
}

// Accept returns the next connection within the limits.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, exempt := l.key(c.RemoteAddr())
		if !l.admit(key, exempt) {
			l.refused.Add(1)
			select {
			case l.refusing <- struct{}{}:
				go func() {
					defer func() { <-l.refusing }()
					refuse(c)
				}()
			default: // refusals pile up: no answer, and no goroutine
				c.Close()
			}
			continue
		}
		lc := &limitedConn{Conn: c, l: l, key: key, counted: !exempt}
		if err := l.slot(lc); err != nil {
			l.forget(key, exempt)
			c.Close()
			return nil, err
		}
		return lc, nil
	}
}

// key returns the address a connection counts against, and whether it is
// exempt from the per-address bound.
func (l *ConnLimiter) key(a net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.WithZone("").Unmap()
	for _, p := range *l.exempt.Load() {
		if p.Contains(ip) {
			return ip, true
		}
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, l.lim.PerAddr <= 0
}

// admit counts a connection against its address, unless over the bound.
func (l *ConnLimiter) admit(key netip.Addr, exempt bool) bool {
	if exempt {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[key] >= l.lim.PerAddr {
		return false
	}
	l.byAddr[key]++
	return true
}

func (l *ConnLimiter) forget(key netip.Addr, exempt bool) {
	if exempt {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[key]--; l.byAddr[key] <= 0 {
		delete(l.byAddr, key)
	}
}

// slot takes a slot of the total for newcomer c: under pressure it first
// closes the connections idle for PressureIdle, at the cap the longest
// idle one; with none idle it waits for a slot to free.
func (l *ConnLimiter) slot(c *limitedConn) error {
	// Counted before the first look at the idle list, so that a
	// connection going idle after the look sees a waiter and signals.
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	for {
		l.mu.Lock()
		if !l.tracking.Load() && l.open >= l.pressureAt/2 {
			l.track()
		}
		var victims []*limitedConn
		now := l.now().UnixNano()
		for e := l.idle.Front(); e != nil && l.open >= l.pressureAt; e = l.idle.Front() {
			v := e.Value.(*limitedConn)
			atCap := l.open-len(victims) >= l.lim.Max && len(victims) == 0
			if !atCap && time.Duration(now-v.idleSince.Load()) < l.lim.PressureIdle {
				break
			}
			l.idle.Remove(e)
			v.elem = nil
			victims = append(victims, v)
		}
		if len(victims) == 0 && l.open < l.lim.Max {
			l.open++
			l.conns[c] = struct{}{}
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		// A request may be arriving on a victim just now: it fails as it
		// would at the server's idle timeout, and clients retry on a new
		// connection. Closing frees the slot before the loop looks again.
		for _, v := range victims {
			l.reclaimed.Add(1)
			v.Close()
		}
		if len(victims) > 0 {
			continue
		}
		select {
		case <-l.wake:
		case <-l.done:
			return net.ErrClosed
		}
	}
}

// track starts keeping the idle list: from the connections idle now, in
// the order they went idle. The caller holds l.mu. tracking is set before
// the look, so a connection going idle after it is added by its own hook
// (ConnState looks at tracking after marking itself idle).
func (l *ConnLimiter) track() {
	l.tracking.Store(true)
	type idleConn struct {
		c   *limitedConn
		seq uint64
	}
	var idle []idleConn
	for c := range l.conns {
		if seq := c.idle.Load(); seq != 0 {
			idle = append(idle, idleConn{c, seq})
		}
	}
	slices.SortFunc(idle, func(a, b idleConn) int { return cmp.Compare(a.seq, b.seq) })
	for _, ic := range idle {
		if ic.c.elem == nil {
			ic.c.elem = l.idle.PushBack(ic.c)
		}
	}
}

// untrack stops keeping the idle list. The caller holds l.mu.
func (l *ConnLimiter) untrack() {
	l.tracking.Store(false)
	for e := l.idle.Front(); e != nil; e = l.idle.Front() {
		e.Value.(*limitedConn).elem = nil
		l.idle.Remove(e)
	}
}

// release returns the slot of c (once, from Close).
func (l *ConnLimiter) release(c *limitedConn) func() {
	return func() {
		l.mu.Lock()
		c.closed = true
		c.idle.Store(0)
		l.open--
		delete(l.conns, c)
		if l.tracking.Load() && l.open < l.pressureAt/4 {
			l.untrack()
		}
		if c.elem != nil {
			l.idle.Remove(c.elem)
			c.elem = nil
		}
		if c.counted {
			if l.byAddr[c.key]--; l.byAddr[c.key] <= 0 {
				delete(l.byAddr, c.key)
			}
		}
		l.mu.Unlock()
		l.signal()
	}
}

func (l *ConnLimiter) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// ConnState is the http.Server hook that tells idle connections apart.
func (l *ConnLimiter) ConnState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*limitedConn)
	if !ok || c.l != l {
		return
	}
	idle := state == http.StateIdle
	if idle {
		c.idleSince.Store(l.now().UnixNano())
		c.idle.Store(l.idleSeq.Add(1))
	} else {
		c.idle.Store(0)
	}
	// Far from the pressure mark nothing reads the idle list: the stores
	// above are all. Read after them, so that a track starting meanwhile
	// either saw them or is seen here.
	if l.tracking.Load() {
		l.mu.Lock()
		switch {
		case !l.tracking.Load():
		case idle && !c.closed && c.elem == nil && c.idle.Load() != 0:
			c.elem = l.idle.PushBack(c)
		case !idle && c.elem != nil:
			l.idle.Remove(c.elem)
			c.elem = nil
		}
		l.mu.Unlock()
	}
	if idle && l.waiting.Load() > 0 {
		l.signal()
	}
}

// Stats returns the limiter's counters.
func (l *ConnLimiter) Stats() ConnStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	idle := 0
	for c := range l.conns {
		if c.idle.Load() != 0 {
			idle++
		}
	}
	return ConnStats{Open: l.open, Idle: idle, Refused: l.refused.Load(), Reclaimed: l.reclaimed.Load()}
}

// Close stops a waiting Accept too.
func (l *ConnLimiter) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// refusal is the answer to an HTTP/1.1 connection over its address's
// bound, in the API's error shape.
var refusal = []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
	strconv.Itoa(len(refusalBody)) + "\r\n\r\n" + string(refusalBody))

var refusalBody = errorJSON(string(surge.CodeRateLimited), "too many connections from this address; reuse or close the ones it holds")

// Refusals in progress are bounded: each waits up to refuseWait on its
// client, and a flood from one address must not become a goroutine per
// connection.
const (
	maxRefusing = 64
	refuseWait  = 500 * time.Millisecond
)

// refuse answers and closes a connection over its address's bound, in
// the protocol its client speaks: HTTP/2 with prior knowledge (gRPC
// clients on the API's listener) gets its server preface and a GOAWAY
// with ENHANCE_YOUR_CALM and the error as debug data; anything else the
// HTTP/1.1 429. It reads what the client sent before it answers, and
// after, until the client closes or refuseWait passes: a close with
// unread data sends a reset, which can destroy the answer in flight.
func refuse(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseWait))
	if isH2Preface(c) {
		fr := http2.NewFramer(c, nil)
		if fr.WriteSettings() == nil {
			_ = fr.WriteGoAway(0, http2.ErrCodeEnhanceYourCalm, refusalBody)
		}
	} else if _, err := c.Write(refusal); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, c)
}

// isH2Preface reads the start of what the client sent, as far as needed to
// tell the HTTP/2 client preface from anything else (an HTTP/1.1 request
// differs at its first byte).
func isH2Preface(c net.Conn) bool {
	var buf [len(http2.ClientPreface)]byte
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if http2.ClientPreface[:n] != string(buf[:n]) {
			return false
		}
		if err != nil {
			return false
		}
	}
	return true
}
