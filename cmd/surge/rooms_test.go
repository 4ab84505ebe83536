package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/waitroom"
)

// roomsOf is a Memory with one buyer in sale s's queue.
func roomsOf(t *testing.T) *waitroom.Memory {
	t.Helper()
	m := waitroom.NewMemory(0)
	q := waitroom.Queue{SaleID: "s", Schedule: waitroom.Schedule{Start: time.Now().Add(time.Hour), Rate: 1}}
	if _, _, err := m.Join(context.Background(), q, "u", time.Now()); err != nil {
		t.Fatal(err)
	}
	return m
}

// The rooms file is read only by the process the writer started, and
// removed by any start that finds it: one left by an upgrade whose new
// process failed must not come back into a later start, which would serve
// places another process may have handed out since.
func TestRoomsFileTakenOnlyByTheChild(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key := bytes.Repeat([]byte{7}, waitroom.MinSecretLen)
	for _, tc := range []struct {
		name   string
		pid    int // the writer
		oldPID int // the reader's old process; 0: no upgrade
		loads  bool
	}{
		{"the writer's new process", 4242, 4242, true},
		{"another upgrade's new process", 4242, 4343, false},
		{"a start that is no upgrade", 4242, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var buf bytes.Buffer
			head, _ := json.Marshal(roomsHeader{Format: roomsFormat, PID: tc.pid, roomKeys: roomKeys{Key: key}})
			buf.Write(append(head, '\n'))
			if _, _, err := roomsOf(t).Export(&buf); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, roomsFile), buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			m := waitroom.NewMemory(0)
			keys := takeRooms(dir, tc.oldPID, m, log)
			n, _ := m.Between(context.Background(), waitroom.Queue{SaleID: "s"}, 0, 1<<62)
			if loaded := n == 1 && bytes.Equal(keys.Key, key); loaded != tc.loads {
				t.Errorf("loaded %v (buyers %d, key %x), want %v", loaded, n, keys.Key, tc.loads)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// handRooms writes what takeRooms reads, and stops the old memory from
// placing anyone.
func TestHandRoomsRoundTrip(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	m := roomsOf(t)
	keys := roomKeys{Key: bytes.Repeat([]byte{1}, 32), Previous: [][]byte{bytes.Repeat([]byte{2}, 32)}}
	handRooms(dir, m, keys, log)
	q := waitroom.Queue{SaleID: "s", Schedule: waitroom.Schedule{Start: time.Now().Add(time.Hour), Rate: 1}}
	if _, _, err := m.Join(context.Background(), q, "late", time.Now()); err == nil {
		t.Error("the old memory placed a buyer after the handover")
	}
	f, err := os.Open(filepath.Join(dir, roomsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600: the file holds the ticket key", fi.Mode().Perm())
	}
	got, queues, entries, err := readRooms(f, os.Getpid(), waitroom.NewMemory(0))
	if err != nil || queues != 1 || entries != 1 || !bytes.Equal(got.Key, keys.Key) || len(got.Previous) != 1 || !bytes.Equal(got.Previous[0], keys.Previous[0]) {
		t.Errorf("read back %+v, %d queues, %d entries, %v", got, queues, entries, err)
	}
}

// The key an upgrade hands over signs on in a process given no secret,
// and still verifies the old tickets in one given a secret now; either
// way the next upgrade hands on what keeps them verifying.
func TestWaitingRoomTakesHandedKey(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	handed := bytes.Repeat([]byte{9}, waitroom.MinSecretLen)
	sale := &surge.Sale{ID: "s", Name: "s", Stock: 1, PerUserLimit: 1, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueFIFO, TicketSeconds: 60}}
	for _, tc := range []struct {
		name, secret string
		want         roomKeys
	}{
		{"no secret", "", roomKeys{Key: handed}},
		{"a secret now", "a-secret-of-at-least-thirty-two-bytes", roomKeys{Previous: [][]byte{handed}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := waitroom.NewMemory(0)
			old, err := waitroom.New(waitroom.Config{Secret: handed, Backend: mem})
			if err != nil {
				t.Fatal(err)
			}
			st, _, err := old.Join(context.Background(), sale, "u")
			if err != nil {
				t.Fatal(err)
			}
			c := newServeConfig()
			c.roomSecret = tc.secret
			room, _, hand, err := c.waitingRoom(&backend{queues: mem, roomKeys: roomKeys{Key: handed}}, log)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := room.Status(context.Background(), sale, st.Ticket); err != nil {
				t.Errorf("the old process's ticket: %v", err)
			}
			if !bytes.Equal(hand.Key, tc.want.Key) || len(hand.Previous) != len(tc.want.Previous) {
				t.Errorf("hands on %+v, want %+v", hand, tc.want)
			}
		})
	}
}
