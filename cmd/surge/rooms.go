package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/surgehq/surge/waitroom"
)

// An embedded upgrade hands the waiting rooms, which live in the process's
// memory, to the new process through a file in the data directory: the
// old process writes it once it has stopped serving (its requests
// answered, its engine closed) and before it closes the store, and the new
// one reads it once it holds the store. The data directory's lock orders
// the two, so the new process reads the old one's last state and nothing
// else needs to wait for anything. (The inherited sockets could not carry
// it: tableflip passes them when the new process starts, long before the
// old one stops placing buyers.) An upgrade that fails before the new
// process is ready never reaches the old one's shutdown: nothing is
// written, and the old process serves on with its rooms.
const (
	roomsFile    = "waitrooms.handover"
	roomsTmpFile = roomsFile + ".tmp"
	roomsFormat  = 1
)

// roomsHeader is the file's first line, JSON; the queues follow
// (waitroom.Memory.Export).
type roomsHeader struct {
	Format int `json:"format"`
	// PID is the old process's: only the process it started reads the
	// file. Any other start finds one left by an upgrade that did not
	// finish, and removes it.
	PID int `json:"pid"`
	roomKeys
}

// roomKeys are the ticket keys an upgrade hands over, those surge
// generated (a configured --waiting-room-secret is never written: the new
// process reads it where the old one did). Key signs the old process's
// tickets (nil when it was given a secret): the new process signs with it
// too, or, given a secret, still accepts its tickets. Previous are the
// generated keys of earlier processes whose tickets still verify.
type roomKeys struct {
	Key      []byte   `json:"key,omitempty"`
	Previous [][]byte `json:"previous,omitempty"`
}

// handRooms writes m's queues and the generated ticket keys to the data
// directory for the new process of an upgrade, and stops m from placing
// anyone.
func handRooms(dataDir string, m *waitroom.Memory, keys roomKeys, log *slog.Logger) {
	tmp := filepath.Join(dataDir, roomsTmpFile)
	queues, entries, err := writeRooms(tmp, m, keys)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dataDir, roomsFile))
	}
	if err != nil {
		_ = os.Remove(tmp)
		log.Error("upgrade: could not hand the waiting rooms over: the new process starts them empty, and their buyers must join again", "err", err)
		return
	}
	log.Info("upgrade: waiting rooms handed over", "queues", queues, "buyers", entries)
}

func writeRooms(path string, m *waitroom.Memory, keys roomKeys) (queues, entries int, err error) {
	// 0600: the key signs every ticket.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	head, err := json.Marshal(roomsHeader{Format: roomsFormat, PID: os.Getpid(), roomKeys: keys})
	if err != nil {
		return 0, 0, err
	}
	if _, err := w.Write(append(head, '\n')); err != nil {
		return 0, 0, err
	}
	if queues, entries, err = m.Export(w); err != nil {
		return 0, 0, err
	}
	return queues, entries, w.Flush()
}

// takeRooms loads into m the waiting rooms the old process of an upgrade,
// oldPID (0: this start is no upgrade), left in the data directory, and
// returns the ticket keys it handed over. It removes the file whatever it
// finds: a start that is no upgrade (after an upgrade whose new process
// failed) must not load rooms that another process served since, and
// neither may a later one. Rooms that cannot be loaded start empty, as on
// a restart: their new epochs refuse the old tickets.
func takeRooms(dataDir string, oldPID int, m *waitroom.Memory, log *slog.Logger) roomKeys {
	upgrading := oldPID != 0
	path := filepath.Join(dataDir, roomsFile)
	_ = os.Remove(filepath.Join(dataDir, roomsTmpFile)) // an old process's write cut short
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if upgrading {
			log.Warn("upgrade: the old process handed over no waiting rooms (its build does not, or it could not write them): their buyers must join again")
		}
		return roomKeys{}
	}
	defer os.Remove(path)
	if err != nil {
		log.Error("waiting rooms handed over by an upgrade cannot be read: they start empty, and their buyers must join again", "err", err)
		return roomKeys{}
	}
	defer f.Close()
	if !upgrading {
		log.Warn("removed the waiting rooms an upgrade left in the data directory (its new process did not start): they start empty, as on any restart", "file", path)
		return roomKeys{}
	}
	keys, queues, entries, err := readRooms(f, oldPID, m)
	if err != nil {
		log.Error("upgrade: the waiting rooms handed over cannot be loaded: they start empty, and their buyers must join again", "err", err)
		return roomKeys{}
	}
	log.Info("upgrade: waiting rooms taken over", "queues", queues, "buyers", entries)
	return keys
}

func readRooms(f *os.File, oldPID int, m *waitroom.Memory) (keys roomKeys, queues, entries int, err error) {
	r := bufio.NewReaderSize(f, 1<<16)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return roomKeys{}, 0, 0, fmt.Errorf("%s: %w", f.Name(), err)
	}
	var h roomsHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return roomKeys{}, 0, 0, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if h.Format != roomsFormat {
		return roomKeys{}, 0, 0, fmt.Errorf("%s: format %d; this build reads %d", f.Name(), h.Format, roomsFormat)
	}
	if h.PID != oldPID {
		return roomKeys{}, 0, 0, fmt.Errorf("%s was written by process %d, not by the old process of this upgrade, %d", f.Name(), h.PID, oldPID)
	}
	for _, k := range append([][]byte{h.Key}, h.Previous...) {
		if k != nil && len(k) < waitroom.MinSecretLen {
			return roomKeys{}, 0, 0, fmt.Errorf("%s: a ticket key of %d bytes", f.Name(), len(k))
		}
	}
	if queues, entries, err = m.Import(r); err != nil {
		return roomKeys{}, 0, 0, err
	}
	return h.roomKeys, queues, entries, nil
}
