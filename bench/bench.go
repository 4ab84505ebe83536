// Package bench is Surge's spike load generator: it fires a crowd of
// buyers at a running server in a chosen load shape, records latency and
// outcomes, and then verifies the guarantees from the server's own export.
//
// The types in this file are the package's contract: the runner fills a
// Result, the verifier fills its Verdict, and the reports (terminal, JSON,
// HTML) render it.
package bench

import (
	"fmt"
	"strconv"
	"time"

	"github.com/surgehq/surge/api"
)

// Mode is how load is offered.
type Mode string

const (
	// ClosedLoop: Connections workers each send the next request as soon
	// as the previous one is answered (maximum throughput).
	ClosedLoop Mode = "closed"
	// OpenLoop: requests are sent on a schedule given by a Shape, whatever
	// the server's speed; latency is measured from the intended send time,
	// so queueing in the client counts (no coordinated omission).
	OpenLoop Mode = "open"
)

// Config describes one run.
type Config struct {
	Target     string // base URL of the server, e.g. http://127.0.0.1:8080
	SaleID     string // the sale to buy from; created when CreateSale
	AdminToken string // for creating the sale and for verification

	// CreateSale makes the run create SaleID (or a generated id) with Stock
	// units and PerUserLimit per buyer before firing.
	CreateSale   bool
	Stock        int64
	PerUserLimit int64

	// Users is the crowd: this many distinct buyers, each sending one
	// purchase (plus a retry for RetryShare of them).
	Users int
	// MaxQuantity: each buyer asks for 1..MaxQuantity units (default 1).
	MaxQuantity int64
	// RetryShare of the buyers send their purchase a second time with the
	// same Idempotency-Key, to exercise idempotency (0..1).
	RetryShare float64
	// JWTSecret, when set, makes each buyer authenticate with an HS256 JWT;
	// otherwise buyers send X-User-ID (server needs --insecure-user-header).
	JWTSecret string
	// UserPrefix makes user ids unique across runs against one sale.
	UserPrefix string

	Mode        Mode
	Shape       Shape         // OpenLoop only
	Connections int           // concurrent requests at most (both modes)
	Duration    time.Duration // upper bound of the run; 0: until the crowd is done
	Timeout     time.Duration // per request (default 10s)
	// Retry honours Retry-After on 429/503, resending the same request
	// (same key) after the delay, within the run's time.
	Retry bool
	// Seed makes the crowd (quantities, who retries) reproducible.
	Seed uint64
}

// Shape gives the offered rate over time for open-loop runs.
type Shape interface {
	// Rate is the intended requests per second at offset t from the start.
	Rate(t time.Duration) float64
	// Length is how long the shape lasts.
	Length() time.Duration
	// String describes the shape for reports, e.g. "spike 0→5000/s in 2s, hold 5s, decay 2s".
	String() string
}

// Result is everything a run measured. It marshals to the --json report.
type Result struct {
	Target string `json:"target"`
	SaleID string `json:"sale_id"`
	// Created is the sale as the run created it, with the stock and limit
	// the run asked for, nil when the run bought from an existing sale:
	// nobody else knows a sale the run made, so its stock and limit must
	// be those when it is verified.
	Created *api.Sale `json:"created,omitempty"`
	// StartLimit is the sale's per_user_limit when the run began (as
	// created, or read from an existing sale). An operator may lower a
	// live sale's limit, which binds new purchases only: what a buyer
	// bought under the higher one is no violation.
	StartLimit  int64     `json:"start_per_user_limit,omitempty"`
	Mode        Mode      `json:"mode"`
	Shape       string    `json:"shape,omitempty"`
	Users       int       `json:"users"`
	Connections int       `json:"connections"`
	Started     time.Time `json:"started"`
	Elapsed     Duration  `json:"elapsed"`

	Sent      int64 `json:"sent"`      // requests sent, retries included
	Completed int64 `json:"completed"` // requests answered (any status)
	Errors    int64 `json:"errors"`    // transport errors and timeouts (no answer)
	// Throughput is answered requests per second over the run.
	Throughput float64 `json:"throughput"`
	// Goodput is decided purchases per second over the run: 201 and 409
	// answers, whatever the decision. Under overload it is the figure that
	// should hold up while the excess is shed.
	Goodput float64 `json:"goodput"`
	// Shed counts answers that turned a purchase away undecided: 429 and
	// 503.
	Shed int64 `json:"shed"`
	// BadServerErrors counts 5xx answers other than a 503 carrying a
	// valid Retry-After: a server that sheds honestly has none.
	BadServerErrors int64 `json:"bad_5xx"`
	// Scheduled (open loop) is how many purchases the shape called for
	// within the run's time, and Unsent how many of them were never sent:
	// the client could not keep up, or the run ended first. Scheduled ÷
	// the shape's length is the rate really asked for; Unsent > 0 says the
	// server saw less than that.
	Scheduled int64 `json:"scheduled,omitempty"`
	Unsent    int64 `json:"unsent,omitempty"`
	// SoldOutAt is when the first sold_out answer came, from the start of
	// the run; absent when none came.
	SoldOutAt Duration `json:"sold_out_at,omitempty"`

	// Status counts answers by HTTP status; Codes by outcome: "reserved"
	// for a 201 that made a new order, "replayed" for a 201 marked
	// Idempotent-Replayed (the first answer to the same key again), else
	// the error code of the JSON body ("sold_out", …), or
	// "transport_error".
	Status map[int]int64    `json:"status"`
	Codes  map[string]int64 `json:"codes"`

	// Latency is over the whole run, in ms: every request sent, a
	// transport error (a timeout) with the time it waited until it failed.
	Latency Latency `json:"latency"`
	// Admitted is the latency of every request but those answered 429 or
	// 503: what the buyers the server did not turn away waited, answered
	// or not (a timeout counts). Under overload the shed answers are fast
	// and would flatter Latency.
	Admitted Latency       `json:"admitted_latency"`
	Seconds  []SecondStats `json:"seconds"` // one entry per second of the run
	// RefusedReplays are the replays of a 201 (same buyer, same
	// Idempotency-Key) answered with another decided status: a replay
	// must get the first answer back.
	RefusedReplays []RefusedReplay `json:"refused_replays,omitempty"`
	Verdict        *Verdict        `json:"verdict,omitempty"`
	Client         ClientOverhead  `json:"client"`
}

