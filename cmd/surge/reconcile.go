package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/reconcile"
	"github.com/surgehq/surge/sqlite"
)

// errMismatch is reconcile's exit status 1 when anything mismatched; the
// report itself is on stdout.
type errMismatch struct{ n int }

func (e errMismatch) Error() string {
	return "reconcile: " + reconcile.Count(e.n, "mismatch", "mismatches")
}

// errNoVerdict is reconcile's exit status 3: nothing was compared (the
// data directory or PostgreSQL could not be read), or the books matched
// but the report could not be written. Exit 1 would tell a script the
// books mismatch.
type errNoVerdict struct{ err error }

func (e errNoVerdict) Error() string { return e.err.Error() }
func (e errNoVerdict) Unwrap() error { return e.err }

// notCompared is errNoVerdict of a store that could not be read.
func notCompared(err error) error {
	return errNoVerdict{fmt.Errorf("reconcile: nothing compared: %w", err)}
}

// reconcileCmd runs `surge reconcile --settlement FILE.csv`: the provider's
// settlement against the data directory (read-only, without its lock, so
// also while serving) or, with --postgres-url, the cluster's PostgreSQL.
func reconcileCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("reconcile", "surge reconcile --settlement FILE.csv [--data-dir DIR | --postgres-url URL | --config FILE] [--json]", stdout)
	var (
		settlement, dataDir, pgURL, config string
		asJSON                             bool
	)
	fs.StringVar(&settlement, "settlement", "", "the provider's settlement file: CSV with a header row, then payment id, order id, amount, currency, status (required)")
	fs.StringVar(&dataDir, "data-dir", "./surge-data", "embedded mode: the data directory, read-only (a running server may hold it)")
	fs.StringVar(&pgURL, "postgres-url", "", "cluster mode: the PostgreSQL of the nodes, read-only (its schema must be this version's)")
	fs.StringVar(&config, "config", "", "serve's configuration file: the data-dir or postgres-url it names is read, unless a flag or SURGE_* variable gives one")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	set, err := configSettings(fs, args, config, "data-dir", "postgres-url")
	if err != nil {
		return errUsage{"reconcile: --config: " + err.Error()}
	}
	fromFile := ""
	if dir, ok := set["data-dir"]; ok {
		dataDir, fromFile = dir, config
	}
	if url, ok := set["postgres-url"]; ok {
		pgURL = url
	}
	if settlement == "" || fs.NArg() > 0 {
		return errUsage{"reconcile: --settlement FILE.csv is required, and nothing else (run 'surge reconcile --help')"}
	}
	if pgURL != "" {
		// One store or the other. A PostgreSQL URL makes it the
		// cluster's, as in serve, over a SURGE_DATA_DIR of the environment
		// (the container image sets one); over a --data-dir the operator
		// typed, it would report on a store not asked for, and look as
		// final.
		if fs.onCommandLine(args)["data-dir"] {
			return errUsage{"reconcile: give --data-dir (embedded) or --postgres-url (cluster), not both (the URL may come from SURGE_POSTGRES_URL or the --config file)"}
		}
		// As surge serve parses it: a URL that does not parse is the
		// command's mistake (exit 2), not a PostgreSQL that could not be
		// read (exit 3, worth trying again).
		if err := postgres.CheckURL(pgURL); err != nil {
			return errUsage{fmt.Sprintf("reconcile: --postgres-url: %v", err)}
		}
	}
	f, err := os.Open(settlement)
	if err != nil {
		return errUsage{fmt.Sprintf("reconcile: %v", err)}
	}
	rows, err := reconcile.ReadSettlement(f)
	f.Close()
	if err != nil {
		return errUsage{err.Error()}
	}
	if pgURL == "" {
		// A missing database is the missing file of a usage error (exit
		// 2), as in openSource, said here where the flags are known.
		if _, err := os.Stat(filepath.Join(dataDir, sqlite.FileName)); errors.Is(err, os.ErrNotExist) {
			return errUsage{noDatabase("reconcile", fs, args, dataDir, fromFile, err)}
		}
	}
	src, done, err := openSource(ctx, dataDir, pgURL)
	if err != nil {
		if errors.As(err, new(errUsage)) {
			return err
		}
		return notCompared(err)
	}
	defer done()
	rep, err := reconcile.Run(ctx, src, rows)
	if err != nil {
		return notCompared(err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		err = fmt.Errorf("reconcile: write the report: %w", err)
		if rep.OK() {
			// Exit 1 would say the books mismatch, with no report to
			// show it: none reached the caller, as when nothing was
			// compared.
			return errNoVerdict{err}
		}
		return errors.Join(errMismatch{len(rep.Mismatches)}, err)
	}
	if !rep.OK() {
		return errMismatch{len(rep.Mismatches)}
	}
	return nil
}

func openSource(ctx context.Context, dataDir, pgURL string) (reconcile.Source, func(), error) {
	if pgURL != "" {
		db, err := postgres.Open(ctx, pgURL, postgres.Options{MaxConns: 2, ReadOnly: true})
		if errors.Is(err, postgres.ErrNoSchema) {
			// As a data directory without a database: nothing to compare
			// (and nothing created there), a usage error, not exit 1.
			return nil, nil, errUsage{fmt.Sprintf("reconcile: --postgres-url: %v", err)}
		}
		if err != nil {
			return nil, nil, err
		}
		// One instant for every read: a serving cluster commits payments
		// and purchases while this reads.
		v, err := db.View(ctx)
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		return pgSource{v}, func() { v.Close(context.Background()); db.Close() }, nil
	}
	r, err := sqlite.OpenReader(ctx, dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		// A missing database is the missing file of a usage error (exit
		// 2): nothing was compared, so exit 1 (mismatches) would lie.
		return nil, nil, errUsage{fmt.Sprintf("reconcile: --data-dir %s holds no database: %v", dataDir, err)}
	}
	if err != nil {
		return nil, nil, err
	}
	return sqliteSource{r}, func() { r.Close() }, nil
}

// sqliteSource reads a data directory: a live sale's remaining is
// derived from its orders there, so only archived ones are counted.
type sqliteSource struct{ *sqlite.Reader }

func (s sqliteSource) Sales(ctx context.Context) ([]reconcile.Sale, error) {
	sales, archived, err := s.Reader.Sales(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]reconcile.Sale, len(sales))
	for i, sl := range sales {
		rem, ok := archived[sl.ID]
		out[i] = reconcile.Sale{Sale: sl, Remaining: rem, Counted: ok}
	}
	return out, nil
}

// pgSource reads the cluster's PostgreSQL, whose sold column is a count
// of its own.
type pgSource struct{ *postgres.View }

func (s pgSource) Sales(ctx context.Context) ([]reconcile.Sale, error) {
	counts, err := s.SaleCounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]reconcile.Sale, len(counts))
	for i, c := range counts {
		out[i] = reconcile.Sale{Sale: surge.Sale{ID: c.ID, Stock: c.Stock}, Remaining: c.Remaining, Counted: true}
	}
	return out, nil
}
