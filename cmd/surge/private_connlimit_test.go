package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPrivateListenerConnectionsLeaveTheAPIServing: the API's listener
// bounds its connections (in total and per address) so that one client
// cannot take every file descriptor of the process; the private listeners
// (--debug-addr, --admin-addr) had no bound at all. One address holding
// connections open there (one request each, then idle keep-alive: 120 s)
// took every descriptor the process had: the API then accepted nothing
// (Accept failing with EMFILE), /healthz included, and no other operator
// reached the private listener either. The node runs here under an
// open-file limit of 256; the client stops once the process holds all of
// them (/proc/PID/fd), so that it never waits for an accept that cannot
// be made.
func TestPrivateListenerConnectionsLeaveTheAPIServing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const token, nofile, tries = "private-connlimit-admin-token", 256, 400
	bin := surgeBinary(t)
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not found")
	}
	for _, flag := range []string{"--debug-addr", "--admin-addr"} {
		t.Run(flag, func(t *testing.T) {
			private := freeAddr(t)
			p := startCmd(t, func(addr string) *exec.Cmd {
				cmd := serveCmd(bin, t.TempDir(), token, addr, flag, private, "--log-level", "error")
				cmd.Args = append([]string{"prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile)}, cmd.Args...)
				cmd.Path = prlimit
				return cmd
			})
			pid := p.cmd.Process.Pid
			open := func() int {
				fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
				if err != nil {
					t.Fatal(err)
				}
				return len(fds)
			}
			// One address (127.0.0.1) opens connection after connection,
			// each with a request (refused 401: no token) it reads the
			// answer of, and keeps those the server keeps.
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			refused, fds := 0, 0
			for range tries {
				if fds = open(); fds >= nofile {
					break // the process's descriptors are spent
				}
				status, c, err := privateRequest(private, nil)
				if err != nil {
					t.Fatalf("connection %d to the %s listener (process holding %d descriptors): %v", len(held)+refused+1, flag, fds, err)
				}
				if c != nil {
					held = append(held, c)
				} else if status == http.StatusTooManyRequests {
					refused++
				} else {
					t.Fatalf("connection %d to the %s listener: %d, want 401 (kept) or 429 (refused)", len(held)+refused+1, flag, status)
				}
			}
			t.Logf("%s: one address holds %d connections, %d refused; the process holds %d of its %d descriptors", flag, len(held), refused, fds, nofile)
			// A connection of its own: the pool's, opened before, would
			// need no accept.
			hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := hc.Get(p.base + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("GET /healthz on the API's listener while one address holds %d connections to the %s listener (the process at %d of %d descriptors): %v; want 200",
					len(held), flag, fds, nofile, err)
			}
			// Another address still reaches the private listener.
			status, c, err := privateRequest(private, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})
			if c != nil {
				c.Close()
			}
			if err != nil || status != http.StatusUnauthorized {
				t.Errorf("another address (127.0.0.2) to the %s listener while 127.0.0.1 holds %d connections: %d %v; want 401",
					flag, len(held), status, err)
			}
		})
	}
}

// privateRequest sends GET /debug/stats without a token on a new
// connection to addr (from local, if set) and reads the answer; it returns
// the connection if the server keeps it open.
func privateRequest(addr string, local net.Addr) (int, net.Conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: local}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /debug/stats HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		c.Close()
		return 0, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return 0, nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		c.Close()
		return resp.StatusCode, nil, nil
	}
	_ = c.SetDeadline(time.Time{})
	return resp.StatusCode, c, nil
}

// TestPrivateListenerRefusalsAreCounted: connections the API's listener
// refuses over its caps are counted (surge_connections_refused_total),
// but those the private listeners (--debug-addr, --admin-addr) refused
// over theirs were counted nowhere: an operator saw neither a client
// hammering them nor his own tools turned away. Under an open-file limit
// of 256 each private listener takes 4 connections per address; one
// address opening 10 to each gets 6 refused there, which /metrics counts
// per listener.
func TestPrivateListenerRefusalsAreCounted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const token, nofile, tries = "private-refusals-admin-token", 256, 10
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not found")
	}
	bin := surgeBinary(t)
	admin, debug := freeAddr(t), freeAddr(t)
	startCmd(t, func(addr string) *exec.Cmd {
		cmd := serveCmd(bin, t.TempDir(), token, addr, "--admin-addr", admin, "--debug-addr", debug, "--log-level", "error")
		cmd.Args = append([]string{"prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile)}, cmd.Args...)
		cmd.Path = prlimit
		return cmd
	})
	refusedAt := map[string]int{}
	for name, addr := range map[string]string{"admin": admin, "debug": debug} {
		var held []net.Conn
		for range tries {
			status, c, err := privateRequest(addr, nil)
			if err != nil {
				t.Fatalf("connection to the %s listener: %v", name, err)
			}
			if c != nil {
				held = append(held, c)
			} else if status == http.StatusTooManyRequests {
				refusedAt[name]++
			}
		}
		for _, c := range held {
			c.Close()
		}
		if refusedAt[name] == 0 {
			t.Fatalf("one address opening %d connections to the %s listener: none refused (held %d); want some over the per-address cap",
				tries, name, len(held))
		}
	}
	// From another address: 127.0.0.1 may still be at the admin
	// listener's cap until the server sees its connections closed.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	req, _ := http.NewRequest(http.MethodGet, "http://"+admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on the admin listener: %d", resp.StatusCode)
	}
	for name, n := range refusedAt {
		line := fmt.Sprintf("surge_private_connections_refused_total{listener=%q} %d", name, n)
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("the %s listener refused %d connections; /metrics lacks %q (its connection lines:\n%s)",
				name, n, line, grepLines(string(body), "connections_refused"))
		}
	}
}
