package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/waitroom"
)

// TestServeWaitingRoomSecretFile: README tells operators to give the
// waiting-room secret, as every secret, through the environment or a
// -file flag, since any local user can read a command line; there was no
// --waiting-room-secret-file (exit 2, "flag provided but not defined"),
// so a systemd node whose settings live in its config file had to put the
// key in that file or on the command line. The flag reads the key from a
// file (its trailing newline dropped), refuses a short one or one given
// both ways, and the server signs tickets with it.
func TestServeWaitingRoomSecretFile(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const secret = "a-waiting-room-secret-of-32-bytes-or-more"
	good := file("room-secret", secret+"\n")
	short := file("short", strings.Repeat("r", waitroom.MinSecretLen-1)+"\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"short file", []string{"--waiting-room-secret-file", short}, "--waiting-room-secret-file must hold at least 32 bytes"},
		{"missing file", []string{"--waiting-room-secret-file", filepath.Join(dir, "none")}, "--waiting-room-secret-file"},
		{"secret and file", []string{"--waiting-room-secret", secret, "--waiting-room-secret-file", good}, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := append([]string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--log-level", "error",
				"--admin-token", "room-secret-admin-token"}, tc.args...)
			code, stdout, stderr := runCLI(ctx, args...)
			if code != 2 || !oneLine(stderr) || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", tc.args, code, stderr, tc.want)
			}
			if strings.Contains(stdout, "surge serving") {
				t.Errorf("served despite the bad secret file: %q", stdout)
			}
		})
	}

	const admin = "room-secret-admin-token"
	srv := startServe(t, "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--log-level", "error",
		"--admin-token", admin, "--insecure-user-header", "--waiting-room-secret-file", good)
	req, _ := http.NewRequest("POST", srv.base+"/v1/sales", strings.NewReader(
		`{"id":"drop","name":"Drop","stock":5,"waiting_room":{"admit_per_second":10,"order":"fifo","ticket_seconds":60}}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create the sale: %d %s", resp.StatusCode, b)
	}
	// A ticket signed with the file's key (without its newline) by another
	// room verifies on the server: it is refused only for naming a queue
	// the server never had. One signed with any other key does not verify.
	for _, tc := range []struct {
		key, want string
	}{
		{secret, "issued before the waiting room restarted"},
		{secret + "\n", "signature does not verify"},
	} {
		room, err := waitroom.New(waitroom.Config{Secret: []byte(tc.key)})
		if err != nil {
			t.Fatal(err)
		}
		sale := &surge.Sale{ID: "drop", Name: "Drop", Stock: 5, PerUserLimit: 1, StartsAt: time.Now().Add(-time.Minute),
			WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 10, Policy: surge.QueueFIFO, TicketSeconds: 60}}
		st, _, err := room.Join(context.Background(), sale, "alice")
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", srv.base+"/v1/sales/drop/queue", nil)
		req.Header.Set("Waiting-Room-Ticket", st.Ticket)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), tc.want) {
			t.Errorf("a ticket signed with key %q: %d %s; want 403 saying %q", tc.key, resp.StatusCode, b, tc.want)
		}
	}
}
