package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/payments"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/waitroom"
)

type serveConfig struct {
	httpAddr       string
	dataDir        string
	adminToken     string
	adminTokenFile string
	jwtSecret      string
	jwtSecretFile  string
	// jwtPreviousSecret is the HS256 secret a rotation replaced, still
	// accepted (never used to sign) until the operator drops it.
	jwtPreviousSecret     string
	jwtPreviousSecretFile string
	jwksFile              string
	jwksURL               string
	jwksRefresh           time.Duration
	jwtIssuer             string
	jwtAudience           string
	insecureUserHeader    bool
	logLevel              string
	logFormat             string
	accessLog             bool // one log line per request
	traceTrustParent      bool // a caller's traceparent sampled flag decides
	maxBatch              int
	queueSize             int
	shutdownTimeout       time.Duration
	idempotencyTTL        time.Duration // embedded mode: keys kept in memory
	ledgerImageMin        int           // embedded mode: orders in memory past which a stop writes the ledger image
	drainDelay            time.Duration
	heapFloorMiB          int // heapfloor.go
	debugAddr             string
	adminAddr             string

	natsURL string // order events to NATS JetStream (docs/events.md)

	// Cluster mode (docs/cluster.md): both set, or neither.
	redisURL, postgresURL  string
	redisPrefix, nodeID    string
	leaseTTL, confirmAfter time.Duration
	buckets                int
	inFlight               int

	// Waiting rooms (docs/protection.md).
	roomSecret     string
	roomSecretFile string
	roomMaxEntries int
	roomStreams    int
	// Open event streams per buyer and sale, and per client address.
	roomStreamsBuyer, roomStreamsAddr int

	// Traffic protection (docs/protection.md).
	rateIP, rateBuyer, rateSale    float64
	burstIP, burstBuyer, burstSale int
	trustedProxies                 string
	shed                           bool

	// Payments (docs/payments.md): the webhook's provider and secrets
	// (comma-separated: several during a rotation).
	payments                                       string
	paymentWebhookSecret, paymentWebhookSecretFile string

	// Connection caps (0: derived from RLIMIT_NOFILE).
	maxConns, maxConnsPerIP int

	// Upgrades on SIGUSR2 (upgrade.go); handover is nil when serve does
	// not own its process (tests, the demo).
	pidFile  string
	handover *handover

	// The configuration file (docs/configuration.md), and --print-config.
	configFile  string
	printConfig bool

	// Storefronts calling from the browser: comma-separated origins.
	corsOrigins string

	// The HTTP servers' timeouts: no flag; tests shorten them.
	timeouts httpTimeouts
}

// newServeConfig is serve's defaults, in one place: its flags show them,
// and the demo, which builds its config in code, starts from them. Those
// of a mechanism are its package's own (the engine's batch and inbox,
// the waiting room's bounds); the rest are the server's choices.
func newServeConfig() serveConfig {
	return serveConfig{
		httpAddr:         "127.0.0.1:8080",
		dataDir:          "./surge-data",
		logLevel:         "info",
		logFormat:        "text",
		maxBatch:         engine.DefaultMaxBatch,
		queueSize:        engine.DefaultInboxSize,
		shutdownTimeout:  30 * time.Second,
		idempotencyTTL:   sqlite.DefaultIdempotencyTTL,
		ledgerImageMin:   50_000,
		heapFloorMiB:     defaultHeapFloorMiB,
		burstIP:          40,
		rateBuyer:        5, // purchases per second per buyer
		burstBuyer:       10,
		burstSale:        1000,
		shed:             true,
		redisPrefix:      "surge",
		payments:         payments.Generic,
		roomMaxEntries:   waitroom.DefaultMaxEntries,
		roomStreams:      surgehttp.DefaultMaxQueueStreams,
		roomStreamsBuyer: surgehttp.DefaultMaxQueueStreamsPerBuyer,
		roomStreamsAddr:  surgehttp.DefaultMaxQueueStreamsPerAddress,
		inFlight:         1,
		buckets:          1,
		leaseTTL:         5 * time.Second,
		confirmAfter:     10 * time.Second,
		jwksRefresh:      surgehttp.DefaultJWKSRefresh,
		timeouts:         defaultHTTPTimeouts(),
	}
}

