package servicetest

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections to a target until Cut, which closes its
// listener and every connection: the dependency behind it is gone until
// Restore listens again on the same address. Pause stalls it instead:
// every connection stays open and no byte gets through until Resume;
// Blackhole drops the bytes; Throttle slows the answers down.
type Proxy struct {
	t      testing.TB
	Addr   string // where clients connect
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	gate  chan struct{} // closed while bytes flow
	// dropping: Blackhole's; dropped counts the bytes it swallowed.
	dropping bool
	dropped  int64
	// stranded: Strand's, the connections whose bytes it drops for good.
	stranded map[net.Conn]bool
	// rate: Throttle's, bytes a second from the target to each client (0:
	// as fast as they come).
	rate int64
}

// NewProxy forwards a free loopback address to target; it is cut when the
// test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, Addr: ln.Addr().String(), target: target, conns: make(map[net.Conn]struct{}), gate: make(chan struct{}),
		stranded: make(map[net.Conn]bool)}
	close(p.gate)
	p.serve(ln)
	t.Cleanup(p.Cut)
	return p
}

// RedisProxy is a Proxy to the test Redis; its URL is "redis://"+Addr+"/0".
func RedisProxy(t testing.TB) *Proxy {
	t.Helper()
	return NewProxy(t, strings.TrimPrefix(strings.TrimSuffix(RedisURL(), "/0"), "redis://"))
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *Proxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { p.copy(up, c, false); up.Close() }()
	p.copy(c, up, true)
	c.Close()
}

// copy forwards src to dst, each read held while the proxy is paused; down
// is the target's answers, which Throttle paces.
func (p *Proxy) copy(dst, src net.Conn, down bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate, drop, rate := p.gate, p.dropping || p.stranded[src], p.rate
			if drop {
				p.dropped += int64(n)
			}
			p.mu.Unlock()
			if drop {
				continue
			}
			<-gate
			if !down {
				rate = 0
			}
			if err := paced(dst, buf[:n], rate); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// paced writes b to dst at rate bytes a second, in small pieces (0: at
// once).
func paced(dst net.Conn, b []byte, rate int64) error {
	const piece = 4 << 10
	for rate > 0 && len(b) > piece {
		time.Sleep(time.Duration(piece) * time.Second / time.Duration(rate))
		if _, err := dst.Write(b[:piece]); err != nil {
			return err
		}
		b = b[piece:]
	}
	if rate > 0 {
		time.Sleep(time.Duration(len(b)) * time.Second / time.Duration(rate))
	}
	_, err := dst.Write(b)
	return err
}

// Throttle passes at most rate bytes a second from the target to each
// client, on the open connections and new ones (0: no bound): a
// dependency that answers, slowly (a congested link, a large result).
func (p *Proxy) Throttle(rate int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = rate
}

// Pause holds every byte, both ways, on the open connections and new
// ones, and closes nothing: a dependency that stalls rather than goes.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default: // paused already
	}
}

// Resume lets the held bytes and every later one through (and ends a
// Blackhole).
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropping = false
	p.resume()
}

// Blackhole drops every byte read from here on, both ways, and closes
// nothing: a network path that loses everything while both ends still
// believe in the connection. Unlike Pause, no byte is kept: Dropped counts
// them, so a test sees that a client sent something into the void.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropping = true
}

// Strand drops, for good, every byte read from here on of the connections
// open now, both ways, and closes nothing; new connections carry on: each
// open connection went half-open (a NAT or firewall that forgot it, a
// balancer whose backend vanished) while the network itself still works.
// Resume does not end it.
func (p *Proxy) Strand() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		p.stranded[c] = true
	}
}

// Dropped is how many bytes Blackhole has dropped, both ways.
func (p *Proxy) Dropped() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

func (p *Proxy) resume() {
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// Cut closes the listener and every connection.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	clear(p.stranded)
	p.resume() // held bytes meet closed connections, and their copies end
}

// Refuse closes the listener only: a new connection (a client's cancel
// request too) is refused, the open ones carry on, until Restore.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
}

// Restore listens again on the same address.
func (p *Proxy) Restore() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("proxy: listen again on %s: %v", p.Addr, err)
}