// Latency summarises a histogram, in milliseconds.
type Latency struct {
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
	Count int64   `json:"count"`
}

// SecondStats is one second of the run.
type SecondStats struct {
	Second    int     `json:"second"`
	Offered   int64   `json:"offered"`   // requests due (open loop) or sent (closed loop)
	Completed int64   `json:"completed"` // answers received in this second
	Reserved  int64   `json:"reserved"`  // 201s
	Rejected  int64   `json:"rejected"`  // 409s
	Failed    int64   `json:"failed"`    // 4xx other than 409, 5xx, transport errors
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
}

// ClientOverhead shows the load generator was not the bottleneck.
type ClientOverhead struct {
	CPUSeconds float64 `json:"cpu_seconds"` // user+system CPU of the bench process during the run
	CPUShare   float64 `json:"cpu_share"`   // CPUSeconds / (elapsed × cores)
	// Late counts open-loop requests sent late enough to change the load:
	// more than 1 ms after their intended time because every connection
	// was busy, or more than 20 ms after it for any reason (the bench fell
	// behind its schedule). A send a few ms late with a connection free is
	// the scheduler's jitter and is not counted; its latency still runs
	// from the intended time.
	Late int64 `json:"late"`
	// LateShare is Late ÷ sends. Over maxLateShare, the server was not
	// offered the shape asked for, and the reports say so.
	LateShare float64 `json:"late_share"`
}

// Verdict is the outcome of verification against the server's export.
type Verdict struct {
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
	// Figures read back from the server.
	Stock     int64 `json:"stock"`
	Remaining int64 `json:"remaining"`
	Orders    int64 `json:"orders"`     // orders in the export, any status
	LiveUnits int64 `json:"live_units"` // units in reserved+paid orders
	Confirmed int64 `json:"confirmed"`  // distinct orders the run got a 201 for
}

// Check is one verified guarantee.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"` // what was found; the first violations when not OK
}

// Duration marshals as seconds (float) in JSON.
type Duration time.Duration

// MarshalJSON writes the duration in seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(formatFloat(time.Duration(d).Seconds())), nil
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// Confirmation is one 201 the run received: what the verifier checks
// against the export.
type Confirmation struct {
	OrderID  string
	UserID   string
	Key      string
	Quantity int64
	// Sent is when the buyer first sent the purchase of this key, by the
	// run's clock: the order cannot be older, so its hold cannot end
	// before Sent plus the hold, whatever the server's clock says.
	Sent time.Time
	// Expires is the expires_at the 201 gave the buyer, and Hold that
	// expires_at less the 201's created_at (zero when the body held no
	// readable time): the hold promised, which an export whose times say
	// otherwise cannot take back.
	Expires time.Time
	Hold    time.Duration
}

// RefusedReplay is a replay of a 201 that the server answered otherwise.
type RefusedReplay struct {
	OrderID string `json:"order_id"` // the first answer's order
	UserID  string `json:"user_id"`
	Key     string `json:"key"`
	Status  int    `json:"status"` // the replay's answer
	Code    string `json:"code"`
}

// UnmarshalJSON reads the duration back from seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration: want seconds, got %s", b)
	}
	*d = Duration(s * float64(time.Second))
	return nil
}