// register defines serve's flags on fs, each bound to its field of c.
// Every flag is also a key of the configuration file and a SURGE_*
// variable (loadServeConfig), with no more code than its line here.
func (c *serveConfig) register(fs *flagSet) {
	fs.StringVar(&c.configFile, "config", c.configFile, "YAML (.yaml, .yml) or TOML (.toml) file of settings, one key per flag; flags and SURGE_* variables override it; SIGHUP re-reads it (docs/configuration.md)")
	fs.BoolVar(&c.printConfig, "print-config", c.printConfig, "print the effective configuration (secrets masked) and exit")
	fs.StringVar(&c.httpAddr, "http-addr", c.httpAddr, "address to serve the API on (port 0 picks a free port)")
	fs.StringVar(&c.dataDir, "data-dir", c.dataDir, "directory of the embedded database")
	fs.StringVar(&c.adminToken, "admin-token", c.adminToken, "bearer token for admin endpoints (generated and printed once if empty)")
	fs.StringVar(&c.adminTokenFile, "admin-token-file", c.adminTokenFile, "file holding the admin token (a trailing newline is dropped); keeps it out of the command line")
	fs.StringVar(&c.jwtSecret, "jwt-secret", c.jwtSecret, "HS256 secret (at least 32 bytes) that signs buyer JWTs (sub = user id, exp required)")
	fs.StringVar(&c.jwtSecretFile, "jwt-secret-file", c.jwtSecretFile, "file holding the HS256 secret of buyer JWTs (a trailing newline is dropped)")
	fs.StringVar(&c.jwtPreviousSecret, "jwt-previous-secret", c.jwtPreviousSecret, "during a rotation of --jwt-secret, the secret it replaced: buyer JWTs signed with it are still accepted (needs --jwt-secret)")
	fs.StringVar(&c.jwtPreviousSecretFile, "jwt-previous-secret-file", c.jwtPreviousSecretFile, "file holding the previous HS256 secret of a rotation (a trailing newline is dropped)")
	fs.StringVar(&c.jwksFile, "jwks-file", c.jwksFile, "JWKS file of the public keys that sign buyer JWTs: Ed25519 keys verify EdDSA, RSA keys RS256, P-256 keys ES256; the token's kid picks the key (read again on reload)")
	fs.StringVar(&c.jwksURL, "jwks-url", c.jwksURL, "URL of the JWKS (an identity provider's jwks_uri) whose keys sign buyer JWTs; fetched at start, again every --jwks-refresh, and at once (at most every 30s) for a token whose kid it lacks; instead of --jwks-file")
	fs.DurationVar(&c.jwksRefresh, "jwks-refresh", c.jwksRefresh, "how often the --jwks-url key set is fetched again (at least 30s)")
	fs.StringVar(&c.jwtIssuer, "jwt-issuer", c.jwtIssuer, "if set, buyer JWTs must carry this iss claim")
	fs.StringVar(&c.jwtAudience, "jwt-audience", c.jwtAudience, "if set, buyer JWTs must carry this aud claim (or list it)")
	fs.BoolVar(&c.insecureUserHeader, "insecure-user-header", c.insecureUserHeader, "trust the X-User-ID header as the buyer (development and benchmarks only)")
	fs.StringVar(&c.logLevel, "log-level", c.logLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", c.logFormat, "log format: text or json")
	fs.BoolVar(&c.accessLog, "access-log", c.accessLog, "log one line per request (method, path, status, bytes, duration, request and trace ids, client address); off by default: a spike would write a line per purchase")
	fs.BoolVar(&c.traceTrustParent, "trace-trust-parent", c.traceTrustParent, "with tracing on, keep a request's span exactly when its traceparent's sampled flag says so; only behind a gateway that sets (or strips) every request's traceparent, listed in --trusted-proxies: otherwise any client could have its requests traced")
	fs.IntVar(&c.maxBatch, "max-batch", c.maxBatch, "most purchases one batch commits (1 to 1048576; a batch never holds more than --queue-size plus one)")
	fs.IntVar(&c.queueSize, "queue-size", c.queueSize, "per-sale inbox of purchases waiting for a batch (1 to 1048576); a full inbox answers 503")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", c.shutdownTimeout, "how long a graceful shutdown waits for in-flight requests")
	fs.DurationVar(&c.idempotencyTTL, "idempotency-ttl", c.idempotencyTTL, "embedded mode: how long after a purchase the Idempotency-Key of an order no longer reserved or paid stays in memory; older keys are answered from disk (a key never buys twice)")
	fs.IntVar(&c.ledgerImageMin, "ledger-image-min", c.ledgerImageMin, "embedded mode: when the sales keep at least this many orders in memory, a clean stop (and the server itself, once idle after that many changes) writes their live state to surge.ledger, so that the next start, after a stop or a crash, replays only the orders and settles after it (0: never)")
	fs.IntVar(&c.heapFloorMiB, "heap-floor-mib", c.heapFloorMiB, "MiB the Go heap counts as live however little it holds, so that a fresh server hit by a spike does not collect its small heap dozens of times a second; the block is never written and costs no resident memory, but between two collections the heap may now hold up to that much more garbage (0: off)")
	fs.DurationVar(&c.drainDelay, "drain-delay", c.drainDelay, "on SIGTERM, how long /readyz answers 503 while everything else is still served, before the listener closes (so a load balancer notices first)")
	fs.Float64Var(&c.rateIP, "rate-limit-ip", c.rateIP, "requests per second per client address (0: off; see --trusted-proxies)")
	fs.IntVar(&c.burstIP, "rate-limit-ip-burst", c.burstIP, "burst of the per-address limit")
	fs.Float64Var(&c.rateBuyer, "rate-limit-buyer", c.rateBuyer, "purchases per second per buyer (0: off)")
	fs.IntVar(&c.burstBuyer, "rate-limit-buyer-burst", c.burstBuyer, "burst of the per-buyer limit")
	fs.Float64Var(&c.rateSale, "rate-limit-sale", c.rateSale, "purchases per second each sale admits to its queue (0: off)")
	fs.IntVar(&c.burstSale, "rate-limit-sale-burst", c.burstSale, "burst of the per-sale admission rate")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", c.trustedProxies, "comma-separated CIDRs of proxies whose X-Forwarded-For is believed")
	fs.IntVar(&c.maxConns, "max-conns", c.maxConns, "most connections open on the API listener at once; at the cap idle keep-alive ones are closed first (0: 3/4 of the open-file limit, at most 32768)")
	fs.IntVar(&c.maxConnsPerIP, "max-conns-per-ip", c.maxConnsPerIP, "most connections open from one client address (IPv6: /64), --trusted-proxies exempt; more are answered 429 and closed (0: a quarter of --max-conns, at most 1024)")
	fs.BoolVar(&c.shed, "shed", c.shed, "adaptive load shedding of purchases waiting on the store (503 overloaded)")
	fs.StringVar(&c.debugAddr, "debug-addr", c.debugAddr, "if set, serve pprof on this separate address (keep it private)")
	fs.StringVar(&c.redisURL, "redis-url", c.redisURL, "cluster mode: Redis holding the live stock, e.g. redis://127.0.0.1:6379/0 (with --postgres-url)")
	fs.StringVar(&c.postgresURL, "postgres-url", c.postgresURL, "cluster mode: PostgreSQL holding sales and orders, e.g. postgres://user@127.0.0.1:5432/db (with --redis-url)")
	fs.StringVar(&c.redisPrefix, "redis-prefix", c.redisPrefix, "cluster mode: prefix of every Redis key, so several deployments can share a Redis")
	fs.StringVar(&c.nodeID, "node-id", c.nodeID, "cluster mode: this node's name in leases and logs (default: random)")
	fs.StringVar(&c.payments, "payments", c.payments, "payment webhook scheme: surge (Surge-Signature, Surge's event body) or stripe (Stripe-Signature, Stripe's events, verified with stripe-go)")
	fs.StringVar(&c.paymentWebhookSecret, "payment-webhook-secret", c.paymentWebhookSecret, "HMAC secret(s) of POST /v1/payments/webhook, comma-separated during a rotation, each at least 16 bytes; unset: no webhook")
	fs.StringVar(&c.paymentWebhookSecretFile, "payment-webhook-secret-file", c.paymentWebhookSecretFile, "file holding the payment webhook secret(s) (a trailing newline is dropped)")
	fs.StringVar(&c.roomSecret, "waiting-room-secret", c.roomSecret, "HMAC key (at least 32 bytes) of waiting-room tickets; every node must share it (default: random per process, so tickets die with it)")
	fs.StringVar(&c.roomSecretFile, "waiting-room-secret-file", c.roomSecretFile, "file holding the HMAC key of waiting-room tickets (a trailing newline is dropped)")
	fs.IntVar(&c.roomMaxEntries, "waiting-room-max-entries", c.roomMaxEntries, "most buyers one sale's waiting room holds")
	fs.IntVar(&c.roomStreams, "waiting-room-streams", c.roomStreams, "most waiting-room event streams open at once")
	fs.IntVar(&c.roomStreamsBuyer, "waiting-room-streams-per-buyer", c.roomStreamsBuyer, "most waiting-room event streams one buyer holds open in one sale")
	fs.IntVar(&c.roomStreamsAddr, "waiting-room-streams-per-address", c.roomStreamsAddr, "most waiting-room event streams one client address (IPv6: its /64) holds open")
	fs.IntVar(&c.inFlight, "cluster-in-flight", c.inFlight, "cluster mode: batches of one sale at Redis and PostgreSQL at once")
	fs.IntVar(&c.buckets, "cluster-buckets", c.buckets, "cluster mode: Redis slots the stock of each new sale is split over (for sales too hot for one Redis Cluster shard; 1-1024)")
	fs.DurationVar(&c.leaseTTL, "cluster-lease-ttl", c.leaseTTL, "cluster mode: how long the leader's lease lasts unrenewed; a dead leader's jobs move to another node after it")
	fs.DurationVar(&c.confirmAfter, "cluster-confirm-after", c.confirmAfter, "cluster mode: age at which the leader checks that a reservation in Redis reached PostgreSQL, and returns its units if not")
	fs.StringVar(&c.natsURL, "nats-url", c.natsURL, "if set, publish every order change to this NATS server's JetStream (stream SURGE_ORDERS, subjects surge.orders.<sale>.<event>), e.g. nats://127.0.0.1:4222; purchases never wait on it (docs/events.md)")
	fs.StringVar(&c.adminAddr, "admin-addr", c.adminAddr, "if set, serve the admin endpoints (and pprof) only on this private address; the public API then hides them and ignores the admin token")
	fs.StringVar(&c.pidFile, "pid-file", c.pidFile, "file to write the serving process's pid to; an upgrade (SIGUSR2) rewrites it with the new process's, a clean stop removes it")
	fs.StringVar(&c.corsOrigins, "cors-origins", c.corsOrigins, "comma-separated exact origins (e.g. https://shop.example.com) whose pages may call the API from the browser (CORS); no wildcard")
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// SIGHUP reloads from now on instead of ending the process (its
	// default), even while the server starts.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	l, err := loadServeConfig(args, stdout)
	if err != nil {
		return err
	}
	if l.c.printConfig {
		return printConfig(stdout, l)
	}
	c := l.c
	floor := heapFloor(c.heapFloorMiB)
	defer runtime.KeepAlive(floor)
	log, logs, err := newLogger(stderr, c.logLevel, c.logFormat)
	if err != nil {
		return err
	}
	l.warnShadowed(log)
	// The old process of an upgrade may stop the service while this one
	// starts or serves (handover.stop): this one then stops as on SIGTERM.
	ctx, stopAsked := context.WithCancel(ctx)
	defer stopAsked()
	if c.handover, err = newHandover(ctx, c.pidFile, log, stopAsked); err != nil {
		return err
	}
	defer c.handover.removePIDFile() // last: the store is closed by then
	// The new process of an upgrade serves beside the old one for a moment:
	// a name of its own keeps them from both holding the leader's lease.
	c.nodeID = c.handover.nodeID(c.nodeID)
	if c.adminToken == "" {
		if c.adminToken = c.handover.handedToken(); c.adminToken == "" {
			var b [24]byte
			_, _ = rand.Read(b[:])
			c.adminToken = hex.EncodeToString(b[:])
			fmt.Fprintf(stdout, "admin token (generated; pass --admin-token or SURGE_ADMIN_TOKEN to keep one): %s\n", c.adminToken)
		}
		// No source names it: an upgrade hands it over.
		c.handover.handToken(c.adminToken)
	}
	c.warnBuyerAuth(log)

	srv, err := startServer(ctx, c, log)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// SIGINT/SIGTERM before the node served (while an upgrade's new
		// process waited for the data directory, or the store loaded): a
		// stop, not a failed start. An upgrade's old process may still
		// drain: it goes first (see waitParent).
		log.Info("stopped before serving")
		c.handover.waitParent(c.shutdownTimeout + lockWaitMargin)
		c.handover.stop()
		return nil
	}
	if err != nil {
		// A refusal to start (data directory in use, a database behind
		// what it confirmed, a damaged one) goes to the log too, where a
		// supervisor's operator looks first; the exit status is 1.
		if ue := (errUsage{}); !errors.As(err, &ue) {
			log.Error("surge cannot start", "err", err)
		}
		c.handover.stop()
		return err
	}
	srv.logs = logs
	srv.loaded = &l.c
	if c.configFile != "" && c.handover.upgrading() {
		// The file was read when this process began; the old one served
		// on while this one started (in embedded mode, until it drained),
		// and a SIGHUP it got meanwhile dies with it (systemd's reload
		// signals the old pid until it exits). What the file says now is
		// what the operator asked for.
		if nl, err := loadServeConfig(args, io.Discard); err != nil || !maps.Equal(nl.c.settings(), l.c.settings()) {
			log.Info("upgrade: the config file changed while this process started; reloading it")
			srv.reload(args)
		}
	}
	c.handover.watch(ctx, c.shutdownTimeout+lockWaitMargin)
	fmt.Fprintf(stdout, "surge serving on %s\n", srv.url())
	var serveErr error
	var stopIn *time.Duration // shutdown's wait for connections, if not the configured one
	// handOver finishes the connections, and leaves the shutdown after it
	// what remains of the same --shutdown-timeout: the process drains for
	// at most that long in all, as the new process of an upgrade counts on
	// (lockWait). Given a timeout each, a request still in flight (an
	// order export to a slow reader) held an upgrade's old process for
	// twice as long, the new one gave up waiting for the data directory
	// first, and nothing served.
	handOver := func() {
		timeout := srv.config().shutdownTimeout
		began := time.Now()
		srv.handOver(timeout)
		left := max(timeout-time.Since(began), 0)
		stopIn = &left
	}
wait:
	for {
		select {
		case serveErr = <-srv.errc:
			break wait
		case <-hup:
			srv.reload(args)
		case <-c.handover.done():
			// No drain delay: the listening sockets stay open in the new
			// process, so a load balancer has nothing to notice.
			log.Info("upgrade: a new process took over the listeners; draining in-flight requests")
			srv.handingOver.Store(true)
			handOver()
			break wait
		case <-ctx.Done():
			c.handover.stop()
			srv.drain(srv.config().drainDelay)
			log.Info("shutting down: draining in-flight requests (a second SIGINT or SIGTERM stops at once)")
			// As a handover does: Shutdown alone would close without an
			// answer a request still arriving when it began (see handOver).
			handOver()
			break wait
		}
	}
	// From here a SIGHUP reloads nothing: say so rather than drop it
	// (after an upgrade the new process, which the pid file names, reads
	// the file; a SIGHUP to this pid is systemd's reload until it exits).
	stopping := make(chan struct{})
	defer close(stopping)
	go func() {
		stop := ctx.Done()
		for {
			select {
			case <-hup:
				log.Warn("SIGHUP while stopping (SIGTERM, or an upgrade's new process took over): not reloaded here; a new process applies the config file as it is when it starts serving, and takes SIGHUP from then on (the pid file names it)")
			case <-stop:
				// SIGINT/SIGTERM while this process drains after a handover:
				// it is still the supervisor's main pid (systemd's until it
				// exits), so the stop is the service's: the new process stops
				// too, and this one waits for it (waitChild).
				stop = nil
				c.handover.stop()
			case <-stopping:
				return
			}
		}
	}()
	timeout := srv.config().shutdownTimeout
	if stopIn != nil {
		timeout = *stopIn
	}
	if err := srv.shutdown(timeout); err != nil {
		return err
	}
	if serveErr == nil && ctx.Err() != nil {
		// Stopped by a signal: in cluster mode an upgrade's old process
		// may still drain beside this one; and a new process this one
		// told to stop too may still be stopping.
		c.handover.waitParent(srv.config().shutdownTimeout + lockWaitMargin)
		c.handover.waitChild(srv.config().shutdownTimeout + lockWaitMargin)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	log.Info("stopped cleanly")
	return nil
}

// warnBuyerAuth logs the warnings of the buyer authentication c sets up:
// at start, and again on each reload that applies it (insecure-user-header
// and the buyer keys are live settings).
func (c *serveConfig) warnBuyerAuth(log *slog.Logger) {
	if c.insecureUserHeader {
		log.Warn("--insecure-user-header is on: any client can act as any buyer by sending X-User-ID; never use it in production")
	}
	if c.jwtSecret == "" && c.jwksFile == "" && c.jwksURL == "" && !c.insecureUserHeader {
		log.Warn("no buyer authentication configured: set --jwt-secret, --jwks-file or --jwks-url so buyers can purchase")
	}
	if host, ok := plainHTTPRemote(c.jwksURL); ok {
		// Refusing it would break the starts that use it; the operator
		// must at least be told.
		log.Warn("--jwks-url fetches the buyers' keys over plain HTTP from another host: anyone on the path can swap them and sign tokens for any buyer; use https://",
			"host", host)
	}
}

// plainHTTPRemote reports whether raw is an http:// URL of a host other
// than the loopback, and that host (never the rest of the URL, which may
// hold a credential).
func plainHTTPRemote(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "http") {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return "", false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return "", false
	}
	return u.Host, true
}

