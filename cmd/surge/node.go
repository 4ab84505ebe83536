package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/rpc"
	"github.com/surgehq/surge/tracing"
	"github.com/surgehq/surge/version"
	"github.com/surgehq/surge/waitroom"
)

// server is a running Surge node: store, engine and HTTP API.
type server struct {
	store surge.Store
	eng   *engine.Engine
	http  *http.Server
	debug *http.Server
	admin *http.Server
	addr  net.Addr
	errc  chan error // the API server's Serve result
	// conns is the API listener, set once it listens (after the private
	// listeners, whose /metrics and /debug/stats read it).
	conns atomic.Pointer[surgehttp.ConnLimiter]
	// The private listeners (nil when not asked for), bounded too.
	adminConns, debugConns *surgehttp.ConnLimiter
	log                    *slog.Logger

	// lns are the listening sockets; open and adminOpen count the
	// connections of the API and admin servers (a handover waits for
	// them to close, upgrade.go); debugOpen holds the debug server's,
	// whose HTTP/2 writes it bounds as the others'.
	lns                        listeners
	open, adminOpen, debugOpen openConns

	tracing *tracing.Provider // flushed at shutdown

	// What SIGHUP changes (reload.go): the configuration in force, and
	// the parts that read it.
	cfg                 atomic.Pointer[serveConfig]
	loaded              *serveConfig // as loaded, before the start derived values (a generated admin token, the node id of an upgrade)
	reloads             *metrics.ConfigReloads
	logs                *logSwitch
	api                 *surgehttp.Server
	room                *waitroom.Room
	queues              waitroom.Backend
	roomKeys            roomKeys    // the generated ticket keys an embedded upgrade hands over with the rooms (rooms.go)
	handingOver         atomic.Bool // a new process took over: shutdown leaves it the rooms
	requests            []observedListener
	ipRate, adminIPRate *admission.Keyed
	remote              *surgehttp.RemoteJWKS // --jwks-url's set, kept across reloads
	buyerRate, saleRate *rateSwitch
	shed                *atomic.Bool
	// warnRoom warns (once) that waiting-room tickets die with the process
	// when no --waiting-room-secret is set: at start if a sale has a
	// waiting room, or when one with a waiting room is created here.
	warnRoom func()

	stopRelay func(within context.Context) // the order events' relay; nil without --nats-url
	// endStreams ends the open event streams (queue, dashboard, gRPC
	// WatchSale): a handover waits for every connection to close, and a
	// stream closes only when its client leaves.
	endStreams []func()

	// Readiness (/readyz): draining after SIGTERM; storeDown is why the
	// store's last probe failed, nil when it passed.
	draining  atomic.Bool
	storeDown atomic.Pointer[string]
	watchStop context.CancelFunc
	watchCtx  context.Context // ends with watchStop: the background work of reloads (refreshRemote)
	watched   sync.WaitGroup
}

// How often and how patiently the store's health is probed for /readyz.
const (
	probeEvery   = time.Second
	probeTimeout = time.Second
)

// watchStore probes the store now, before the node listens, and then
// every probeEvery: a load balancer polling /readyz must not pay for a
// round trip to Redis and PostgreSQL on each poll, nor make the node
// pay for a flood of polls.
func (s *server) watchStore(ctx context.Context, ready func(context.Context) error) {
	s.probe(ctx, ready)
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.watchStop, s.watchCtx = stop, bg
	s.watched.Go(func() {
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-t.C:
				s.probe(bg, ready)
			}
		}
	})
}

func (s *server) probe(ctx context.Context, ready func(context.Context) error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	err := ready(ctx)
	cancel()
	if err != nil {
		why := "the store is unavailable"
		if s.storeDown.Swap(&why) == nil {
			s.log.Warn("not ready: the store is unavailable", "err", err)
		}
		return
	}
	if s.storeDown.Swap(nil) != nil {
		s.log.Info("ready again: the store answers")
	}
}

