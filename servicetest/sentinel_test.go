package servicetest

import (
	"strings"
	"testing"
	"time"
)

// TestRedisSentinelReplicaStaysBehind: a paused Link keeps the replica
// behind its master however long a test takes, and Failover promotes the
// replica as it is. Before, the Sentinel saw the replica replicating from
// an address that was not the master's (the Link) and, once it had known
// the replica for failover-timeout (5 s), re-pointed it at the master
// directly: the replica caught up around the pause (the test it served
// proved nothing about lost writes), and the CLIENT KILL that comes with
// the re-pointing dropped the Sentinel's own links to the replica, so a
// failover that began then aborted "no good slave" (TestRedisSentinelFailover
// failed so in CI).
func TestRedisSentinelReplicaStaysBehind(t *testing.T) {
	rs := StartRedisSentinel(t)
	if got := rs.cli(rs.master, "set", "before", "1"); !strings.Contains(got, "OK") {
		t.Fatalf("set on the master: %q", got)
	}
	rs.wait(10*time.Second, "the replica has the write made before the pause", func() bool {
		return strings.TrimSpace(rs.cli(rs.replica, "exists", "before")) == "1"
	})
	rs.Link.Pause()
	if got := rs.cli(rs.master, "set", "late", "1"); !strings.Contains(got, "OK") {
		t.Fatalf("set on the master: %q", got)
	}
	// Past the 5 s after which the Sentinel used to re-point the replica
	// and its next 10 s INFO refresh, which did it.
	time.Sleep(12 * time.Second)
	if got := strings.TrimSpace(rs.cli(rs.replica, "exists", "late")); got != "0" {
		t.Fatalf("the replica has the write made while its link was paused (exists: %q); replica: %s", got,
			lastLines(rs.replica.out.String(), 3))
	}
	rs.Failover()
	if got := strings.TrimSpace(rs.cli(rs.replica, "exists", "late")); got != "0" {
		t.Fatalf("the promoted replica has the write made while its link was paused (exists: %q)", got)
	}
}
