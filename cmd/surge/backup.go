package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/surgehq/surge/sqlite"
)

// backupCmd copies the embedded database of a data directory to a new
// file while `surge serve` may be serving from it (sqlite.Backup).
//
// It reads the data directory itself rather than asking the server over
// an admin endpoint: it needs no token, no network path to the server
// and no server at all (a stopped node is backed up the same way), and
// the copy lands on the host that holds the data, where a restore needs
// it. A node in a container is backed up with `docker exec` or `kubectl
// exec` running this command beside the server.
func backupCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("backup", "surge backup --to FILE [--data-dir DIR | --config FILE]", stdout)
	dataDir := fs.String("data-dir", newServeConfig().dataDir, "data directory of the embedded database (serve's --data-dir)")
	config := fs.String("config", "", "serve's configuration file: the data-dir it names is backed up, unless --data-dir or SURGE_DATA_DIR gives one")
	to := fs.String("to", "", "file to write the backup to; it must not exist (required)")
	if err := fs.parse(args); err != nil {
		return err
	}
	// A unit that keeps its settings in the file (the shipped systemd
	// one) names its data directory nowhere else.
	fromFile := ""
	set, err := configSettings(fs, args, *config, "data-dir")
	if err != nil {
		return errUsage{"backup: --config: " + err.Error()}
	}
	if dir, ok := set["data-dir"]; ok {
		*dataDir, fromFile = dir, *config
	}
	if fs.NArg() > 0 {
		return errUsage{fmt.Sprintf("backup: unexpected argument %q (run 'surge backup --help')", fs.Arg(0))}
	}
	if *to == "" {
		return errUsage{"backup: --to FILE is required"}
	}
	if _, err := os.Stat(filepath.Join(*dataDir, sqlite.FileName)); errors.Is(err, os.ErrNotExist) {
		msg := noDatabase("backup", fs, args, *dataDir, fromFile, err)
		if _, cluster := os.LookupEnv(envName("postgres-url")); cluster {
			// A cluster node's environment: its orders are not in a
			// data directory at all.
			msg += "; this environment sets SURGE_POSTGRES_URL: a cluster keeps its orders in PostgreSQL, backed up with PostgreSQL's own tools (docs/operations.md)"
		}
		return errors.New(msg)
	}
	info, err := sqlite.Backup(ctx, *dataDir, *to)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s: %d sales, %d orders, %d bytes (quick_check ok)\n", *to, info.Sales, info.Orders, info.Bytes)
	fmt.Fprintf(stdout, "restore: copy it as %s into a new, empty data directory and start surge serve there\n", sqlite.FileName)
	return nil
}

// noDatabase says that data directory dir holds no database (err, the
// failed stat of its file), and where dir came from: the command line,
// SURGE_DATA_DIR, the configuration file fromFile (if not "") or the
// default, which a command run beside a server given another directory
// reads without saying so.
func noDatabase(cmd string, fs *flagSet, args []string, dir, fromFile string, err error) string {
	env, inEnv := os.LookupEnv(envName("data-dir"))
	switch {
	case fs.onCommandLine(args)["data-dir"]:
		return fmt.Sprintf("%s: --data-dir %s holds no database (%v)", cmd, dir, err)
	case fromFile != "":
		return fmt.Sprintf("%s: the data-dir of %s, %s, holds no database (%v)", cmd, fromFile, dir, err)
	case inEnv:
		return fmt.Sprintf("%s: SURGE_DATA_DIR=%s holds no database (%v); give serve's data directory with --data-dir DIR", cmd, env, err)
	default:
		return fmt.Sprintf("%s: the default data directory %s holds no database (%v); give serve's data directory with --data-dir DIR or SURGE_DATA_DIR", cmd, dir, err)
	}
}

// configSettings reads serve's configuration file at path as serve does
// (a file serve would refuse is refused) and returns the values it gives
// keys, serve's flag names, but only of those neither args (parsed by fs)
// nor a SURGE_<NAME> variable sets: serve's order, the command line, then
// the environment, then the file. A command run beside a server reads its
// settings where the server does. path "" reads nothing.
func configSettings(fs *flagSet, args []string, path string, keys ...string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	serve := newFlagSet("serve", "", io.Discard)
	c := newServeConfig()
	c.register(serve)
	inFile, err := applyFile(serve, path)
	if err != nil {
		return nil, err
	}
	named := fs.onCommandLine(args)
	set := map[string]string{}
	for _, key := range keys {
		v, ok := inFile[key]
		if _, inEnv := os.LookupEnv(envName(key)); ok && !inEnv && !named[key] {
			set[key] = v
		}
	}
	return set, nil
}