// validate checks the settings and reads the secret and key files: what
// it accepts starts (or, on SIGHUP, reloads).
func (c *serveConfig) validate() error {
	if _, _, err := newLogger(io.Discard, c.logLevel, c.logFormat); err != nil {
		return err
	}
	if c.maxBatch < 1 || c.queueSize < 1 || c.shutdownTimeout <= 0 {
		return errUsage{"serve: --max-batch, --queue-size and --shutdown-timeout must be positive"}
	}
	if c.maxBatch > engine.MaxInboxSize {
		return errUsage{fmt.Sprintf("serve: --max-batch must be at most %d (got %d): a batch never holds more than --queue-size plus one", engine.MaxInboxSize, c.maxBatch)}
	}
	if c.queueSize > engine.MaxInboxSize {
		return errUsage{fmt.Sprintf("serve: --queue-size must be at most %d (got %d): each sale's inbox is allocated whole", engine.MaxInboxSize, c.queueSize)}
	}
	if c.idempotencyTTL <= 0 {
		return errUsage{"serve: --idempotency-ttl must be positive"}
	}
	if c.ledgerImageMin < 0 {
		return errUsage{"serve: --ledger-image-min must not be negative"}
	}
	if c.drainDelay < 0 {
		return errUsage{"serve: --drain-delay must not be negative"}
	}
	if c.heapFloorMiB < 0 || c.heapFloorMiB > maxHeapFloorMiB {
		return errUsage{fmt.Sprintf("serve: --heap-floor-mib must be between 0 and %d", maxHeapFloorMiB)}
	}
	if c.maxConns < 0 || c.maxConnsPerIP < 0 {
		return errUsage{"serve: --max-conns and --max-conns-per-ip must not be negative"}
	}
	// A bound given as 0 is refused: neither the help nor the docs give
	// it a meaning, and the packages would read it as their default (a
	// million entries). Only a config built in code (the demo's), which
	// is never validated, takes zero as "the default".
	for _, b := range []struct {
		name string
		v    int
	}{
		{"waiting-room-max-entries", c.roomMaxEntries}, {"waiting-room-streams", c.roomStreams},
		{"waiting-room-streams-per-buyer", c.roomStreamsBuyer}, {"waiting-room-streams-per-address", c.roomStreamsAddr},
	} {
		if b.v < 1 {
			return errUsage{fmt.Sprintf("serve: --%s must be at least 1 (got %d)", b.name, b.v)}
		}
	}
	// What listen would refuse (a port that is no number or service, one
	// above 65535, no port at all) is a bad value like any other: refused
	// here, so that --print-config and SIGHUP do not accept a file the
	// next start or upgrade cannot listen with.
	listeners := []struct{ name, addr string }{{"http-addr", c.httpAddr}, {"admin-addr", c.adminAddr}, {"debug-addr", c.debugAddr}}
	for i, a := range listeners {
		if a.addr == "" && a.name != "http-addr" {
			continue
		}
		if err := checkListenAddr(a.addr); err != nil {
			return errUsage{fmt.Sprintf("serve: --%s %q: %v", a.name, a.addr, err)}
		}
		// Two listeners on one address: the start failed at the second
		// listen with "address already in use", naming no flag.
		for _, b := range listeners[:i] {
			if b.addr != "" && listenOverlap(a.addr, b.addr) {
				return errUsage{fmt.Sprintf("serve: --%s %q and --%s %q are the same address: each listener needs its own", a.name, a.addr, b.name, b.addr)}
			}
		}
	}
	if err := checkPIDFile(c.pidFile); err != nil {
		return err
	}
	if err := c.readSecrets(); err != nil {
		return err
	}
	if c.jwtPreviousSecret != "" && c.jwtSecret == "" {
		// A rotation replaces a secret: without a current one, nothing
		// signs the tokens that the previous one will stop verifying.
		return errUsage{"serve: --jwt-previous-secret needs --jwt-secret (the secret that replaced it)"}
	}
	// What the start would refuse, refused here too: --print-config and
	// SIGHUP check a file with this, and a refusal must come before the
	// start has created anything.
	if _, err := c.paymentConfig(); err != nil {
		return errUsage{"serve: " + err.Error()}
	}
	if (c.redisURL == "") != (c.postgresURL == "") {
		return errUsage{"serve: cluster mode needs both --redis-url and --postgres-url"}
	}
	if c.redisURL != "" {
		// As the start parses them, so that --print-config and SIGHUP do
		// not accept what the next start refuses.
		if err := redis.CheckURL(c.redisURL); err != nil {
			return errUsage{fmt.Sprintf("serve: --redis-url: %v", err)}
		}
		if err := postgres.CheckURL(c.postgresURL); err != nil {
			return errUsage{fmt.Sprintf("serve: --postgres-url: %v", err)}
		}
	}
	if c.buckets < 1 || c.buckets > 1024 {
		return errUsage{"serve: --cluster-buckets must be between 1 and 1024"}
	}
	if c.inFlight < 1 || c.leaseTTL <= 0 || c.confirmAfter <= 0 {
		return errUsage{"serve: --cluster-in-flight, --cluster-lease-ttl and --cluster-confirm-after must be positive"}
	}
	if err := checkNATSURL(c.natsURL); err != nil {
		return err
	}
	if _, err := c.buyerAuth(); err != nil {
		return errUsage{fmt.Sprintf("serve: --jwks-file: %v", err)}
	}
	if c.jwksURL != "" && c.jwksFile != "" {
		return errUsage{"serve: give --jwks-url or --jwks-file, not both"}
	}
	if c.jwksURL != "" && c.jwksRefresh < surgehttp.MinJWKSRefresh {
		// Each refresh is a request to the key server, from every node.
		return errUsage{fmt.Sprintf("serve: --jwks-refresh %v is too short: the key server would be fetched that often; want at least %v (default %v)",
			c.jwksRefresh, surgehttp.MinJWKSRefresh, surgehttp.DefaultJWKSRefresh)}
	}
	if _, err := c.limits(); err != nil {
		return errUsage{"serve: " + err.Error()}
	}
	if _, err := c.corsOriginList(); err != nil {
		return err
	}
	return nil
}

