package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestClusterStopResignsAfterLongDrain: a node stopped (SIGTERM) while a
// request kept the drain going for the whole --shutdown-timeout (a buyer
// whose purchase's body was still arriving) kept its leases, the leader's
// and the outbox relay's: giving them up got no time of its own, only
// what the drain had left of the shutdown's deadline, none. The next node
// then waited out a whole lease term before it led or published. A clean
// stop gives its leases up, within a bound of its own.
func TestClusterStopResignsAfterLongDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const shutdownTimeout = time.Second
	servicetest.NATS(t) // is up
	args := clusterArgs(t)
	ns := args[slices.Index(args, "--redis-prefix")+1]
	// A term that cannot end by itself while the test looks.
	args[slices.Index(args, "--cluster-lease-ttl")+1] = "60s"
	db := servicetest.Conn(t, ns)
	ctx := context.Background()
	held := func() []string {
		rows, err := db.Query(ctx, `SELECT name FROM leases WHERE holder LIKE 'a/%' AND expires_at > now() ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			names = append(names, n)
		}
		return names
	}

	token := "stop-resign-token"
	p := startProc(t, t.TempDir(), token, append(args, "--node-id", "a", "--nats-url", servicetest.NATSURL(),
		"--shutdown-timeout", shutdownTimeout.String())...)
	saleID := createSale(t, p.base, token, 10, 1)
	waitUntil(t, "node a to hold the jobs and outbox leases", 20*time.Second, func() bool {
		return slices.Equal(held(), []string{"jobs", "outbox"})
	})

	// A purchase whose body is still on its way: the handler reads it
	// (the server's 100 Continue says so) and waits for the rest, longer
	// than the shutdown timeout.
	c, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/sales/%s/purchases HTTP/1.1\r\nHost: surge\r\nX-User-ID: slow\r\nContent-Type: application/json\r\n"+
		"Content-Length: 20\r\nExpect: 100-continue\r\n\r\n", saleID)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("the purchase's handler did not start reading its body: %q, %v", line, err)
	}
	if _, err := c.Write([]byte(`{"quan`)); err != nil {
		t.Fatal(err)
	}

	stopsWithin(t, p, shutdownTimeout, "while a purchase's body was still arriving")
	if left := held(); len(left) > 0 {
		t.Errorf("node a stopped cleanly but still holds the leases %v (for up to their 60 s term): the next node waits them out\n%s",
			left, p.logTail())
	}
}
