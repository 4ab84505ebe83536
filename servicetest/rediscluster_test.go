package servicetest

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClusterNodeBusPortTaken: a node whose cluster bus port (its port +
// 10,000) some other socket holds aborts at once; start reports it with
// redis-server's reason, so StartRedisCluster can try another port. It used
// to wait 10 s and fail the test ("did not come up"): a bus port that
// collides with one of the suite's own connections failed
// TestRedisClusterFailover once under load.
func TestClusterNodeBusPortTaken(t *testing.T) {
	port := clusterPort(t)
	bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	n := &clusterNode{port: port, dir: t.TempDir()}
	began := time.Now()
	err = n.start()
	if err == nil {
		n.kill()
		t.Fatalf("redis-server started on port %d with its bus port taken", port)
	}
	if took := time.Since(began); !strings.Contains(err.Error(), "exited") || took > 5*time.Second {
		t.Errorf("start after %v: %v; want at once an error saying it exited", took, err)
	}
	t.Log(err)
	// clusterPort checks the bus port too: every port it gives has both free.
	for range 20 {
		p := clusterPort(t)
		for _, q := range []int{p, p + 10000} {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				t.Fatalf("clusterPort gave %d, but %d is taken: %v", p, q, err)
			}
			ln.Close()
		}
	}
}