// checkPIDFile refuses a --pid-file whose directory is missing: the start
// found out only once it served (tableflip writes the file then), after it
// had created the data directory, naming a temporary file of its own
// rather than the setting.
func checkPIDFile(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	why := ""
	switch st, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		why = "does not exist"
	case err != nil:
		why = err.Error()
	case !st.IsDir():
		why = "is not a directory"
	default:
		return nil
	}
	return errUsage{fmt.Sprintf("serve: --pid-file %s: its directory %s %s", path, dir, why)}
}

// checkListenAddr checks a listen address as net.Listen parses it,
// without listening: host:port, the port a number up to 65535 or a
// service name. Whether the host resolves, or the port is free, is the
// start's to find out.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return err
	}
	return nil
}

// listenOverlap reports whether listening on a and on b (both accepted
// by checkListenAddr) would take the same socket: the same port, not 0,
// and the same host, or one of them every address (no host, 0.0.0.0 or
// ::) that holds the other. A host name is taken as the address the
// start would listen on (listenIP), or, when it does not resolve, as one of
// this machine's addresses, which it must be to be listened on.
func listenOverlap(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := net.LookupPort("tcp", pa)
	nb, _ := net.LookupPort("tcp", pb)
	if na == 0 || na != nb {
		return false
	}
	if strings.EqualFold(ha, hb) {
		return true
	}
	ipA, ipB := listenIP(ha), listenIP(hb)
	if ipA != nil && ipB != nil && ipA.Equal(ipB) {
		return true
	}
	return covers(ha, ipB) || covers(hb, ipA)
}