// stopWatch stops the probes, waiting for one in flight within ctx (the
// shutdown timeout): a probe of a stalled Redis waits out the client's
// read timeout, which does not heed the probe's context.
func (s *server) stopWatch(ctx context.Context) {
	s.watchStop()
	done := make(chan struct{})
	go func() { defer close(done); s.watched.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// drain turns /readyz to 503 at once and keeps serving everything else
// for delay, so a load balancer stops sending traffic before the
// listener closes.
func (s *server) drain(delay time.Duration) {
	s.draining.Store(true)
	if delay > 0 {
		s.log.Info("draining: /readyz answers 503; still serving", "for", delay)
		time.Sleep(delay)
	}
}

// readyEngine is the engine as the API sees it: /readyz also reports the
// node's draining and the store's health.
type readyEngine struct {
	*engine.Engine
	s *server
}

func (e readyEngine) Ready() bool { return e.NotReady() == "" }

// CreateSale creates the sale, and warns about the waiting-room ticket
// key when the sale has a waiting room and none was configured.
func (e readyEngine) CreateSale(ctx context.Context, in surge.SaleInput) (engine.SaleState, error) {
	st, err := e.Engine.CreateSale(ctx, in)
	if err == nil && st.WaitingRoom != nil {
		e.s.warnRoom()
	}
	return st, err
}

// NotReady says why the node takes no purchases, "" when it does.
func (e readyEngine) NotReady() string {
	switch {
	case !e.Engine.Ready():
		return "shutting down"
	case e.s.draining.Load():
		return "draining"
	}
	if why := e.s.storeDown.Load(); why != nil {
		return *why
	}
	return ""
}

func (s *server) url() string { return "http://" + s.addr.String() }

// startServer opens the store and the engine and serves the API on
// c.httpAddr (and pprof on c.debugAddr when set).
func startServer(ctx context.Context, c serveConfig, log *slog.Logger) (*server, error) {
	buyer, err := c.buyerAuth()
	if err != nil {
		return nil, err
	}
	lim, err := c.limits()
	if err != nil {
		return nil, err
	}
	pay, err := c.paymentConfig()
	if err != nil {
		return nil, err
	}
	origins, err := c.corsOriginList()
	if err != nil {
		return nil, err
	}
	// One registry per node, no global default: package metrics and the
	// cluster store's dependencies register on it, /metrics and the
	// dashboard read it.
	reg := prometheus.NewRegistry()
	met, err := metrics.New(reg, version.Get())
	if err != nil {
		return nil, err
	}
	tp, err := startTracing(ctx, log, c.traceTrustParent)
	if err != nil {
		return nil, errUsage{"serve: " + err.Error()}
	}
	// If the start fails, what it started stops, last started first.
	var undo []func()
	started := false
	defer func() {
		if !started {
			for _, f := range slices.Backward(undo) {
				f()
			}
		}
	}()
	undo = append(undo, func() { stopTracing(tp, log) })
	tel := telemetry{reg: reg, tracing: tp.Tracing()}
	if c.jwksURL != "" {
		// Refreshed until ctx ends; a start that fails stops it at once.
		// Before the store opens, which in an embedded upgrade tells the
		// old process to go: a key server down fails the upgrade while
		// the old process still serves.
		if buyer.Remote, err = surgehttp.FetchJWKS(ctx, c.jwksURL, surgehttp.RemoteJWKSOptions{Refresh: c.jwksRefresh, Logger: log}); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("serve: fetching --jwks-url's keys: %w", ctx.Err()) // a stop (serve)
			}
			return nil, errUsage{"serve: --" + err.Error()}
		}
		undo = append(undo, buyer.Remote.Close)
	}
	// Listen before the store opens: in an upgrade the listeners are the
	// old process's (upgrade.go), and must be taken before it is told to go.
	lns, err := c.listen()
	if err != nil {
		return nil, err
	}
	undo = append(undo, lns.close)
	b, err := c.openBackend(ctx, log, tel)
	if err != nil {
		return nil, err
	}
	store := b.store
	undo = append(undo, func() { store.Close() })
	room, warnRoom, roomKeys, err := c.waitingRoom(b, log)
	if err != nil {
		return nil, err
	}
	ecfg := engine.Config{MaxBatch: c.maxBatch, InboxSize: c.queueSize, Logger: log, WaitingRoom: room, Metrics: met}
	ecfg.InFlight = b.inFlight
	ecfg.Tracing = tel.tracing
	// Shedding and the buyer and sale limits go through switches SIGHUP
	// turns (reload.go), even when off.
	shed := new(atomic.Bool)
	shed.Store(c.shed)
	ecfg.InboxManager = func() engine.InboxManager {
		// CoDel on each sale's inbox (docs/protection.md): once an inbox has
		// stood for 100 ms, a purchase waits for at most the batch ahead of
		// it, and the store always has a full batch to commit.
		return shedSwitch{q: admission.NewCoDel(admission.CoDelConfig{Batch: c.maxBatch}), on: shed}
	}
	buyerRate := &rateSwitch{name: "buyer", shared: b.sharedLimit, log: log}
	saleRate := &rateSwitch{name: "sale", shared: b.sharedLimit, log: log}
	buyerRate.set(c.rateBuyer, c.burstBuyer, lim.buyer)
	saleRate.set(c.rateSale, c.burstSale, lim.sale)
	undo = append(undo, func() {
		buyerRate.close(context.Background())
		saleRate.close(context.Background())
	})
	ecfg.BuyerRate, ecfg.SaleRate = buyerRate, saleRate
	eng, err := engine.Open(ctx, store, ecfg)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { eng.Close() })
	s := &server{store: store, eng: eng, log: log, errc: make(chan error, 1), tracing: tp, lns: lns,
		room: room, queues: b.queues, roomKeys: roomKeys, ipRate: lim.http.IP, adminIPRate: lim.http.AdminIP, buyerRate: buyerRate, saleRate: saleRate, shed: shed, remote: buyer.Remote, warnRoom: warnRoom}
	s.cfg.Store(&c)
	s.open.write, s.adminOpen.write, s.debugOpen.write = c.timeouts.write, c.timeouts.write, c.timeouts.write
	if s.reloads, err = metrics.NewConfigReloads(reg, time.Now()); err != nil {
		return nil, err
	}
	for _, sl := range eng.Sales() {
		if sl.WaitingRoom != nil {
			warnRoom()
			break
		}
	}
	if c.natsURL != "" {
		if s.stopRelay, err = startRelay(c.natsURL, "surge "+c.nodeID, c.leaseTTL, store, reg, log); err != nil {
			return nil, err
		}
		undo = append(undo, func() { s.stopRelay(context.Background()) })
	}
	s.watchStore(ctx, b.ready)
	undo = append(undo, func() { s.stopWatch(context.Background()) })
	// reg is this node's own: nothing else can hold these names.
	reg.MustRegister(metrics.NewSaleCollector(eng.SaleFigures))
	grpcAPI := rpc.New(readyEngine{eng, s}, rpc.Config{Logger: log})
	acfg := c.apiConfig(buyer, lim.http, room)
	acfg.Logger, acfg.Gatherer, acfg.Payments = log, reg, pay
	acfg.CORSOrigins, acfg.Mount = origins, grpcAPI.Mount
	api := surgehttp.New(readyEngine{eng, s}, acfg)
	s.api = api
	reg.MustRegister(metrics.NewConnCollector(func() metrics.ConnFigures {
		l := s.conns.Load()
		if l == nil {
			return metrics.ConnFigures{}
		}
		st := l.Stats()
		return metrics.ConnFigures{Open: int64(st.Open), Idle: int64(st.Idle), Refused: st.Refused, Reclaimed: st.Reclaimed}
	}))
	reg.MustRegister(metrics.NewTokenCollector(func() metrics.TokenFigures {
		t := api.TokenChecks()
		return metrics.TokenFigures{Accepted: t.Accepted, Refused: t.Refused}
	}))
	if c.debugAddr != "" {
		s.debugConns = surgehttp.LimitConns(lns.debug, privateConnLimits(lim.http.TrustedProxies))
		// Through debugOpen: net/http's HTTP/2 server bounds no write on
		// the connection, and a client that stops reading would hold it.
		s.debug = opsServer(c.timeouts, s.debugOpen.listen(s.debugConns), api.Ops(reg, nil), s.debugOpen.track(s.debugConns.ConnState), log)
		undo = append(undo, func() { s.debug.Close() })
		log.Info("debug endpoints (pprof)", "addr", c.debugAddr)
	}
	public := http.Handler(api)
	if c.adminAddr != "" {
		s.adminConns = surgehttp.LimitConns(lns.admin, privateConnLimits(lim.http.TrustedProxies))
		s.admin = opsServer(c.timeouts, s.adminOpen.listen(s.adminConns), s.observed(c, api.Ops(reg, api.Admin()), tel, surgehttp.RequestOptions{}, false),
			s.adminOpen.track(s.adminConns.ConnState), log)
		undo = append(undo, func() { s.admin.Close() })
		public = api.Public()
		log.Info("admin endpoints and pprof on their own listener", "addr", c.adminAddr)
	}
	if s.adminConns != nil || s.debugConns != nil {
		reg.MustRegister(metrics.NewPrivateConnCollector(func() map[string]int64 {
			refused := make(map[string]int64, 2)
			for name, l := range map[string]*surgehttp.ConnLimiter{"admin": s.adminConns, "debug": s.debugConns} {
				if l != nil {
					refused[name] = l.Stats().Refused
				}
			}
			return refused
		}))
	}
	raw := lns.api
	s.addr = raw.Addr()
	// Trusted proxies carry many clients on their connections: only the
	// total bounds them.
	ln := surgehttp.LimitConns(raw, c.connLimits(lim.http.TrustedProxies))
	s.conns.Store(ln)
	s.http = c.timeouts.server(s.observed(c, public, tel, surgehttp.RequestOptions{TrustedProxies: lim.http.TrustedProxies}, true), s.open.track(ln.ConnState), log)
	// Event streams end at shutdown instead of holding it to the timeout.
	s.http.RegisterOnShutdown(api.CloseStreams)
	s.http.RegisterOnShutdown(grpcAPI.Close)
	s.endStreams = []func(){api.CloseStreams, grpcAPI.Close}
	serveH2C(s.http)
	msg, at := "surge serving", []any{"addr", s.addr.String()}
	if c.redisURL != "" {
		msg = "surge serving in cluster mode"
	} else {
		at = append(at, "data_dir", c.dataDir)
	}
	log.Info(msg, append(at, "version", version.Get().Version, "procs", runtime.GOMAXPROCS(0), "cpus", runtime.NumCPU())...)
	// The old process of an upgrade goes now, if it has not already
	// (embedded mode: before the store opened).
	if err := c.handover.ready(); err != nil {
		return nil, err
	}
	started = true
	go func() { s.errc <- s.http.Serve(s.open.listen(ln)) }()
	return s, nil
}

