// Command surge runs and operates Surge, the flash-sale engine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/surgehq/surge/version"
)

const usage = `surge — a flash-sale engine

Usage:
  surge demo [flags]           a whole flash sale in one command: server, spike, verdict, report
  surge serve [flags]          run the server (embedded mode: data in one directory)
  surge bench [flags]          fire a crowd at a running server and verify the guarantees
  surge sale create [flags]    create a sale on a running server
  surge sale list [flags]      list sales
  surge sale get ID [flags]    show one sale
  surge sale pause|resume ID   stop or restart a live sale's purchases
  surge sale end ID            end a sale now
  surge sale update ID [flags] change a sale's name, stock, limit, end or hold
  surge sale archive ID        take an ended (or not yet started) sale out of service
  surge order get ID [flags]   show an order
  surge order cancel ID        cancel a reservation: its units go back to the stock
  surge order pay ID           settle a reservation by hand: it becomes paid
  surge backup --to FILE       copy the embedded database, also while serve runs
  surge reconcile [flags]      compare a payment provider's settlement file with the orders and payments (对账)
  surge probe [--url URL]      health check: exit 0 when URL (default /healthz) answers 2xx
  surge version                print the version, commit and Go version

Run 'surge help COMMAND' or 'surge COMMAND --help' for the flags of a command. Flags can also be set as
environment variables SURGE_<NAME>, e.g. SURGE_HTTP_ADDR, except where a command's --help says otherwise
(sale update takes the sale's fields only as flags).
`