// listenIP is the address a listener on host takes: host when it is an
// address, else the one of the name's that the start's listen takes (its
// first IPv4 address, else its first): localhost:8080 and 127.0.0.1:8080
// are one socket. nil for no host, or a name that does not resolve within
// lookupWait (the start finds that out).
func listenIP(host string) net.IP {
	if ip := net.ParseIP(host); ip != nil || host == "" {
		return ip
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupWait)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return nil
	}
	for _, a := range addrs {
		if ip := a.IP.To4(); ip != nil {
			return ip
		}
	}
	return addrs[0].IP
}

// lookupWait bounds listenIP's lookup of a name: a reload's check must
// not hang on a DNS server that does not answer.
const lookupWait = time.Second

// covers reports whether a listener on host (every address when it is
// unspecified) takes the address ip, or a host name when ip is nil. Go
// listens on both IPv4 and IPv6 for no host and for ::.
func covers(host string, ip net.IP) bool {
	switch {
	case host == "" || host == "::":
		return true
	case host == "0.0.0.0":
		return ip == nil || ip.To4() != nil
	}
	return false
}

// checkNATSURL checks each server of --nats-url as nats.Connect parses
// it (comma-separated; nats:// when no scheme is given), without quoting
// it: it may hold a password.
func checkNATSURL(v string) error {
	if v == "" {
		return nil
	}
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSuffix(strings.TrimSpace(s), "/")
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		if _, err := url.Parse(s); err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return errUsage{"serve: --nats-url: a server URL does not parse: " + err.Error()}
		}
	}
	return nil
}

