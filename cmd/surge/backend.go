package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/waitroom"
)

// backend is what the storage mode offers a node, decided once when the
// store opens (openEmbedded, openCluster), so that startServer wires it
// without asking which mode it is in.
type backend struct {
	store surge.Store
	// queues holds the waiting rooms' lines: in this process, or in Redis
	// so that every node serves the same line.
	queues waitroom.Backend
	// sharedLimit returns a rate limit that every node shares; nil when
	// the node is alone and its own limiters are the whole truth.
	sharedLimit func(name string, perSecond float64, burst int) admission.SharedLimit
	// inFlight is how many batches of one sale may be at the store at once.
	inFlight int
	// ready reports whether the store takes purchases now (/readyz).
	ready func(ctx context.Context) error
	// noSecret is the warning logged when no --waiting-room-secret is set:
	// tickets then verify only in this process.
	noSecret string
	// roomKeys are the ticket keys the old process of an embedded upgrade
	// handed over with its waiting rooms (takeRooms).
	roomKeys roomKeys
}

// openBackend opens the embedded store, or the cluster store when the
// Redis and PostgreSQL URLs are set (validate checked that both are).
func (c serveConfig) openBackend(ctx context.Context, log *slog.Logger, tel telemetry) (*backend, error) {
	if c.redisURL == "" {
		return c.openEmbedded(ctx, log, tel)
	}
	return c.openCluster(ctx, log, tel)
}

func (c serveConfig) openEmbedded(ctx context.Context, log *slog.Logger, tel telemetry) (*backend, error) {
	start := time.Now()
	if c.handover.upgrading() {
		// Before the old process is told to go: a database this build
		// cannot serve (a rollback to a binary older than the database)
		// fails the upgrade while the old process still serves it, as
		// a key server that is down does. So does any failure to read
		// the version (a file that is no database, one it cannot open):
		// the start below would refuse it too, after the old process
		// has gone, leaving nothing to serve.
		if err := sqlite.CheckVersion(ctx, c.dataDir); errors.Is(err, sqlite.ErrNewer) {
			return nil, err
		} else if err != nil {
			return nil, fmt.Errorf("upgrade: cannot read the database's version, so this process may not be able to serve it: %w", err)
		}
		// The old process holds the data directory until it has drained
		// and closed the store: tell it to go, then wait for the lock.
		if err := c.handover.ready(); err != nil {
			return nil, err
		}
		log.Info("upgrade: waiting for the old process to release the data directory", "data_dir", c.dataDir)
	}
	imageMin := c.ledgerImageMin
	if imageMin == 0 {
		imageMin = -1 // never
	}
	st, err := sqlite.Open(ctx, c.dataDir, sqlite.Options{IdempotencyTTL: c.idempotencyTTL, Logger: log, Metrics: tel.reg, ImageMin: imageMin,
		LockWait: c.handover.lockWait(c), NoEvents: c.natsURL == ""})
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) && (pe.Op == "mkdir" || pe.Op == "open") &&
		(errors.Is(pe.Err, fs.ErrPermission) || errors.Is(pe.Err, syscall.ENOTDIR) || errors.Is(pe.Err, syscall.EROFS)) {
		// The directory could not be made or opened (a file there, no
		// permission, a read-only disk): the error named a path, not the
		// setting that chose it.
		return nil, fmt.Errorf("--data-dir %q: %w; choose a directory this user may create and write (--data-dir or SURGE_DATA_DIR)", c.dataDir, err)
	}
	if err != nil {
		return nil, err
	}
	if c.handover.upgrading() {
		log.Info("upgrade: the store is open", "since_old_told_to_go", time.Since(start))
	}
	// Holding the data directory: the old process of an upgrade has
	// written its rooms by now (rooms.go).
	queues := waitroom.NewMemory(c.roomMaxEntries)
	keys := takeRooms(c.dataDir, c.handover.oldPID(), queues, log)
	return &backend{
		store:    st,
		queues:   queues,
		roomKeys: keys,
		inFlight: 1, // the embedded store serialises a sale's batches anyway
		ready:    st.Ready,
		noSecret: "waiting-room tickets are signed with a random per-process key: they become invalid on restart and on other nodes; configure a shared secret",
	}, nil
}

