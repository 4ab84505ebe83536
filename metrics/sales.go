package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SaleFigures are one live sale's figures at one instant.
type SaleFigures struct {
	Sale             string
	Stock, Remaining int64 // as the API reports them
	// Status is the sale's status as the API reports it (one of
	// SaleStatuses; "" exports none).
	Status string
	// Stale: the node could not refresh the figures lately (cluster mode,
	// Redis and PostgreSQL unreachable); they are the last known, as
	// GET /v1/sales/{id}'s stale says.
	Stale  bool
	Queued int // purchases in the sale's inbox, waiting for a batch
	// WaitingRoom is set for a sale with a waiting room whose line could
	// be counted: Waiting buyers hold a slot not yet open, Admitted ones a
	// slot that has opened.
	WaitingRoom       bool
	Waiting, Admitted int64
}

// SaleStatuses are the values of surge_sale_status's status label: a
// sale's status as GET /v1/sales/{id} reports it.
var SaleStatuses = [...]string{"upcoming", "live", "paused", "sold_out", "ended"}

// scrapeTimeout bounds reading the figures (in cluster mode, a waiting
// room's line is counted in Redis).
const scrapeTimeout = 2 * time.Second

// SaleCollector exports the live sales' figures, read at scrape time
// from figures (engine.Engine.SaleFigures): the purchase path keeps no
// gauge up to date, and an archived sale's series simply stop.
type SaleCollector struct {
	figures func(context.Context) []SaleFigures
}

// NewSaleCollector returns the collector of surge_sale_stock_units,
// surge_sale_remaining_units, surge_sale_status, surge_sale_stale, surge_queue_depth,
// surge_waiting_room_length and surge_waiting_room_admitted_total.
func NewSaleCollector(figures func(context.Context) []SaleFigures) *SaleCollector {
	return &SaleCollector{figures: figures}
}

var (
	stockDesc = prometheus.NewDesc("surge_sale_stock_units",
		"Units the sale puts on sale.", []string{"sale"}, nil)
	remainingDesc = prometheus.NewDesc("surge_sale_remaining_units",
		"Units still for sale, as the API reports them.", []string{"sale"}, nil)
	statusDesc = prometheus.NewDesc("surge_sale_status",
		"1 for the sale's status as the API reports it (upcoming, live, paused, sold_out, ended), 0 for the others.",
		[]string{"sale", "status"}, nil)
	staleDesc = prometheus.NewDesc("surge_sale_stale",
		"1 while the sale's remaining units and status are the last known, the node unable to refresh them (cluster mode: Redis and PostgreSQL unreachable), as GET /v1/sales/{id} says stale; 0 otherwise.",
		[]string{"sale"}, nil)
	queueDesc = prometheus.NewDesc("surge_queue_depth",
		"Purchases in the sale's inbox, waiting for a batch.", []string{"sale"}, nil)
	waitingDesc = prometheus.NewDesc("surge_waiting_room_length",
		"Buyers in the sale's waiting room whose admission has not come yet.", []string{"sale"}, nil)
	admittedDesc = prometheus.NewDesc("surge_waiting_room_admitted_total",
		"Buyers the sale's waiting room has admitted.", []string{"sale"}, nil)
)

// Describe implements prometheus.Collector.
func (c *SaleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{stockDesc, remainingDesc, statusDesc, staleDesc, queueDesc, waitingDesc, admittedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *SaleCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, f := range c.figures(ctx) {
		ch <- prometheus.MustNewConstMetric(stockDesc, prometheus.GaugeValue, float64(f.Stock), f.Sale)
		ch <- prometheus.MustNewConstMetric(remainingDesc, prometheus.GaugeValue, float64(f.Remaining), f.Sale)
		if f.Status != "" {
			// Every status is exported, 1 for the sale's and 0 for the
			// others: a rule or a panel sees a change as a change.
			for _, st := range SaleStatuses {
				v := 0.0
				if st == f.Status {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(statusDesc, prometheus.GaugeValue, v, f.Sale, st)
			}
		}
		stale := 0.0
		if f.Stale {
			stale = 1
		}
		ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.GaugeValue, stale, f.Sale)
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(f.Queued), f.Sale)
		if f.WaitingRoom {
			ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(f.Waiting), f.Sale)
			ch <- prometheus.MustNewConstMetric(admittedDesc, prometheus.CounterValue, float64(f.Admitted), f.Sale)
		}
	}
}