// apiConfig is the API's configuration of the settings (those Apply
// changes on SIGHUP, and the waiting room).
func (c serveConfig) apiConfig(buyer surgehttp.BuyerAuth, prot surgehttp.Protection, room *waitroom.Room) surgehttp.Config {
	return surgehttp.Config{
		AdminToken:                c.adminToken,
		JWTSecret:                 []byte(c.jwtSecret),
		JWTPreviousSecret:         []byte(c.jwtPreviousSecret),
		InsecureUserHeader:        c.insecureUserHeader,
		BuyerAuth:                 buyer,
		Protection:                prot,
		WaitingRoom:               room,
		MaxQueueStreams:           c.roomStreams,
		MaxQueueStreamsPerBuyer:   c.roomStreamsBuyer,
		MaxQueueStreamsPerAddress: c.roomStreamsAddr,
	}
}

// shutdown stops in order: stop taking requests and finish the ones in
// flight, then flush the batchers, then close the database.
func (s *server) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Error("http shutdown", "err", err)
	}
	if s.admin != nil {
		if err := s.admin.Shutdown(ctx); err != nil {
			s.log.Error("admin shutdown", "err", err)
		}
	}
	if s.debug != nil {
		s.debug.Close()
	}
	closeEngine(ctx, s.eng, s.store, s.log)
	s.handRoomsOver()
	s.stopWatch(ctx)
	s.buyerRate.close(ctx)
	s.saleRate.close(ctx)
	if s.stopRelay != nil {
		s.stopRelay(ctx) // what it did not publish waits in the outbox for the next start
	}
	err := closeStore(ctx, s.store, s.log)
	stopTracing(s.tracing, s.log) // last: the store's own spans are in
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// handRoomsOver leaves the embedded waiting rooms to the new process of
// an upgrade: once no request is served and the engine is closed (no
// purchase's ticket check is left), and before the store releases the
// data directory, which the new process waits for before it reads them.
// Cluster mode's rooms are in Redis already.
func (s *server) handRoomsOver() {
	mem, ok := s.queues.(*waitroom.Memory)
	if !ok || !s.handingOver.Load() {
		return
	}
	handRooms(s.config().dataDir, mem, s.roomKeys, s.log)
}

