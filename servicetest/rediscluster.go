package servicetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of a test's own on loopback: real
// redis-server processes with cluster mode on, joined by redis-cli
// --cluster create, stopped when the test ends. No persistence: a node
// that is killed comes back (if at all) empty, as a lost machine does.
type RedisCluster struct {
	t     testing.TB
	nodes []*clusterNode
}

type clusterNode struct {
	port   int
	dir    string
	cmd    *exec.Cmd
	exited <-chan struct{} // closed once cmd has exited
}

// NodeTimeout is the cluster's cluster-node-timeout: a master unreachable
// that long is failed, and its replica promoted about as long after.
const NodeTimeout = time.Second

// StartRedisCluster runs masters masters with replicas replicas each
// (Redis Cluster wants at least 3 masters).
func StartRedisCluster(t testing.TB, masters, replicas int) *RedisCluster {
	t.Helper()
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (scripts/services.sh installs it): %v", tool, err)
		}
	}
	c := &RedisCluster{t: t}
	t.Cleanup(c.stop)
	var addrs []string
	for range masters * (1 + replicas) {
		n := &clusterNode{dir: t.TempDir()}
		c.nodes = append(c.nodes, n)
		// Another process may take the port or its bus port between the
		// check and redis-server's bind: then try another.
		var err error
		for range 5 {
			n.port = clusterPort(t)
			if err = n.start(); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(n.port))
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(30 * time.Second)
	return c
}

// clusterPort returns a loopback port that a Redis Cluster node can take:
// free, with its cluster bus port (10,000 higher) free too and in range.
// A port the kernel hands out for ":0" comes from the ephemeral range
// (32768-60999 on Linux), where a fifth of the ports have no bus port
// (redis-server refuses a port above 55535) and any bus port may be
// some connection's: a node started there aborts.
func clusterPort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if port > 65535-10000 {
			ln.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		ln.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	t.Fatal("no loopback port with a free cluster bus port")
	return 0
}

func (n *clusterNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// start runs the node's redis-server and waits until it answers; an error
// with its output if it exits first or does not answer within 10 s.
func (n *clusterNode) start() error {
	var out strings.Builder
	// A node that failed to start may have left its config behind.
	_ = os.Remove(filepath.Join(n.dir, "nodes.conf"))
	n.cmd = exec.Command("redis-server", "--port", strconv.Itoa(n.port), "--bind", "127.0.0.1",
		"--dir", n.dir, "--save", "", "--appendonly", "no",
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(n.dir, "nodes.conf"),
		"--cluster-node-timeout", strconv.Itoa(int(NodeTimeout/time.Millisecond)),
		// A replica always takes over, however long it was cut off.
		"--cluster-replica-validity-factor", "0")
	n.cmd.Stdout, n.cmd.Stderr = &out, &out
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(exited) }()
	n.exited = exited
	deadline := time.Now().Add(10 * time.Second)
	for {
		if reply, err := exec.Command("redis-cli", "-p", strconv.Itoa(n.port), "ping").Output(); err == nil && strings.TrimSpace(string(reply)) == "PONG" {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited: %s", n.port, lastLines(out.String(), 3))
		default:
		}
		if time.Now().After(deadline) {
			_ = n.cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d did not come up in 10 s: %s", n.port, lastLines(out.String(), 3))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

func (c *RedisCluster) stop() {
	for _, n := range c.nodes {
		n.kill()
	}
}

func (n *clusterNode) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
	_ = os.RemoveAll(n.dir)
}

// URL is the cluster's address in the form surge serve takes:
// redis://first?addr=second&addr=….
func (c *RedisCluster) URL() string {
	var b strings.Builder
	b.WriteString("redis://" + c.nodes[0].addr())
	for i, n := range c.nodes[1:] {
		if i == 0 {
			b.WriteString("?")
		} else {
			b.WriteString("&")
		}
		b.WriteString("addr=" + n.addr())
	}
	return b.String()
}

// MasterOf is the address of the master that serves key's slot.
func (c *RedisCluster) MasterOf(ctx context.Context, key string) (string, error) {
	rc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{c.live().addr()}})
	defer rc.Close()
	slot, err := rc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return "", err
	}
	shards, err := rc.ClusterSlots(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, s := range shards {
		if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr, nil
		}
	}
	return "", fmt.Errorf("no master serves slot %d", slot)
}

