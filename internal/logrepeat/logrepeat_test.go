package logrepeat

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(time.Hour)
	if n, ok := l.Allow("a"); !ok || n != 0 {
		t.Fatalf("first line of a: %d, %v; want written", n, ok)
	}
	for range 3 {
		if _, ok := l.Allow("a"); ok {
			t.Fatal("a repeat within the period was written")
		}
	}
	if _, ok := l.Allow("b"); !ok {
		t.Fatal("another key's first line was left out")
	}
	if n := l.Done("a"); n != 3 {
		t.Fatalf("Done(a) = %d, want the 3 left out", n)
	}
	if n, ok := l.Allow("a"); !ok || n != 0 {
		t.Fatalf("a's first line after Done: %d, %v; want written", n, ok)
	}

	l = New(0) // every line is due: none left out
	for range 3 {
		if n, ok := l.Allow("a"); !ok || n != 0 {
			t.Fatalf("a with no period: %d, %v; want written", n, ok)
		}
	}
}

func TestLimiterCountsSinceLastWritten(t *testing.T) {
	l := New(50 * time.Millisecond)
	l.Allow("a")
	l.Allow("a")
	l.Allow("a")
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, ok := l.Allow("a")
		if ok {
			if n < 2 {
				t.Fatalf("line after the period counts %d left out, want at least 2", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no line written after the period")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
