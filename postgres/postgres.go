// Package postgres keeps cluster mode's durable truth in PostgreSQL: sales,
// orders, and the leases that elect the node running once-only jobs. It is
// one half of the cluster store (package cluster); Redis holds the other,
// live half, and is rebuilt from here whenever it is lost or in doubt.
//
// Three mechanisms make the pair safe:
//   - every order insert checks the guarantees itself under the sale row's
//     lock (stock, per-user limit, one order per key) and refuses a batch
//     that would break one, whatever Redis decided (ErrRefused);
//   - every order insert is fenced by the sale's epoch: a rebuild of the
//     live state bumps it under a row lock, so a batch decided against an
//     older copy of that state can never become an order afterwards;
//   - the once-only jobs hold a lease whose token grows with every term,
//     and their writes check it, so a leader that lost its lease (paused,
//     partitioned) cannot write.
package postgres

import (
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	neturl "net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"go.opentelemetry.io/otel/trace"

	"github.com/surgehq/surge"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune the connection; zero fields take their defaults.
type Options struct {
	// Schema, when set, holds every table (created if missing). Tests give
	// each dataset its own; production leaves it empty (search_path).
	Schema string
	// MaxConns bounds the pool (default: the URL's pool_max_conns, else 16).
	MaxConns int32
	// Tracing, when set, makes a span of each statement, batch and
	// connect (otelpgx) under the caller's context.
	Tracing trace.TracerProvider
	// Observe, when set, is told each call's duration; op is the
	// statement's first keyword ("select", "insert", "begin", …),
	// "batch" or "connect" (instrument.go).
	Observe func(op string, d time.Duration)
	// Events turns order events on for the whole cluster, for good: from
	// now on every change writes its event to the outbox. A node that
	// relays them sets it; without any such node nothing would read them.
	Events bool
	// ReadOnly opens only a database that already holds Surge's schema
	// at this build's version, and changes nothing in it: a reader such
	// as surge reconcile must not create Surge's tables in a database
	// that was never Surge's (a wrong URL: ErrNoSchema), nor migrate a
	// serving cluster's schema from under its nodes (an older node would
	// then refuse to start on it): a schema of another version is
	// ErrSchemaVersion.
	ReadOnly bool
	// Logger, when set, hears of a migration that waits for tables
	// another session holds (Open tries it again until ctx ends).
	Logger *slog.Logger
}

// ErrNoSchema: Options.ReadOnly, and the database (its search_path) holds
// no Surge schema.
var ErrNoSchema = errors.New("postgres: the database holds no Surge data (no surge_schema_version table in its search_path)")

// ErrSchemaVersion: Options.ReadOnly, and the database's schema is of
// another version than this build's (the message says which).
var ErrSchemaVersion = errors.New("postgres: the database's schema is not this version's")

// DB is the durable half of the cluster store.
type DB struct {
	pool    *pgxpool.Pool
	channel string // LISTEN/NOTIFY channel of this schema
	// installs bounds the install locks held at once (Installing): each
	// keeps a connection of the pool and needs another for its work.
	installs chan struct{}
	// exports bounds the order exports running at once (Orders): each
	// keeps a connection for as long as its reader takes.
	exports chan struct{}
	// kept bounds the connections install locks and exports keep at
	// once, both counted, to all of the pool but one: at the smallest
	// pool (2) an export and a change's install lock took both, and the
	// change, then every purchase, cancel and lease renewal of the node,
	// waited for a connection until its bound.
	kept chan struct{}
	// tails bounds the key-copy catch-ups running at once (KeyTail), a
	// quarter of the pool: each may keep a connection for up to 30 s, and
	// many sales sold out together took the whole pool from the commits.
	tails chan struct{}
}

// IdleInTransactionTimeout is how long PostgreSQL keeps a transaction of
// a node whose client sends nothing (stopped, or its network stalled)
// before it ends the session, rolls the transaction back and frees its
// locks: about a lease's time to live.
const IdleInTransactionTimeout = "5s"

// ErrFenced answers an insert whose batch was decided against live state
// that a rebuild has since replaced: none of it was written.
var ErrFenced = errors.New("postgres: the sale's live state was rebuilt since the batch was decided")

// ErrNotReserved answers Settle of an order that is not reserved, or
// whose hold has ended.
var ErrNotReserved = errors.New("postgres: order is not reserved")

// ErrRefused answers an insert PostgreSQL refused because it would break a
// guarantee: the sale over its stock, a buyer over the limit, or a second
// order for an idempotency key. Redis, which decided the batch, disagrees
// with the truth (it lost or rolled back state): nothing was written, and
// the sale's live state must be rebuilt.
var ErrRefused = errors.New("postgres: the batch would break a guarantee")

// CheckURL refuses a URL Open could not parse, without connecting: a
// configuration is checked whole before anything starts (--print-config,
// SIGHUP).
func CheckURL(url string) error {
	_, err := parseURL(url)
	return err
}

// defaultPoolSize is a node's pool when its URL names none.
const defaultPoolSize = 16

// parseURL parses url as pgx does, with the pool's size the URL's
// pool_max_conns (pgx's own parameter) or else defaultPoolSize: a fixed
// size left an operator of many nodes no way to keep their connections
// under the server's max_connections. A size under 2 is refused: a
// sale's change holds one connection (its install lock) while it uses
// another.
func parseURL(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	if !namesPoolSize(url) {
		cfg.MaxConns = defaultPoolSize
	} else if cfg.MaxConns < 2 {
		return nil, fmt.Errorf("postgres: url: pool_max_conns=%d: a node needs at least 2 connections", cfg.MaxConns)
	}
	return cfg, nil
}

// poolSizeParam finds pool_max_conns in a keyword/value connection
// string (libpq allows spaces around the =).
var poolSizeParam = regexp.MustCompile(`(^|\s)pool_max_conns\s*=`)

// namesPoolSize reports whether the connection string url (a URL or
// keyword/value pairs) sets pool_max_conns; pgxpool's parsed config
// cannot tell its default from a size the URL gave.
func namesPoolSize(url string) bool {
	if u, err := neturl.Parse(url); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.Query().Has("pool_max_conns")
	}
	return poolSizeParam.MatchString(url)
}