// Floors of the secrets: a guessable admin token or JWT secret hands out
// every order (RFC 7518 §3.2 asks HS256 keys of at least 256 bits).
const (
	minAdminToken = 16
	minJWTSecret  = 32
	// Stripe's own webhook secrets (whsec_…) are far longer.
	minWebhookSecret = 16
)

// paymentConfig is the webhook's configuration from the flags: the
// provider, and the secrets of a rotation, each long enough.
func (c serveConfig) paymentConfig() (surgehttp.Payments, error) {
	if c.payments != payments.Generic && c.payments != payments.Stripe {
		return surgehttp.Payments{}, fmt.Errorf("--payments must be %s or %s, not %q", payments.Generic, payments.Stripe, c.payments)
	}
	p := surgehttp.Payments{Provider: c.payments}
	if c.paymentWebhookSecret == "" {
		return p, nil
	}
	for sec := range strings.SplitSeq(c.paymentWebhookSecret, ",") {
		if sec = strings.TrimSpace(sec); len(sec) < minWebhookSecret {
			return surgehttp.Payments{}, fmt.Errorf("each --payment-webhook-secret must be at least %d bytes (one is %d)", minWebhookSecret, len(sec))
		}
		p.Secrets = append(p.Secrets, sec)
	}
	return p, nil
}