// closeEngine closes the engine within ctx, the shutdown's deadline, when
// the store can be closed so too (cluster mode: an order change whose
// COMMIT's answer was lost is followed up for up to the lease's term, and
// must not hold the stop past --shutdown-timeout; what it changed is
// PostgreSQL's, and the leader's sweep gives back the units of an order it
// ended). The embedded store's Close must come after every batch and
// change, so the engine is closed whole.
func closeEngine(ctx context.Context, eng *engine.Engine, st surge.Store, log *slog.Logger) {
	if _, ok := st.(interface{ Shutdown(context.Context) error }); !ok {
		if err := eng.Close(); err != nil {
			log.Error("engine close", "err", err)
		}
		return
	}
	if err := eng.Shutdown(ctx); err != nil {
		log.Warn("stopping without waiting for the engine's work at the store (the shutdown timeout passed)", "err", err)
	}
}

// closeStore closes the store within ctx, the shutdown's deadline, if it
// can be closed so (cluster mode: a stalled PostgreSQL must not hold the
// stop past --shutdown-timeout; every order it confirmed is committed
// already, so giving up the wait loses nothing, as the HTTP servers'
// Shutdown gives up on slow requests). The embedded store's Close writes
// the ledger image and the clean-stop seal, which are not given up.
func closeStore(ctx context.Context, st surge.Store, log *slog.Logger) error {
	sc, ok := st.(interface{ Shutdown(context.Context) error })
	if !ok {
		return st.Close()
	}
	if err := sc.Shutdown(ctx); err != nil {
		log.Warn("stopping without waiting for the store to finish closing (the shutdown timeout passed)", "err", err)
	}
	return nil
}