// Open connects, creates the schema if asked, and applies the migrations
// (versioned, under an advisory lock, so nodes starting together agree).
func Open(ctx context.Context, url string, opt Options) (*DB, error) {
	cfg, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		// An unreachable server must fail requests fast, not hang them.
		cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	}
	if !idleTimeoutSet(cfg.ConnConfig.RuntimeParams) {
		// A node stopped or cut off inside a transaction (SIGSTOP, a frozen
		// container, a network path that stalls) would otherwise keep it
		// open, and the sale row it locked (a rebuild, a sale change, an
		// archive) or the lease row, for as long as it stays so: every
		// insert of that sale, on every node, waits on the lock. No
		// transaction of a serving node waits on its client longer than
		// a few calls (View, the long read of surge reconcile, turns it
		// off for itself). A URL parameter of that name, or an options=
		// (PGOPTIONS) that sets it, overrides it.
		//
		// Set on each new connection, not sent as a startup parameter:
		// a pooler (PgBouncer) refuses startup parameters it does not
		// know, and the session's own settings would put it over the
		// URL's options=.
		prev := cfg.AfterConnect
		cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			if prev != nil {
				if err := prev(ctx, conn); err != nil {
					return err
				}
			}
			_, err := conn.Exec(ctx, "SET idle_in_transaction_session_timeout = '"+IdleInTransactionTimeout+"'")
			return err
		}
	}
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	instrument(cfg, opt)
	if opt.Schema != "" {
		if !surge.ValidID(opt.Schema) {
			return nil, fmt.Errorf("postgres: schema %q must match [A-Za-z0-9_-]{1,64}", opt.Schema)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = opt.Schema
	}
	// The migration's session gets the idle bound too: a node stopped
	// inside a migration's transaction would otherwise hold its DDL's
	// locks and the migrator's advisory lock for good. The migrator runs
	// RESET ALL in each migration's transaction, which undoes a SET: the
	// bound goes as a startup parameter (the session's default, which
	// RESET ALL keeps), and only where that is refused (PgBouncer) is it
	// SET after connecting, as for the pool.
	mcfg := cfg.ConnConfig.Copy()
	after := cfg.AfterConnect
	if !idleTimeoutSet(cfg.ConnConfig.RuntimeParams) {
		mcfg.RuntimeParams["idle_in_transaction_session_timeout"] = IdleInTransactionTimeout
		after = nil
	}
	var waitStart, waitLogged time.Time
	for {
		err = migrateSchema(ctx, mcfg, after, opt.Schema, opt.ReadOnly)
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "08P01" && strings.Contains(pgErr.Message, "startup parameter") {
			err = migrateSchema(ctx, cfg.ConnConfig.Copy(), cfg.AfterConnect, opt.Schema, opt.ReadOnly)
		}
		// A migration that could not lock a table at once (a long read
		// holds it) rolled back: try again, until ctx ends.
		if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
			break
		}
		// Said at once and then every migrateWaitLog: a node that waits
		// here serves nothing, and without a line its operator could not
		// tell why it does not start.
		now := time.Now()
		if waitStart.IsZero() {
			waitStart = now
		}
		if opt.Logger != nil && now.Sub(waitLogged) >= migrateWaitLog {
			waitLogged = now
			opt.Logger.Warn("postgres: a migration waits for tables another session holds (a long read or transaction); trying again until it gets them",
				"waited", now.Sub(waitStart).Round(time.Second), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (waiting for the tables it alters: %w)", err, ctx.Err())
		case <-time.After(migrateLockRetry):
		}
	}
	if err != nil {
		return nil, err
	}
	if opt.Logger != nil && !waitStart.IsZero() {
		opt.Logger.Info("postgres: the migration went through", "waited", time.Since(waitStart).Round(time.Millisecond))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	// The channel is the schema's, however its search_path came (Schema,
	// or the URL's, as deployments sharing a database set it): with one
	// channel for the database, every node of one deployment heard every
	// announcement of the others, each a full sync of its sales.
	var schema *string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: current schema: %w", err)
	}
	channel := channelOf(schema)
	if opt.Events {
		if _, err := pool.Exec(ctx, enableEventsSQL); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: turn order events on: %w", err)
		}
	}
	return &DB{pool: pool, channel: channel, installs: make(chan struct{}, max(1, cfg.MaxConns/2)),
		exports: make(chan struct{}, max(1, cfg.MaxConns/4)), kept: make(chan struct{}, max(1, cfg.MaxConns-1)),
		tails: make(chan struct{}, max(1, cfg.MaxConns/4))}, nil
}

