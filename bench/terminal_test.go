package bench

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what is written to tty is read
// from ptmx.
func openPTY(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	fd := int(ptmx.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptmx, tty
}

// TestProgressRedrawsOnlyOnATerminal: on a terminal the live line is
// redrawn with \r; into a pipe, a file or a buffer each update is a line.
func TestProgressRedrawsOnlyOnATerminal(t *testing.T) {
	ptmx, tty := openPTY(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	for _, tt := range []struct {
		name string
		w    any
		want bool
	}{{"tty", tty, true}, {"pipe", pw, false}, {"buffer", new(bytes.Buffer), false}} {
		if got := isTerminal(tt.w.(interface{ Write([]byte) (int, error) })); got != tt.want {
			t.Errorf("isTerminal(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}

	r := &runner{rec: newRecorder(time.Now(), false)}
	done := make(chan struct{})
	close(done)
	r.showProgress(tty, done)
	// The line and its newline are two writes: a read may return the
	// first alone (it did, under load), so read until the newline.
	var got []byte
	buf := make([]byte, 4096)
	_ = ptmx.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !bytes.Contains(got, []byte("\n")) {
		n, err := ptmx.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if out := string(got); !strings.HasPrefix(out, "\r  0s  sent 0 ") || !strings.HasSuffix(out, "\n") {
		t.Errorf("on a terminal: %q, want a \\r-redrawn line ended by a newline", out)
	}

	var b bytes.Buffer
	r.showProgress(&b, done)
	if out := b.String(); !strings.HasPrefix(out, "  0s  sent 0 ") || strings.Contains(out, "\r") || strings.Count(out, "\n") != 1 {
		t.Errorf("into a buffer: %q, want one plain line", out)
	}
}
