package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/bench"
	"github.com/surgehq/surge/client"
)

// errViolation is returned when a run's verification failed: exit 1 after
// the report is printed.
var errViolation = errors.New("verification failed: a guarantee was violated (see the report above)")

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "surge bench --server URL (--sale ID | --stock N) [flags]", stdout)
	var (
		cfg             bench.Config
		shape, jsonPath string
		htmlPath        string
		rate            float64
		noVerify        bool
		seed            uint64
	)
	fs.StringVar(&cfg.Target, "server", "http://127.0.0.1:8080", "base URL of the Surge server")
	fs.StringVar(&cfg.Target, "target", "http://127.0.0.1:8080", "the same as --server (its former name)")
	fs.StringVar(&cfg.SaleID, "sale", "", "sale to buy from (created with --stock when given)")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "admin token: creates the sale and reads the export to verify")
	fs.Int64Var(&cfg.Stock, "stock", 0, "create the sale with this many units first")
	fs.Int64Var(&cfg.PerUserLimit, "per-user-limit", 1, "per-buyer limit of a sale created with --stock")
	fs.IntVar(&cfg.Users, "users", 10000, "distinct buyers in the crowd, each sending one purchase")
	fs.Int64Var(&cfg.MaxQuantity, "quantity", 1, "each buyer asks for 1..N units")
	fs.Float64Var(&cfg.RetryShare, "retry-share", 0.1, "share of buyers that resend their purchase with the same Idempotency-Key")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", "", "mint buyer JWTs with this HS256 secret (default: X-User-ID, needs --insecure-user-header on the server)")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "", "prefix of buyer ids, to run several crowds against one sale (default: random)")
	fs.StringVar(&shape, "shape", "", "open-loop load shape: spike:PEAK:RAMP:HOLD:DECAY (e.g. spike:5000:2s:5s:2s) or constant:RATE:DURATION")
	fs.Float64Var(&rate, "rate", 0, "open loop at this fixed rate per second (for --duration, default 10s); shorthand for --shape constant")
	fs.IntVar(&cfg.Connections, "connections", 256, "concurrent requests at most (closed loop: the workers)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "upper bound of the run (default: until the crowd is done)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.BoolVar(&cfg.Retry, "retry", false, "honour Retry-After on 429/503 by resending the same request")
	fs.Uint64Var(&seed, "seed", 1, "seed of the crowd (quantities, who retries)")
	fs.StringVar(&jsonPath, "json", "", "write every figure as JSON to this file")
	fs.StringVar(&htmlPath, "html", "", "write a self-contained HTML report to this file")
	fs.BoolVar(&noVerify, "no-verify", false, "skip verification against the admin export")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage{fmt.Sprintf("bench: unexpected argument %q (run 'surge bench --help')", fs.Arg(0))}
	}
	if err := checkServer("bench", cfg.Target); err != nil {
		return err
	}
	// A rate or stock out of range would not be refused later: --rate
	// -500 ran a closed loop, and --stock -5 bought from an existing sale.
	if !(rate >= 0) || math.IsInf(rate, 0) {
		return errUsage{fmt.Sprintf("bench: --rate must be a positive number of purchases per second, not %v", rate)}
	}
	if cfg.Stock < 0 {
		return errUsage{fmt.Sprintf("bench: --stock must be positive to create the sale, not %d (leave it out to buy from --sale)", cfg.Stock)}
	}
	cfg.Seed = seed
	cfg.CreateSale = cfg.Stock > 0
	if !cfg.CreateSale && cfg.SaleID == "" {
		return errUsage{"bench: give --sale ID, or --stock N to create a sale"}
	}
	if cfg.UserPrefix == "" {
		cfg.UserPrefix = fmt.Sprintf("b%x-", time.Now().UnixNano()&0xffffff)
	}
	switch {
	case shape != "" && rate > 0:
		return errUsage{"bench: --shape and --rate are exclusive"}
	case shape != "":
		s, err := bench.ParseShape(shape)
		if err != nil {
			return errUsage{"bench: --shape: " + err.Error()}
		}
		cfg.Mode, cfg.Shape = bench.OpenLoop, s
	case rate > 0:
		d := cfg.Duration
		if d == 0 {
			d = 10 * time.Second
		}
		cfg.Mode, cfg.Shape = bench.OpenLoop, bench.Constant{PerSecond: rate, For: d}
	default:
		cfg.Mode = bench.ClosedLoop
	}
	// The values bench refuses (--users 0, --retry-share 2, --per-user-limit
	// over --stock…) are the command line's too: refused before anything is
	// sent, exit 2. The token is not checked here: none is exit 1, below.
	check := cfg
	if check.AdminToken == "" {
		check.AdminToken = "checked-below"
	}
	if err := bench.CheckConfig(check); err != nil {
		msg := err.Error()
		// The message names the field in words ("max quantity"), which
		// need not be the flag the user typed (--quantity): name it.
		var ce *bench.ConfigError
		if errors.As(err, &ce) && benchFlag(ce.Field) != "" {
			msg = "bench: --" + benchFlag(ce.Field) + ": " + ce.Err.Error()
		}
		return errUsage{msg + " (run 'surge bench --help')"}
	}
	// After the command line's checks (exit 2): no admin token is exit 1,
	// as a wrong one is, and as for surge sale and surge order (README).
	if (cfg.CreateSale || !noVerify) && cfg.AdminToken == "" {
		return errors.New("bench: no admin token: pass --admin-token or set SURGE_ADMIN_TOKEN; it creates the sale and reads the export to verify (or pass --no-verify)")
	}
	// The load generator shares the machine with what it measures; fewer
	// GC cycles cut its CPU by about 15% (unless the user set GOGC).
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	res, verr := runAndVerify(ctx, cfg, !noVerify, stderr)
	if res == nil {
		return verr
	}
	// A run whose verification could not read the export is reported all
	// the same (NOT VERIFIED), and then fails.
	bench.WriteSummary(stdout, res)
	if err := writeReports(res, jsonPath, htmlPath, stdout); err != nil {
		return err
	}
	if verr != nil {
		return verr
	}
	if res.Verdict != nil && !res.Verdict.OK {
		return errViolation
	}
	return nil
}

