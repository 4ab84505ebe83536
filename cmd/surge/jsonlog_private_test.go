package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestJSONLogsOnPrivateListeners: the real binary, configured by a file
// with log-format json and both private listeners (admin-addr,
// debug-addr), meets an HTTP/2 client that breaks the protocol on each of
// them. Every line on stderr must be JSON: the API listener's server
// errors went through the logger, but the private listeners' went to Go's
// standard logger, as plain text ("2026/01/02 15:04:05 http2: server
// connection error from …"), whatever log-format said.
func TestJSONLogsOnPrivateListeners(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	api, admin, debug := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "surge.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Join([]string{
		"http-addr: " + api,
		"admin-addr: " + admin,
		"debug-addr: " + debug,
		"data-dir: " + filepath.Join(dir, "data"),
		"admin-token: json-private-admin-token",
		"log-format: json",
		"",
	}, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, stderr, exited := startLogged(t, "serve", "--config", cfg)
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startWithin)
	for {
		if resp, err := hc.Get("http://" + api + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(stderr.Name())
			t.Fatalf("surge exited before it was ready:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The first frame after the preface must be SETTINGS: a PING is a
	// connection error, which the server logs, then answers with GOAWAY.
	for _, addr := range []string{admin, debug} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		if err := fr.WritePing(false, [8]byte{1}); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		goaway := false
		for !goaway {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("%s: reading until GOAWAY: %v", addr, err)
			}
			_, goaway = f.(*http2.GoAwayFrame)
		}
		conn.Close()
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}
	b, err := os.ReadFile(stderr.Name())
	if err != nil {
		t.Fatal(err)
	}
	h2errors := strings.Count(string(b), "http2: server connection error")
	jsonLines(t, b)
	if h2errors != 2 {
		t.Errorf("%d lines report the HTTP/2 connection errors, want 2 (one per private listener); stderr:\n%s", h2errors, b)
	}
}
