package main

import (
	"context"
	"fmt"
	"io"

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
	fs := newFlagSet("backup", "surge backup --to FILE [--data-dir DIR]", stdout)
	dataDir := fs.String("data-dir", newServeConfig().dataDir, "data directory of the embedded database (serve's --data-dir)")
	to := fs.String("to", "", "file to write the backup to; it must not exist (required)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage{fmt.Sprintf("backup: unexpected argument %q (run 'surge backup --help')", fs.Arg(0))}
	}
	if *to == "" {
		return errUsage{"backup: --to FILE is required"}
	}
	info, err := sqlite.Backup(ctx, *dataDir, *to)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s: %d sales, %d orders, %d bytes (quick_check ok)\n", *to, info.Sales, info.Orders, info.Bytes)
	fmt.Fprintf(stdout, "restore: copy it as %s into a new, empty data directory and start surge serve there\n", sqlite.FileName)
	return nil
}
