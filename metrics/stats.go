package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Commits counts a store's durable commits: the figures that say how
// well group commit merges batches. A nil *Commits counts nothing.
type Commits struct {
	commits  prometheus.Counter // surge_store_commits_total
	rows     prometheus.Counter // surge_store_committed_rows_total
	failures prometheus.Counter // surge_store_commit_failures_total
}

// NewCommits makes the store's commit counters; the store registers them
// (a Collector) on the node's registry.
func NewCommits() *Commits {
	return &Commits{
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_store_commits_total",
			Help: "Durable commits of the store: SQLite transactions (one fsync each) or PostgreSQL commits of orders.",
		}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_store_committed_rows_total",
			Help: "Rows written by those commits.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_store_commit_failures_total",
			Help: "Commits the store could not make (a full disk, an I/O error): their changes were refused, not confirmed.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *Commits) Describe(ch chan<- *prometheus.Desc) {
	c.commits.Describe(ch)
	c.rows.Describe(ch)
	c.failures.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Commits) Collect(ch chan<- prometheus.Metric) {
	c.commits.Collect(ch)
	c.rows.Collect(ch)
	c.failures.Collect(ch)
}

// Observe counts one durable commit of rows rows.
func (c *Commits) Observe(rows int) {
	if c == nil {
		return
	}
	c.commits.Inc()
	c.rows.Add(float64(rows))
}

// Failed counts one commit the store could not make.
func (c *Commits) Failed() {
	if c == nil {
		return
	}
	c.failures.Inc()
}

// ConnFigures are the API listener's connections, read at scrape time.
type ConnFigures struct {
	Open, Idle, Refused, Reclaimed int64
}

// NewConnCollector exports the API listener's connections as read reads
// them: surge_connections_open and surge_connections_idle (gauges),
// surge_connections_refused_total and surge_connections_reclaimed_total.
func NewConnCollector(read func() ConnFigures) prometheus.Collector {
	return connCollector{read: read}
}

type connCollector struct{ read func() ConnFigures }

var (
	connOpen      = prometheus.NewDesc("surge_connections_open", "Open connections of the API listener.", nil, nil)
	connIdle      = prometheus.NewDesc("surge_connections_idle", "Idle keep-alive connections of the API listener.", nil, nil)
	connRefused   = prometheus.NewDesc("surge_connections_refused_total", "Connections of the API listener refused at accept over the per-address cap (--max-conns-per-ip).", nil, nil)
	connReclaimed = prometheus.NewDesc("surge_connections_reclaimed_total", "Idle connections closed to make room at the cap.", nil, nil)
)

func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connOpen
	ch <- connIdle
	ch <- connRefused
	ch <- connReclaimed
}

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.read()
	ch <- prometheus.MustNewConstMetric(connOpen, prometheus.GaugeValue, float64(f.Open))
	ch <- prometheus.MustNewConstMetric(connIdle, prometheus.GaugeValue, float64(f.Idle))
	ch <- prometheus.MustNewConstMetric(connRefused, prometheus.CounterValue, float64(f.Refused))
	ch <- prometheus.MustNewConstMetric(connReclaimed, prometheus.CounterValue, float64(f.Reclaimed))
}

// NewPrivateConnCollector exports the connections the private listeners
// (--admin-addr, --debug-addr) refused at accept over their own caps, as
// read reads them by listener name ("admin", "debug"; a listener not
// asked for is left out): surge_private_connections_refused_total{listener}.
// A family of its own: surge_connections_refused_total stays the API
// listener's, unlabelled, as dashboards and /debug/stats read it.
func NewPrivateConnCollector(read func() map[string]int64) prometheus.Collector {
	return privateConnCollector{read: read}
}

type privateConnCollector struct{ read func() map[string]int64 }

var privateConnRefused = prometheus.NewDesc("surge_private_connections_refused_total",
	"Connections a private listener (admin, debug) refused at accept over its per-address cap.", []string{"listener"}, nil)

func (c privateConnCollector) Describe(ch chan<- *prometheus.Desc) { ch <- privateConnRefused }

func (c privateConnCollector) Collect(ch chan<- prometheus.Metric) {
	for name, n := range c.read() {
		ch <- prometheus.MustNewConstMetric(privateConnRefused, prometheus.CounterValue, float64(n), name)
	}
}

// TokenFigures are the buyer tokens checked in full (not answered from
// the cache of verified tokens), read at scrape time.
type TokenFigures struct{ Accepted, Refused int64 }

// NewTokenCollector exports the buyer tokens checked in full as read
// reads them: surge_buyer_token_checks_total{result="accepted"|"refused"}.
func NewTokenCollector(read func() TokenFigures) prometheus.Collector {
	return tokenCollector{read: read}
}

type tokenCollector struct{ read func() TokenFigures }

var tokenChecks = prometheus.NewDesc("surge_buyer_token_checks_total",
	"Buyer JWTs checked in full (signature and claims) instead of answered from the cache of verified tokens, by result.",
	[]string{"result"}, nil)

func (c tokenCollector) Describe(ch chan<- *prometheus.Desc) { ch <- tokenChecks }

func (c tokenCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.read()
	ch <- prometheus.MustNewConstMetric(tokenChecks, prometheus.CounterValue, float64(f.Accepted), "accepted")
	ch <- prometheus.MustNewConstMetric(tokenChecks, prometheus.CounterValue, float64(f.Refused), "refused")
}

// Stats is the /debug/stats document: a few figures of g (the registry
// /metrics serves) under the keys the bench scripts read, so that there
// is one set of counters. Figures g lacks are left out.
func Stats(g prometheus.Gatherer) (map[string]any, error) {
	fams, err := g.Gather()
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*dto.Metric, len(fams))
	for _, f := range fams {
		if ms := f.GetMetric(); len(f.GetMetric()) == 1 && len(ms[0].GetLabel()) == 0 {
			byName[f.GetName()] = ms[0]
		}
	}
	value := func(name string) (float64, bool) {
		m, ok := byName[name]
		switch {
		case !ok:
			return 0, false
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		default:
			return m.GetGauge().GetValue(), true
		}
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	out := map[string]any{}
	if m, ok := byName["surge_batch_size"]; ok {
		n, sum := float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
		out["engine"] = map[string]int64{"Batches": int64(n), "Purchases": int64(sum)}
		out["mean_batch"] = ratio(sum, n)
	}
	if commits, ok := value("surge_store_commits_total"); ok {
		rows, _ := value("surge_store_committed_rows_total")
		out["store"] = map[string]any{"Commits": int64(commits), "Rows": int64(rows), "mean_rows_per_commit": ratio(rows, commits)}
	}
	if open, ok := value("surge_connections_open"); ok {
		idle, _ := value("surge_connections_idle")
		refused, _ := value("surge_connections_refused_total")
		reclaimed, _ := value("surge_connections_reclaimed_total")
		out["connections"] = map[string]int64{"open": int64(open), "idle": int64(idle), "refused": int64(refused), "reclaimed": int64(reclaimed)}
	}
	if lag, ok := value("surge_outbox_lag_events"); ok {
		age, _ := value("surge_outbox_oldest_age_seconds")
		pub, _ := value("surge_outbox_published_total")
		out["outbox"] = map[string]any{"lag_events": int64(lag), "oldest_age_seconds": age, "published": int64(pub)}
	}
	if l, ok := value("surge_cluster_leader"); ok {
		out["leader"] = l == 1
	}
	return out, nil
}