// readSecrets reads the secret files and refuses weak secrets. Files (or
// SURGE_ADMIN_TOKEN, SURGE_JWT_SECRET) keep secrets out of the command
// line, which any local user can read in /proc.
func (c *serveConfig) readSecrets() error {
	for _, sec := range []struct {
		name string
		val  *string
		file string
		min  int
		unit string
		size func(string) int
	}{
		// Empty stays allowed: a generated admin token, no HS256.
		{"admin-token", &c.adminToken, c.adminTokenFile, minAdminToken, "characters", utf8.RuneCountInString},
		{"jwt-secret", &c.jwtSecret, c.jwtSecretFile, minJWTSecret, "bytes", func(s string) int { return len(s) }},
		{"jwt-previous-secret", &c.jwtPreviousSecret, c.jwtPreviousSecretFile, minJWTSecret, "bytes", func(s string) int { return len(s) }},
		{"payment-webhook-secret", &c.paymentWebhookSecret, c.paymentWebhookSecretFile, minWebhookSecret, "bytes", func(s string) int { return len(s) }},
		{"waiting-room-secret", &c.roomSecret, c.roomSecretFile, waitroom.MinSecretLen, "bytes", func(s string) int { return len(s) }},
	} {
		what := "--" + sec.name
		if sec.file != "" {
			if *sec.val != "" {
				return errUsage{fmt.Sprintf("serve: give %s or %s-file, not both", what, what)}
			}
			b, err := os.ReadFile(sec.file)
			if err != nil {
				return errUsage{fmt.Sprintf("serve: %s-file: %v", what, err)}
			}
			// Editors and echo end files with a newline; it is no part of
			// the secret. Other bytes are kept as they are.
			v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if n := sec.size(v); n < sec.min {
				return errUsage{fmt.Sprintf("serve: %s-file must hold at least %d %s (it holds %d)", what, sec.min, sec.unit, n)}
			}
			*sec.val = v
		} else if n := sec.size(*sec.val); n > 0 && n < sec.min {
			return errUsage{fmt.Sprintf("serve: %s must be at least %d %s (got %d); generate one with: openssl rand -hex 32", what, sec.min, sec.unit, n)}
		}
		if sec.name == "admin-token" && !headerSafe(*sec.val) {
			return errUsage{fmt.Sprintf("serve: %s must not end in white space or hold control characters: no request could present it (an HTTP server drops the spaces at a header's end)", what)}
		}
	}
	return nil
}