func main() {
	// Here, not in serve: GOMAXPROCS is the process's, and tests run serve
	// inside theirs.
	if len(os.Args) > 1 && commitsHere(os.Args[1], os.Args[2:]) {
		raiseProcs(os.Getenv)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// The first signal starts a graceful stop; a second one then ends
	// the process at once (the signals' default), cutting a long drain
	// short. That loses no confirmed order: a 201 is sent only once its
	// order is committed. What it skips is the clean stop's extras (the
	// in-flight answers, the ledger image, the leases' release), which a
	// crash skips too.
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(withUpgrades(ctx), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// versionCmd is `surge version`: it takes no flag and no argument, and
// refuses any as every command does, rather than print the version for a
// command line it did not understand.
func versionCmd(args []string, stdout io.Writer) error {
	fs := newFlagSet("version", "surge version", stdout)
	if err := fs.parseArgs(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage{fmt.Sprintf("version: unexpected argument %q (run 'surge version --help')", fs.Arg(0))}
	}
	fmt.Fprintln(stdout, "surge", version.Get())
	return nil
}

// errUsage marks an error already reported as a usage error (exit 2).
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "sale":
		err = clientError(sale(ctx, args[1:], stdout))
	case "order":
		err = clientError(order(ctx, args[1:], stdout))
	case "bench":
		err = clientError(benchCmd(ctx, args[1:], stdout, stderr))
	case "demo":
		err = demo(ctx, args[1:], stdout, stderr)
	case "backup":
		err = backupCmd(ctx, args[1:], stdout)
	case "reconcile":
		err = reconcileCmd(ctx, args[1:], stdout)
	case "probe":
		err = probe(ctx, args[1:], stdout)
	case "version", "--version", "-version":
		err = versionCmd(args[1:], stdout)
	case "help", "-h", "--help", "-help":
		if len(args) > 1 && args[0] == "help" {
			// surge help serve = surge serve --help (sale create too).
			return run(ctx, append(slices.Clone(args[1:]), "--help"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
	default:
		err = errUsage{fmt.Sprintf("unknown command %q%s (run 'surge --help')", args[0], didYouMean(args[0], "",
			[]string{"demo", "serve", "bench", "sale", "order", "backup", "reconcile", "probe", "version", "help"}))}
	}
	var ue errUsage
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "surge:", ue.msg)
		return 2
	case errors.As(err, new(errNoVerdict)):
		fmt.Fprintln(stderr, "surge:", err)
		return 3
	default:
		fmt.Fprintln(stderr, "surge:", err)
		return 1
	}
}

// flagSet is a command's flags: errors are reported in one line (exit 2),
// help goes to stdout on -h.
type flagSet struct {
	*flag.FlagSet
	synopsis string
	stdout   io.Writer
	// envNote replaces the help's "each also settable as SURGE_<NAME>"
	// for a command that refuses some of those variables.
	envNote string
}

func newFlagSet(name, synopsis string, stdout io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // parse prints help itself, and only for -h
	return &flagSet{FlagSet: fs, synopsis: synopsis, stdout: stdout}
}

func (f *flagSet) help() {
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		fmt.Fprintf(f.stdout, "Usage: %s\n", f.synopsis)
		return
	}
	note := f.envNote
	if note == "" {
		note = "each also settable as SURGE_<NAME>"
	}
	fmt.Fprintf(f.stdout, "Usage: %s\n\nFlags (%s):\n", f.synopsis, note)
	f.SetOutput(f.stdout)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}

// parse applies SURGE_<NAME> environment variables, then the command line.
func (f *flagSet) parse(args []string) error {
	if _, err := f.applyEnv(); err != nil {
		return err
	}
	return f.parseArgs(args)
}

// envName is the environment variable of a flag: SURGE_HTTP_ADDR for
// --http-addr.
func envName(flagName string) string {
	return "SURGE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets the flags whose SURGE_<NAME> variable is set, and returns
// their names.
func (f *flagSet) applyEnv() ([]string, error) {
	var set []string
	var envErr error
	f.VisitAll(func(fl *flag.Flag) {
		env := envName(fl.Name)
		if v, ok := os.LookupEnv(env); ok && envErr == nil {
			if err := f.Set(fl.Name, v); err != nil {
				envErr = errUsage{fmt.Sprintf("%s: invalid value %q for %s: %v", f.Name(), v, env, explain(fl.Value, err))}
			}
			set = append(set, fl.Name)
		}
	})
	return set, envErr
}

// onCommandLine reports which of f's flags args names, apart from the
// SURGE_* variables parse also applies: f itself cannot tell them apart.
func (f *flagSet) onCommandLine(args []string) map[string]bool {
	cl := flag.NewFlagSet(f.Name(), flag.ContinueOnError)
	cl.SetOutput(io.Discard)
	f.VisitAll(func(fl *flag.Flag) {
		b, ok := fl.Value.(interface{ IsBoolFlag() bool })
		cl.Var(seen{ok && b.IsBoolFlag()}, fl.Name, "")
	})
	_ = cl.Parse(args) // f.parse has reported any error
	named := map[string]bool{}
	cl.Visit(func(fl *flag.Flag) { named[fl.Name] = true })
	return named
}

// seen is a flag value that keeps nothing: onCommandLine only asks
// whether a flag was given.
type seen struct{ boolFlag bool }

func (seen) String() string     { return "" }
func (seen) Set(string) error   { return nil }
func (s seen) IsBoolFlag() bool { return s.boolFlag }

// parseArgs parses the command line; -h prints the help.
func (f *flagSet) parseArgs(args []string) error {
	// The values explain their refusals while the command line is parsed
	// (the flag package formats the error itself), and are given back
	// before the help, which names each flag's type by its value's.
	var plain []flag.Value
	f.VisitAll(func(fl *flag.Flag) {
		plain = append(plain, fl.Value)
		fl.Value = explained{fl.Value}
	})
	err := f.Parse(args)
	i := 0
	f.VisitAll(func(fl *flag.Flag) { fl.Value = plain[i]; i++ })
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.help()
			return err
		}
		return errUsage{fmt.Sprintf("%s: %v%s (run 'surge %s --help')", f.Name(), err, flagTypo(f.FlagSet, err), f.Name())}
	}
	return nil
}

// explained is a flag's value whose refusal says what the flag takes: the
// flag package's own says "parse error" of a duration without its unit,
// a fraction given for a whole number or a bad boolean alike.
type explained struct{ flag.Value }

func (e explained) Set(s string) error { return explain(e.Value, e.Value.Set(s)) }

func (e explained) IsBoolFlag() bool {
	b, ok := e.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// explain adds to err, v's refusal of a value, what v takes.
func explain(v flag.Value, err error) error {
	g, ok := v.(flag.Getter)
	if err == nil || !ok {
		return err
	}
	var want string
	switch g.Get().(type) {
	case time.Duration:
		want = "want a duration with its unit, such as 30s, 250ms or 1m30s"
	case bool:
		want = "want true or false"
	case int, int64:
		want = "want a whole number"
	case uint, uint64:
		want = "want a whole number, 0 or more"
	case float64:
		want = "want a number, such as 5 or 0.5"
	default:
		return err
	}
	if err.Error() == "parse error" { // the flag package's errParse: nothing more to it
		return errors.New(want)
	}
	return fmt.Errorf("%w (%s)", err, want)
}