// channelOf is the LISTEN/NOTIFY channel of the schema: surge_changes for
// the default one (public), else named after it, or after its hash when
// that would pass PostgreSQL's 63 bytes (pg_notify refuses a longer
// name, LISTEN cuts it).
func channelOf(schema *string) string {
	const base = "surge_changes"
	if schema == nil || *schema == "" || *schema == "public" {
		return base
	}
	c := base + "_" + *schema
	if len(c) > 63 {
		c = fmt.Sprintf("%s_%x", base, sha256.Sum256([]byte(*schema)))[:63]
	}
	return c
}

// idleTimeoutSet reports whether the connection's parameters already set
// idle_in_transaction_session_timeout: by name, or in options (-c name=v
// or --name=v, as libpq's options and PGOPTIONS pass it).
func idleTimeoutSet(params map[string]string) bool {
	const name = "idle_in_transaction_session_timeout"
	if _, set := params[name]; set {
		return true
	}
	return strings.Contains(strings.ReplaceAll(params["options"], "-", "_"), name)
}

func migrateSchema(ctx context.Context, cfg *pgx.ConnConfig, after func(context.Context, *pgx.Conn) error, schema string, readOnly bool) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if after != nil {
		if err := after(ctx, conn); err != nil {
			return fmt.Errorf("postgres: connect: %w", err)
		}
	}
	if readOnly {
		return checkSchema(ctx, conn)
	}
	if schema != "" {
		// IF NOT EXISTS is not safe against a concurrent CREATE: nodes
		// starting together may see the catalog's unique violation, which
		// means another one created it.
		_, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42P06") {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("postgres: create schema %s: %w", schema, err)
		}
	}
	// A search_path (the URL's) naming no schema that exists leaves
	// nowhere to create the tables: say so, rather than PostgreSQL's "no
	// schema has been selected to create in".
	var current *string
	var path string
	if err := conn.QueryRow(ctx, `SELECT current_schema(), current_setting('search_path')`).Scan(&current, &path); err != nil {
		return fmt.Errorf("postgres: current schema: %w", err)
	}
	if current == nil {
		return fmt.Errorf("postgres: the search_path (%s) names no schema that exists: create it first (CREATE SCHEMA), or fix the URL", path)
	}
	m, err := newMigrator(ctx, conn)
	if err != nil {
		return err
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// checkSchema refuses, changing nothing, a database without Surge's schema
// (ErrNoSchema) or whose schema is of another version than this build's
// migrations (ErrSchemaVersion): Options.ReadOnly.
func checkSchema(ctx context.Context, conn *pgx.Conn) error {
	var found bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('surge_schema_version') IS NOT NULL`).Scan(&found); err != nil {
		return fmt.Errorf("postgres: look for Surge's schema: %w", err)
	}
	if !found {
		return ErrNoSchema
	}
	var version int32
	if err := conn.QueryRow(ctx, `SELECT version FROM surge_schema_version`).Scan(&version); err != nil {
		return fmt.Errorf("postgres: read the schema's version: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	files, err := migrate.FindMigrations(sub)
	if err != nil {
		return fmt.Errorf("postgres: list migrations: %w", err)
	}
	switch latest := int32(len(files)); {
	case version < latest:
		return fmt.Errorf("%w: it is at version %d, this version's is %d; a node of this version migrates it when it starts (this command changes nothing)",
			ErrSchemaVersion, version, latest)
	case version > latest:
		return fmt.Errorf("%w: it is at version %d, newer than this version's %d: use the surge of the nodes that migrated it",
			ErrSchemaVersion, version, latest)
	}
	return nil
}

// newMigrator returns the migrator of conn's schema (its search_path)
// with Surge's migrations loaded.
func newMigrator(ctx context.Context, conn *pgx.Conn) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, "surge_schema_version")
	if err != nil {
		return nil, fmt.Errorf("postgres: migrator: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := m.LoadMigrations(sub); err != nil {
		return nil, fmt.Errorf("postgres: load migrations: %w", err)
	}
	for _, mig := range m.Migrations {
		if !strings.Contains(mig.UpSQL, "disable-tx") {
			mig.UpSQL = "SET LOCAL lock_timeout = '" + migrateLockTimeout + "';\n" + mig.UpSQL
		}
	}
	return m, nil
}

// migrateLockTimeout bounds how long a migration waits for a lock (each
// runs in a transaction of its own, which sets it): its request queues
// ahead of every later one on the table, so while a long read (surge
// reconcile's view, an export of a large sale) held a table it alters,
// every insert and settle of the serving nodes waited behind it, past
// their call timeout. It then rolls back and Open tries it again after
// migrateLockRetry.
// migrateWaitLog is how often Open says it is still waiting.
const (
	migrateLockTimeout = "500ms"
	migrateLockRetry   = time.Second
	migrateWaitLog     = 30 * time.Second
)

// Close releases the pool.
func (d *DB) Close() { d.pool.Close() }

// Ping checks the server answers. With every connection of the pool busy
// past pingAcquireWait (a node under its heaviest load), it pings on a
// connection of its own, closed after: waiting for one of the pool's, the
// readiness probe (cluster's Ready) failed at its bound, and a load
// balancer took a healthy node out for being busy.
func (d *DB) Ping(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, pingAcquireWait)
	conn, err := d.pool.Acquire(actx)
	cancel()
	if err == nil {
		defer conn.Release()
		return conn.Ping(ctx)
	}
	if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	own, err := pgx.ConnectConfig(ctx, d.pool.Config().ConnConfig)
	if err != nil {
		return fmt.Errorf("postgres: ping (every pooled connection busy): %w", err)
	}
	defer own.Close(context.WithoutCancel(ctx))
	if err := own.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping (every pooled connection busy): %w", err)
	}
	return nil
}

// pingAcquireWait is how long Ping waits for a pooled connection before
// it makes one of its own: a busy pool's commits free one within
// milliseconds, so a longer wait means the pool is saturated.
const pingAcquireWait = 100 * time.Millisecond

// Now reads PostgreSQL's clock: the one every node's leader expires holds
// by, whichever node leads and whatever its own clock reads.
func (d *DB) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	if err := d.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("postgres: read the clock: %w", err)
	}
	return now, nil
}