// headerSafe reports whether v reaches the server intact at the end of an
// Authorization header: no control character but a tab, and no space or
// tab at its end, which RFC 9110 §5.5 has the server drop.
func headerSafe(v string) bool {
	if strings.HasSuffix(v, " ") || strings.HasSuffix(v, "\t") {
		return false
	}
	for _, r := range v {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return false
		}
	}
	return true
}

// buyerAuth returns the buyer-token settings of the flags, with the JWKS
// file loaded and checked.
func (c serveConfig) buyerAuth() (surgehttp.BuyerAuth, error) {
	b := surgehttp.BuyerAuth{Issuer: c.jwtIssuer, Audience: c.jwtAudience}
	if c.jwksFile != "" {
		ks, err := surgehttp.LoadJWKS(c.jwksFile)
		if err != nil {
			return surgehttp.BuyerAuth{}, err
		}
		b.JWKS, b.JWKSFile = ks, c.jwksFile
	}
	return b, nil
}

// newLogger returns serve's logger and the switch that changes its level
// and format while it runs (SIGHUP).
func newLogger(w io.Writer, level, format string) (*slog.Logger, *logSwitch, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, errUsage{fmt.Sprintf("serve: invalid --log-level %q (use debug, info, warn or error)", level)}
	}
	if format != "text" && format != "json" {
		return nil, nil, errUsage{fmt.Sprintf("serve: invalid --log-format %q (use text or json)", format)}
	}
	sw := &logSwitch{}
	sw.level.Set(lv)
	sw.json.Store(format == "json")
	opts := &slog.HandlerOptions{Level: &sw.level}
	// LogHandler: records logged with a request's context carry its
	// request and trace ids.
	h := switchHandler{sw: sw,
		text: surgehttp.LogHandler(slog.NewTextHandler(w, opts)),
		json: surgehttp.LogHandler(slog.NewJSONHandler(w, opts))}
	return slog.New(h), sw, nil
}