// httpTimeouts are the HTTP servers' bounds, the API's listener's and the
// private ones' alike: a request's header, the whole request, an answer,
// an idle connection between requests.
type httpTimeouts struct{ readHeader, read, write, idle time.Duration }

// defaultHTTPTimeouts are serve's (newServeConfig's); only tests change
// them, to see a bound act without waiting for it.
func defaultHTTPTimeouts() httpTimeouts {
	return httpTimeouts{readHeader: 5 * time.Second, read: 15 * time.Second, write: 30 * time.Second, idle: 120 * time.Second}
}

// maxHeaderBytes bounds a request's header on every listener.
const maxHeaderBytes = 64 << 10

// server is an HTTP server of h within the bounds t (the defaults for a
// config not made by newServeConfig: never none), state its ConnState.
// Its own complaints (an HTTP/2 client's protocol error, a handler's
// panic) go to log, as warnings: left to Go's standard logger they were
// plain text on stderr, whatever --log-format said.
func (t httpTimeouts) server(h http.Handler, state func(net.Conn, http.ConnState), log *slog.Logger) *http.Server {
	if t == (httpTimeouts{}) {
		t = defaultHTTPTimeouts()
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: t.readHeader, ReadTimeout: t.read, WriteTimeout: t.write,
		IdleTimeout: t.idle, MaxHeaderBytes: maxHeaderBytes, ConnState: state,
		// OPTIONS * then reaches the API, which answers it in JSON.
		DisableGeneralOptionsHandler: true,
		ConnContext:                  surgehttp.ConnContext, // request ids without a copy of each request
		ErrorLog:                     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// opsServer serves h (pprof and /debug/stats behind the admin token, and
// the full API on the admin listener) on a private listener of its own.
func opsServer(t httpTimeouts, ln net.Listener, h http.Handler, state func(net.Conn, http.ConnState), log *slog.Logger) *http.Server {
	// The API listener's timeouts: a client that sends its request or
	// reads its answer slower than a byte at a time must not hold a
	// connection and its goroutine for good here either. The long answers
	// (event streams, the order export, WatchSale, pprof's profiles) move
	// their write deadline themselves, as on the API's listener.
	srv := t.server(h, state, log)
	// The admin listener serves the gRPC API's operator calls, which gRPC
	// clients make over HTTP/2 without TLS, as on the API's listener.
	serveH2C(srv)
	go func() { _ = srv.Serve(ln) }()
	return srv
}