func (c serveConfig) openCluster(ctx context.Context, log *slog.Logger, tel telemetry) (*backend, error) {
	// go-redis logs (failed dials, dropped connections) through slog, so
	// that --log-format json stays JSON; pgx logs nothing by itself.
	redis.LogTo(log)
	st, err := cluster.Open(ctx, c.redisURL, c.postgresURL, cluster.Config{
		Prefix: c.redisPrefix, NodeID: c.nodeID, LeaseTTL: c.leaseTTL, ConfirmAfter: c.confirmAfter, Buckets: c.buckets, Logger: log,
		Tracing: tel.tracing, Metrics: tel.reg, Events: c.natsURL != "",
	})
	if err != nil {
		return nil, err
	}
	// A 201 means the order's COMMIT is on disk only if PostgreSQL waits
	// for the WAL flush; a session setting (role, database, URL options)
	// can turn that off without the node knowing.
	switch sc, err := postgres.SynchronousCommit(ctx, c.postgresURL); {
	case err != nil:
		log.Warn("could not read PostgreSQL's synchronous_commit", "err", err)
	case sc == "off":
		log.Warn("PostgreSQL runs with synchronous_commit=off: a confirmed order (201) can be lost if PostgreSQL crashes; set it to on", "synchronous_commit", sc)
	}
	return &backend{
		store:  st,
		queues: st.Queues(c.roomMaxEntries),
		sharedLimit: func(name string, perSecond float64, burst int) admission.SharedLimit {
			return st.SharedLimit(name, perSecond, burst)
		},
		// A cluster batch mostly waits on Redis and PostgreSQL; overlapping
		// batches uses that wait but makes them smaller. On the 2-core
		// bench machine 4 in flight cost more CPU than it saved
		// (docs/benchmarks.md), hence a flag, default 1.
		inFlight: c.inFlight,
		ready:    st.Ready,
		noSecret: "no --waiting-room-secret: waiting-room tickets are valid on this node only; give every node the same secret",
	}, nil
}

// waitingRoom builds the waiting room over the backend's queues. Without
// a secret, tickets are signed with a random per-process key, or with the
// one the old process of an upgrade handed over. The engine checks the
// tickets the API hands out, so both get this one room. hand are the keys
// this process hands to the next one of an upgrade.
//
// warn logs, once, that tickets die with the process when no secret was
// given; the node calls it only once a sale has a waiting room, so that a
// newcomer's first screen is not a warning about a feature they have not
// used. It does nothing when a secret was given.
func (c serveConfig) waitingRoom(b *backend, log *slog.Logger) (room *waitroom.Room, warn func(), hand roomKeys, err error) {
	secret := []byte(c.roomSecret)
	handed := b.roomKeys
	warn = func() {}
	hand.Previous = handed.Previous
	switch {
	case len(secret) == 0 && handed.Key != nil:
		secret = handed.Key
	case len(secret) == 0:
		secret = make([]byte, waitroom.MinSecretLen)
		_, _ = rand.Read(secret)
	case handed.Key != nil && !bytes.Equal(handed.Key, secret):
		// Given a secret now: the tickets of the old process, signed
		// with the key it generated, still verify.
		hand.Previous = append(hand.Previous, handed.Key)
	}
	if len(c.roomSecret) == 0 {
		hand.Key = secret
		warn = sync.OnceFunc(func() { log.Warn(b.noSecret) })
	}
	// The room admits on the clock the engine judges the sale's start and
	// a ticket's purchases by: in cluster mode PostgreSQL's (surge.Clocked).
	var now func() time.Time
	if clk, ok := b.store.(surge.Clocked); ok {
		now = clk.Clock(time.Now)
	}
	room, err = waitroom.New(waitroom.Config{Secret: secret, Previous: hand.Previous, Backend: b.queues, Now: now})
	if err != nil {
		return nil, nil, roomKeys{}, errUsage{"serve: --waiting-room-secret: " + err.Error()}
	}
	return room, warn, hand, nil
}