// benchFlag names the flag that sets a bench.Config field that
// bench.CheckConfig may refuse ("" for one no flag sets).
func benchFlag(field string) string {
	switch field {
	case "Target":
		return "server"
	case "SaleID":
		return "sale"
	case "AdminToken":
		return "admin-token"
	case "Stock":
		return "stock"
	case "PerUserLimit":
		return "per-user-limit"
	case "Users":
		return "users"
	case "MaxQuantity":
		return "quantity"
	case "RetryShare":
		return "retry-share"
	case "UserPrefix":
		return "user-prefix"
	case "Shape":
		return "shape"
	case "Connections":
		return "connections"
	case "Duration":
		return "duration"
	case "Timeout":
		return "timeout"
	}
	return ""
}

// runAndVerify fires the crowd, then checks the guarantees from the
// server's export. A run made whose export could not be read afterwards
// is returned (its Verdict nil) with the error.
func runAndVerify(ctx context.Context, cfg bench.Config, verify bool, progress io.Writer) (*bench.Result, error) {
	if verify && !cfg.CreateSale {
		// The export the run is verified against is read only after the
		// crowd has bought: a token it refuses (or an address that hides
		// it) is learned now, before a unit is sold for a run whose
		// figures would be lost. Creating the sale checks the token.
		if err := exportReadable(ctx, cfg); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	res, confirmed, err := bench.Run(ctx, cfg, progress)
	if err != nil {
		return nil, err
	}
	if !verify {
		return res, nil
	}
	// Verification must see the final state even if the run was cut short
	// by Ctrl-C, so it gets a context of its own.
	vctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sale, orders, err := bench.Fetch(vctx, client.New(cfg.Target, cfg.AdminToken), res.SaleID)
	if err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	// VerifyRun also fails a run that tested nothing (purchases refused,
	// nothing reserved while units were left), which Verify would pass.
	res.Verdict = bench.VerifyRun(res, sale, orders, confirmed, time.Now())
	return res, nil
}

func writeReports(res *bench.Result, jsonPath, htmlPath string, stdout io.Writer) error {
	write := func(path string, render func(io.Writer) error) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := render(f); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "report written: %s\n", path)
		return nil
	}
	if jsonPath != "" {
		if err := write(jsonPath, func(w io.Writer) error { return bench.WriteJSON(w, res) }); err != nil {
			return err
		}
	}
	if htmlPath != "" {
		if err := write(htmlPath, func(w io.Writer) error { return bench.WriteHTML(w, res) }); err != nil {
			return err
		}
	}
	return nil
}

// exportReadable reads the start of the order export of cfg's sale with
// cfg's admin token: nil if the server serves it, or if the sale does not
// exist (bench.Run says so). It stops at the first order, and waits for
// it no longer than a request of the client.
func exportReadable(ctx context.Context, cfg bench.Config) error {
	ctx, cancel := context.WithTimeout(ctx, client.DefaultTimeout)
	defer cancel()
	stop := errors.New("stop")
	err := client.New(cfg.Target, cfg.AdminToken).Orders(ctx, cfg.SaleID, func(api.Order) error { return stop })
	if err == nil || errors.Is(err, stop) || errors.Is(err, surge.ErrSaleNotFound) {
		return nil
	}
	return publicListener(ctx, cfg.Target, cfg.AdminToken, fmt.Errorf("export orders of sale %q: %w", cfg.SaleID, err))
}
