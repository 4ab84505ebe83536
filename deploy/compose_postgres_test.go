package deploy_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestComposePostgresHealthyOnlyOverTCP: the compose nodes start once
// PostgreSQL's healthcheck passes (depends_on: service_healthy) and
// connect to it over TCP (postgres:5432). On its first start the postgres
// image runs initdb and its init scripts on a server that listens on the
// Unix socket alone (no listen_addresses), then restarts it on TCP: a
// check over the socket, pg_isready's default, passes on that first
// server, and the nodes start against a PostgreSQL that refuses their
// connections. The shipped check, run with the real pg_isready against a
// real PostgreSQL listening as the image's init does (socket only; PGHOST
// and PGPORT stand for the container's socket directory and port), must
// fail, and pass once the server listens on TCP.
func TestComposePostgresHealthyOnlyOverTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a PostgreSQL server")
	}
	var c struct {
		Services map[string]struct {
			Healthcheck struct{ Test []string }
		}
	}
	if err := yaml.Unmarshal([]byte(read(t, "docker-compose.yml")), &c); err != nil {
		t.Fatal(err)
	}
	check := c.Services["postgres"].Healthcheck.Test
	if len(check) < 2 || check[0] != "CMD" || check[1] != "pg_isready" {
		t.Fatalf("postgres's healthcheck is %q, want [CMD pg_isready …]", check)
	}
	pgIsReady := tool(t, "pg_isready", "apt-get install postgresql-client")
	// Debian keeps initdb and postgres out of PATH, in the server's own
	// directory.
	initdb, _ := exec.LookPath("initdb")
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); initdb == "" && len(m) > 0 {
		initdb = m[len(m)-1]
	}
	if initdb == "" {
		initdb = tool(t, "initdb", "apt-get install postgresql")
	}
	postgres := filepath.Join(filepath.Dir(resolve(t, initdb)), "postgres")

	// PostgreSQL refuses to run as root: as the postgres user then, in a
	// directory it owns.
	var cred *syscall.Credential
	dir, err := os.MkdirTemp("", "surge-compose-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	as := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := as(initdb, "-D", data, "-U", "surge", "--auth", "trust", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	// serve runs PostgreSQL listening on addresses (none: the socket
	// alone) until the returned function stops it.
	serve := func(addresses string) func() {
		cmd := as(postgres, "-D", data, "-k", dir, "-p", port, "-c", "listen_addresses="+addresses, "-c", "fsync=off")
		logPath := filepath.Join(dir, "postgres-"+addresses+".log")
		f, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
			_ = cmd.Wait()
		}
		t.Cleanup(stop)
		// Ready on its socket, whatever it listens on besides.
		for deadline := time.Now().Add(time.Minute); exec.Command(pgIsReady, "-q", "-h", dir, "-p", port).Run() != nil; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(logPath)
				t.Fatalf("PostgreSQL (listen_addresses=%q) not ready on its socket within a minute:\n%s", addresses, b)
			}
		}
		return stop
	}
	// The shipped check as the container runs it: its socket directory
	// and port are the defaults there.
	healthy := func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, pgIsReady, check[2:]...)
		cmd.Env = append(os.Environ(), "PGHOST="+dir, "PGPORT="+port)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%q: %v", check[1:], err)
		}
		return err == nil, strings.TrimSpace(string(out))
	}

	stop := serve("")
	if ok, out := healthy(); ok {
		t.Errorf("postgres's healthcheck %q passes on a PostgreSQL that listens on its Unix socket alone, as the image's first-start init runs it: "+
			"the nodes start and connect over TCP to a server that refuses them (%s); want the check over TCP, as the nodes connect", check[1:], out)
	}
	stop()
	serve("127.0.0.1")
	if ok, out := healthy(); !ok {
		t.Errorf("postgres's healthcheck %q fails on a PostgreSQL that listens on TCP: %s", check[1:], out)
	}
}

// resolve is path with its symbolic links followed (Debian links initdb
// into /usr/local/bin or /usr/bin; postgres lies beside the real one).
func resolve(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