func (c *RedisCluster) live() *clusterNode {
	for _, n := range c.nodes {
		if n.cmd != nil {
			return n
		}
	}
	c.t.Fatal("every node of the Redis Cluster is down")
	return nil
}

// Kill stops the node at addr at once (SIGKILL), as a lost machine.
func (c *RedisCluster) Kill(addr string) {
	for _, n := range c.nodes {
		if n.addr() == addr {
			n.kill()
			return
		}
	}
	c.t.Fatalf("no node at %s", addr)
}

// WaitHealthy waits (up to d) until every live node says
// cluster_state:ok: every slot served, after a failover too.
func (c *RedisCluster) WaitHealthy(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok := true
		for _, n := range c.nodes {
			if n.cmd == nil {
				continue
			}
			out, err := exec.Command("redis-cli", "-p", strconv.Itoa(n.port), "cluster", "info").Output()
			if err != nil || !strings.Contains(string(out), "cluster_state:ok") {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the Redis Cluster is not healthy after %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Failover has a replica of the master at addr take its place as an
// operator's CLUSTER FAILOVER does (the master agreeing, so nothing is lost
// and no call fails: the old master goes on as its replica), and waits
// until the cluster is healthy with the replica as a master. It returns the
// new master's address.
func (c *RedisCluster) Failover(addr string) string {
	c.t.Helper()
	var masterID, replica string
	nodes := c.nodesTable()
	for _, f := range nodes {
		if f.addr == addr && strings.Contains(f.flags, "master") {
			masterID = f.id
		}
	}
	for _, f := range nodes {
		if masterID != "" && f.master == masterID && strings.Contains(f.flags, "slave") {
			replica = f.addr
		}
	}
	if replica == "" {
		c.t.Fatalf("no replica of a master at %s", addr)
	}
	_, port, _ := strings.Cut(replica, ":")
	promoted := func() bool {
		for _, f := range c.nodesTable() {
			if f.addr == replica && strings.Contains(f.flags, "master") {
				return true
			}
		}
		return false
	}
	// A manual failover gives up after 5 s (the replica not in sync yet,
	// a busy machine): asked again until it goes through.
	deadline := time.Now().Add(60 * time.Second)
	for !promoted() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s is not a master 60 s after its first CLUSTER FAILOVER", replica)
		}
		if out, err := exec.Command("redis-cli", "-p", port, "cluster", "failover").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "OK" {
			c.t.Fatalf("CLUSTER FAILOVER on %s: %v %s", replica, err, out)
		}
		for asked := time.Now(); time.Since(asked) < 6*time.Second && !promoted(); {
			time.Sleep(50 * time.Millisecond)
		}
	}
	c.WaitHealthy(30 * time.Second)
	return replica
}

// clusterNodeLine is a line of CLUSTER NODES.
type clusterNodeLine struct{ id, addr, flags, master string }

// nodesTable reads CLUSTER NODES from a live node.
func (c *RedisCluster) nodesTable() []clusterNodeLine {
	c.t.Helper()
	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(c.live().port), "cluster", "nodes").Output()
	if err != nil {
		c.t.Fatalf("CLUSTER NODES: %v", err)
	}
	var lines []clusterNodeLine
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		// ip:port@cport[,hostname]
		a, _, _ := strings.Cut(f[1], "@")
		lines = append(lines, clusterNodeLine{id: f[0], addr: a, flags: f[2], master: f[3]})
	}
	return lines
}
