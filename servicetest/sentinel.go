package servicetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisSentinel is a Redis master with one replica, watched by one
// Sentinel, of a test's own on loopback: real redis-server processes,
// stopped when the test ends. No persistence. The replica replicates
// through Link, a Proxy a test may Pause to have it fall behind its
// master, as an asynchronous replica does.
type RedisSentinel struct {
	t testing.TB
	// Master names the master to the Sentinel (master_name in URL).
	Master string
	// Link carries the replica's replication from the master.
	Link                      *Proxy
	master, replica, sentinel *redisProc
}

type redisProc struct {
	port   int
	cmd    *exec.Cmd
	exited <-chan struct{}
	out    *Log
}

func (p *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// StartRedisSentinel starts the master, its replica and the Sentinel, and
// waits until the replica has synced and the Sentinel knows of it.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (scripts/services.sh installs it): %v", tool, err)
		}
	}
	s := &RedisSentinel{t: t, Master: "surge"}
	base := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}
	s.master = startRedis(t, func(port int, dir string) []string {
		return append([]string{"--port", strconv.Itoa(port), "--dir", dir}, base...)
	})
	s.Link = NewProxy(t, s.master.addr())
	linkPort := strings.TrimPrefix(s.Link.Addr, "127.0.0.1:")
	s.replica = startRedis(t, func(port int, dir string) []string {
		// The master reports the replica at the port it announces, which
		// the Sentinel then connects to directly.
		return append([]string{"--port", strconv.Itoa(port), "--dir", dir, "--replicaof", "127.0.0.1", linkPort,
			"--replica-announce-ip", "127.0.0.1"}, base...)
	})
	s.sentinel = startRedis(t, func(port int, dir string) []string {
		conf := filepath.Join(dir, "sentinel.conf")
		// The replica replicates from the Link, an address that is not
		// the master's: once the Sentinel has known it for failover-timeout
		// it re-points it at the master itself (+fix-slave-config), which
		// bypasses a paused Link and, killing the Sentinel's own links to
		// the replica, aborts a failover begun then ("no good slave"). Ten
		// minutes outlasts any test; the failover itself takes no longer
		// for it (one replica, nothing to reconfigure after the promotion).
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 600000\n", port, dir, s.Master, s.master.port, s.Master, s.Master)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{conf, "--sentinel"}
	})
	s.wait(30*time.Second, "the replica synced and known to the Sentinel", func() bool {
		info := s.cli(s.replica, "info", "replication")
		return strings.Contains(info, "master_link_status:up") &&
			strings.Contains(s.cli(s.sentinel, "sentinel", "replicas", s.Master), strconv.Itoa(s.replica.port))
	})
	return s
}

// URL is the Sentinel's address in the form surge serve takes.
func (s *RedisSentinel) URL() string {
	return "redis://" + s.sentinel.addr() + "/0?master_name=" + s.Master
}

// MasterAddr is the address of the master, as the Sentinel names it.
func (s *RedisSentinel) MasterAddr() string {
	f := strings.Fields(s.cli(s.sentinel, "sentinel", "get-master-addr-by-name", s.Master))
	if len(f) != 2 {
		return ""
	}
	return f[0] + ":" + f[1]
}

// Failover has the Sentinel promote the replica now, whatever it has
// received, and waits until it names it the master.
func (s *RedisSentinel) Failover() {
	s.t.Helper()
	// Refused (NOGOODSLAVE) until the Sentinel has read the replica's
	// state lately: asked again until it starts.
	s.wait(30*time.Second, "a failover started", func() bool {
		return strings.Contains(s.cli(s.sentinel, "sentinel", "failover", s.Master), "OK")
	})
	s.wait(30*time.Second, "the Sentinel names the replica the master", func() bool {
		return s.MasterAddr() == s.replica.addr() &&
			strings.Contains(s.cli(s.replica, "info", "replication"), "role:master")
	})
}

// cli runs redis-cli against p and returns its output ("" on failure).
func (s *RedisSentinel) cli(p *redisProc, args ...string) string {
	out, err := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(p.port)}, args...)...).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func (s *RedisSentinel) wait(d time.Duration, what string, ok func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			s.t.Fatalf("Redis Sentinel: not %s after %v (master: %s; sentinel: %s)", what, d,
				lastLines(s.master.out.String(), 3), lastLines(s.sentinel.out.String(), 3))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startRedis runs a redis-server with the arguments args gives for a free
// port and a directory of its own, waits until it answers, and stops it
// when the test ends.
func startRedis(t testing.TB, args func(port int, dir string) []string) *redisProc {
	t.Helper()
	var last error
	for range 5 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		p := &redisProc{port: port, out: &Log{}}
		p.cmd = exec.Command("redis-server", args(port, t.TempDir())...)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(exited) }()
		p.exited = exited
		if last = p.ready(); last == nil {
			t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.exited })
			return p
		}
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	t.Fatal(last)
	return nil
}

// ready waits up to 10 s for p to answer PING.
func (p *redisProc) ready() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if reply, err := exec.Command("redis-cli", "-p", strconv.Itoa(p.port), "ping").Output(); err == nil && strings.TrimSpace(string(reply)) == "PONG" {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("redis-server on port %d exited: %s", p.port, lastLines(p.out.String(), 3))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on port %d did not come up in 10 s: %s", p.port, lastLines(p.out.String(), 3))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
