package outbox_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/surgehq/surge/outbox"
)

// natsWithPassword runs a real nats-server with JetStream (its store in
// dir, kept across restarts) on port, which takes user u with password
// pass; the returned func stops it.
func natsWithPassword(t *testing.T, port int, dir, pass string) (stop func()) {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatalf("nats-server (scripts/services.sh installs it): %v", err)
	}
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", dir, "--user", "u", "--pass", pass)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	waitFor(t, "nats-server to listen", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		line, _ := bufio.NewReader(c).ReadString(' ')
		return strings.HasPrefix(line, "INFO")
	})
	return stop
}

// TestRelayReconnectsAfterRefusedCredentials: outbox.Connect promises a
// connection that keeps reconnecting for ever, so that the outbox drains
// whenever NATS is back. A NATS server that comes back refusing the
// relay's credentials for a moment (restarted before its users or account
// resolver were in place) made nats.go close the connection for good at
// the second refusal: the relay then logged "not connected to NATS
// (CLOSED)" (no word of the refusal) every round and published nothing
// more, ever, once the server took the credentials again; only a restart
// of the node brought events back.
func TestRelayReconnectsAfterRefusedCredentials(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	stop := natsWithPassword(t, port, dir, "right")

	s := openStore(t)
	createSale(t, s, "a", 1000)
	url := fmt.Sprintf("nats://u:right@127.0.0.1:%d", port)
	rc, err := outbox.Connect(url, "relay-test")
	if err != nil {
		t.Fatal(err)
	}
	stream, subject := "T_AUTH", "t_auth"
	r, err := outbox.New(rc, s, outbox.Config{Stream: stream, Subject: subject, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stopRelay := runRelay(t, r)
	defer func() { stopRelay(); rc.Close() }()
	reserve(t, s, "a", "u", 10, 10)
	drainedWithin(t, s, 20*time.Second)

	// The server restarts refusing the relay's password for a while: long
	// enough for nats.go to be refused twice (it retries every 500 ms).
	stop()
	stop = natsWithPassword(t, port, dir, "other")
	var refused time.Time
	waitFor(t, "the relay's connection to be refused", func() bool {
		if rc.Status() == nats.CLOSED {
			return true
		}
		if e := rc.LastError(); e != nil && strings.Contains(strings.ToLower(e.Error()), "authorization") {
			if refused.IsZero() {
				refused = time.Now()
			}
			return time.Since(refused) > 2*time.Second
		}
		return false
	})
	stop()
	natsWithPassword(t, port, dir, "right")
	reserve(t, s, "a", "w", 10, 10)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _, err := s.OutboxBacklog(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still wait in the outbox 10 s after the NATS server took the relay's credentials again: "+
				"the relay's connection is %v (last error: %v) and never reconnects; want 0 waiting", n, rc.Status(), rc.LastError())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func runRelay(t *testing.T, r *outbox.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.RunUntil(ctx, context.Background()); close(done) }()
	return func() { cancel(); <-done }
}
