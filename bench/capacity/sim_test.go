package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// base is a small spike whose tiers all have room.
func base() Config {
	return Config{
		Rate: 20_000, Duration: time.Second, Stock: 1000,
		Nodes: 2, Cores: 2, NodeSoldOut: 30 * time.Microsecond, NodePurchase: 50 * time.Microsecond,
		MaxBatch: 512, Inbox: 4096, Announce: time.Millisecond,
		Masters: 1, Buckets: 1, RedisPurchase: 10 * time.Microsecond,
		PGCommit: 500 * time.Microsecond, PGRow: 10 * time.Microsecond, WALBytes: 940,
		Seed: 7,
	}
}

// A node of one core that answers everyone sold out is an M/D/1 queue:
// its mean time in system is D(1 + ρ/(2(1-ρ))) (Pollaczek-Khinchine).
func TestSoldOutNodeIsMD1(t *testing.T) {
	for _, rho := range []float64{0.5, 0.8} {
		c := base()
		c.Stock, c.Nodes, c.Cores = 0, 1, 1
		d := 40 * time.Microsecond
		c.NodeSoldOut = d
		c.Rate = rho / d.Seconds()
		c.Duration = 20 * time.Second
		r, err := Run(c)
		if err != nil {
			t.Fatal(err)
		}
		want := float64(d.Microseconds()) * (1 + rho/(2*(1-rho)))
		if got := r.All.Mean(); math.Abs(got-want)/want > 0.05 {
			t.Errorf("ρ %.1f: mean time in system %.1f µs, want %.1f (M/D/1)", rho, got, want)
		}
		if math.Abs(r.NodeCPU-rho) > 0.02 {
			t.Errorf("ρ %.1f: node busy %.3f of the run", rho, r.NodeCPU)
		}
		if r.Reserved != 0 || r.Rejected != r.Arrivals {
			t.Errorf("ρ %.1f: %d reserved, %d rejected of %d on a sale of no stock", rho, r.Reserved, r.Rejected, r.Arrivals)
		}
	}
}

// Every buyer gets one answer, no unit is sold twice, and while nothing
// sheds every unit is sold to the buyers who came.
func TestEveryBuyerAnsweredOnce(t *testing.T) {
	for name, change := range map[string]func(*Config){
		"drop":                    func(*Config) {},
		"stock outlasts the rush": func(c *Config) { c.Stock = 1 << 40 },
		"buckets over masters":    func(c *Config) { c.Stock, c.Masters, c.Buckets = 5000, 3, 8 },
		"no announcement delay":   func(c *Config) { c.Announce = 0 },
		"a small inbox sheds":     func(c *Config) { c.Stock, c.Inbox, c.MaxBatch, c.PGRow = 1<<40, 8, 4, 200*time.Microsecond },
	} {
		t.Run(name, func(t *testing.T) {
			c := base()
			change(&c)
			r, err := Run(c)
			if err != nil {
				t.Fatal(err)
			}
			if r.Reserved+r.Rejected+r.Shed != r.Arrivals || r.All.TotalCount() != r.Arrivals {
				t.Fatalf("%d buyers got %d + %d + %d answers (%d recorded)", r.Arrivals, r.Reserved, r.Rejected, r.Shed, r.All.TotalCount())
			}
			if r.Reserved > c.Stock {
				t.Fatalf("%d units sold of %d", r.Reserved, c.Stock)
			}
			if r.Shed == 0 && r.Reserved != min(c.Stock, r.Arrivals) {
				t.Fatalf("%d units sold to %d buyers with %d in stock and nobody shed", r.Reserved, r.Arrivals, c.Stock)
			}
			if name == "a small inbox sheds" && r.Shed == 0 {
				t.Fatal("nothing shed past the lock's capacity with an inbox of 8")
			}
		})
	}
}

// One sale's commits take turns on its row lock, so past what the lock
// commits at full batches (MaxBatch / (PGCommit + MaxBatch·PGRow), here
// about 91,000 orders a second) the backlog grows whatever the number of
// nodes and masters; below it, the run ends with its last buyers.
func TestRowLockIsTheWall(t *testing.T) {
	for _, tc := range []struct {
		rate       float64
		behind     bool
		minBacklog time.Duration
	}{
		{50_000, false, 0},
		{150_000, true, 300 * time.Millisecond}, // ~59,000 orders over, at ~91,000 a second
	} {
		c := base()
		c.Stock, c.Nodes, c.Cores, c.Masters, c.Buckets = 1<<40, 16, 4, 8, 8
		c.Rate = tc.rate
		r, err := Run(c)
		if err != nil {
			t.Fatal(err)
		}
		if tc.behind && r.Drain < tc.minBacklog {
			t.Errorf("%.0f/s: backlog %v after the last arrival, want at least %v (lock %.3f, node %.3f, Redis %.3f)",
				tc.rate, r.Drain, tc.minBacklog, r.PGLock, r.NodeCPU, r.Redis)
		}
		if !tc.behind && (r.Drain > 50*time.Millisecond || r.Shed > 0) {
			t.Errorf("%.0f/s: backlog %v and %d shed below the lock's capacity", tc.rate, r.Drain, r.Shed)
		}
		if tc.behind && r.Redis > 0.5 {
			t.Errorf("%.0f/s: the busiest of 8 masters at %.3f, the lock should be the wall", tc.rate, r.Redis)
		}
		var out strings.Builder
		report(&out, c, r)
		if !strings.Contains(out.String(), "commits (") {
			t.Errorf("report without its commits:\n%s", out.String())
		}
	}
}

func TestConfigRefused(t *testing.T) {
	for name, change := range map[string]func(*Config){
		"no rate":        func(c *Config) { c.Rate = 0 },
		"no nodes":       func(c *Config) { c.Nodes = 0 },
		"no buckets":     func(c *Config) { c.Buckets = 0 },
		"negative stock": func(c *Config) { c.Stock = -1 },
		"negative cost":  func(c *Config) { c.PGRow = -time.Microsecond },
		"no batch":       func(c *Config) { c.MaxBatch = 0 },
	} {
		c := base()
		change(&c)
		if _, err := Run(c); err == nil {
			t.Errorf("%s: Run accepted %+v", name, c)
		}
	}
}
