package bench

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer the progress goroutine writes while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProgressEndDoesNotRepeat: piped into a file or a log, the progress
// writes a line a second and, when the run ends, its final figures. A run
// that ended right after a tick (every --duration run does, on the second)
// printed the tick's line twice: the same second, the same counts. The
// final line comes only when it says something the last one did not.
func TestProgressEndDoesNotRepeat(t *testing.T) {
	for _, tc := range []struct {
		name  string
		more  int64 // purchases sent after the tick, before the end
		lines int
	}{
		{"nothing after the last tick", 0, 1},
		{"more sent after the last tick", 5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &runner{rec: newRecorder(time.Now(), false)}
			var out lockedBuffer
			done, finished := make(chan struct{}), make(chan struct{})
			go func() { r.showProgress(&out, done); close(finished) }()
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "\n"); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no progress line within 10 s")
				}
			}
			r.rec.sent.Add(tc.more)
			close(done)
			<-finished
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != tc.lines || !strings.Contains(lines[len(lines)-1], "sent "+strconv.FormatInt(tc.more, 10)+" ") {
				t.Errorf("progress:\n%s\nwant %d line(s), the last with the final figures (sent %d)", out.String(), tc.lines, tc.more)
			}
		})
	}
}
