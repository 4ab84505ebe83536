package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ConfigReloads counts the configuration reloads SIGHUP asks for, as
// Prometheus counts its own: an alert on result="error" or on a stale
// last success catches a file that was edited but never took effect.
type ConfigReloads struct {
	total  *prometheus.CounterVec // surge_config_reloads_total{result}
	lastOK prometheus.Gauge       // surge_config_last_reload_success_timestamp_seconds
}

// NewConfigReloads registers the reload metrics on reg; the last success
// starts at loaded, when the configuration in force was read.
func NewConfigReloads(reg prometheus.Registerer, loaded time.Time) (*ConfigReloads, error) {
	c := &ConfigReloads{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_config_reloads_total",
			Help: "Configuration reloads (SIGHUP) by result: ok (applied), error (refused whole; the running configuration stays).",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "surge_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration in force was loaded (the start, or the last reload that was applied), in Unix seconds.",
		}),
	}
	// Both series exist from the start, so a rate or an alert on them
	// has a zero to begin from.
	c.total.WithLabelValues("ok")
	c.total.WithLabelValues("error")
	c.lastOK.Set(float64(loaded.UnixNano()) / 1e9)
	for _, col := range []prometheus.Collector{c.total, c.lastOK} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Reloaded records a reload's result at now.
func (c *ConfigReloads) Reloaded(ok bool, now time.Time) {
	if !ok {
		c.total.WithLabelValues("error").Inc()
		return
	}
	c.total.WithLabelValues("ok").Inc()
	c.lastOK.Set(float64(now.UnixNano()) / 1e9)
}
