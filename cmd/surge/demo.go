package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/bench"
)

// demo runs a whole flash sale in one command: an embedded server on a free
// port with a temporary data directory, a sale, a spike of many more buyers
// than units, the verdict and an HTML report.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "surge demo [flags]", stdout)
	var (
		stock, limit     int64
		users            int
		peakFor          time.Duration
		report, logLevel string
		keep             bool
	)
	fs.Int64Var(&stock, "stock", 1000, "units for sale")
	fs.Int64Var(&limit, "per-user-limit", 1, "most units one buyer may hold")
	fs.IntVar(&users, "users", 20000, "buyers in the crowd")
	fs.DurationVar(&peakFor, "spike", 4*time.Second, "length of the spike (ramp up a quarter, hold half, decay a quarter)")
	fs.StringVar(&report, "report", "surge-demo-report.html", "where to write the HTML report")
	fs.BoolVar(&keep, "keep", false, "leave the server running after the spike and print its URL (Ctrl-C stops it); its temporary directory stays")
	fs.StringVar(&logLevel, "log-level", "warn", "server log level")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage{fmt.Sprintf("demo: unexpected argument %q (run 'surge demo --help')", fs.Arg(0))}
	}
	// Checked before a server starts, naming the flag at fault: the
	// server's and bench's refusals would name their own fields.
	switch {
	case stock < 1 || stock > surge.MaxStock:
		return errUsage{fmt.Sprintf("demo: --stock %d must be between 1 and %d", stock, surge.MaxStock)}
	case users < 1:
		return errUsage{fmt.Sprintf("demo: --users %d must be positive", users)}
	case limit < 1 || limit > stock:
		return errUsage{fmt.Sprintf("demo: --per-user-limit %d must be between 1 and --stock %d", limit, stock)}
	case peakFor < 100*time.Millisecond:
		return errUsage{fmt.Sprintf("demo: --spike %v must be at least 100ms", peakFor)}
	}
	// The report is written after the whole spike: a path it cannot be
	// written to is learned now, not once the crowd has bought.
	if err := writable(report); err != nil {
		return errUsage{fmt.Sprintf("demo: --report %s cannot be written: %v", report, err)}
	}
	log, _, err := newLogger(stderr, logLevel, "text")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "surge-demo-")
	if err != nil {
		return err
	}
	// The throwaway sale's directory goes when the demo ends, unless
	// --keep asked for it or the run needs its database looked at: a
	// verdict that did not pass (failed, or not reached: the export
	// unreadable), or a report that could not be written.
	keepDir := keep
	defer func() {
		if keepDir {
			fmt.Fprintf(stdout, "the demo's data directory stays: %s\n", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove the demo's temporary directory", "dir", dir, "err", err)
		}
	}()
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	// serve's defaults, on a free port and a throwaway directory.
	c := newServeConfig()
	c.httpAddr = "127.0.0.1:0"
	c.dataDir = filepath.Join(dir, "data")
	c.adminToken = hex.EncodeToString(tok[:])
	c.insecureUserHeader = true // the demo's buyers are local and anonymous
	srv, err := startServer(ctx, c, log.With("component", "server"))
	if err != nil {
		return err
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		return srv.shutdown(c.shutdownTimeout)
	}
	defer stop()

	// A spike whose area is the crowd: ramp a quarter, hold half, decay a
	// quarter, so peak × (¼/2 + ½ + ¼/2) × length = users.
	peak := math.Ceil(float64(users) / (0.75 * peakFor.Seconds()))
	shape := bench.Spike{Peak: peak, Ramp: peakFor / 4, Hold: peakFor / 2, Decay: peakFor / 4}
	fmt.Fprintf(stdout, "surge demo: server on %s, data in %s\n", srv.url(), c.dataDir)
	fmt.Fprintf(stdout, "selling %d units (limit %d per buyer) to %d buyers: %s\n\n", stock, limit, users, shape)
	cfg := bench.Config{
		Target: srv.url(), SaleID: "demo", AdminToken: c.adminToken,
		CreateSale: true, Stock: stock, PerUserLimit: limit,
		Users: users, MaxQuantity: 1, RetryShare: 0.1, UserPrefix: "demo-",
		Mode: bench.OpenLoop, Shape: shape, Connections: 256, Timeout: 10 * time.Second, Retry: true, Seed: 1,
	}
	res, err := runAndVerify(ctx, cfg, true, stderr)
	if res == nil {
		return err
	}
	// Decided before anything else can fail: the evidence of a run that
	// did not pass stays, whatever fails after.
	if err != nil || !res.Verdict.OK {
		keepDir = true
	}
	bench.WriteSummary(stdout, res)
	if werr := writeReports(res, "", report, stdout); werr != nil {
		keepDir = true // the figures are lost; the orders are not
		return werr
	}
	if err != nil {
		return err // the export could not be read: NOT VERIFIED
	}
	if keep {
		fmt.Fprintf(stdout, "\nserver still running at %s (admin token %s); Ctrl-C stops it\n", srv.url(), c.adminToken)
		select {
		case <-ctx.Done():
		case err := <-srv.errc:
			return err
		}
	}
	if err := stop(); err != nil {
		return err
	}
	if !res.Verdict.OK {
		return errViolation
	}
	return nil
}

// writable reports whether a file may be written at path, changing
// nothing: an existing file opens for writing (not truncated), else its
// directory takes a new file.
func writable(path string) error {
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		return f.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".surge-demo-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}
