package cluster_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestEventsOnNodeWithoutRelaySays: once a node started with --nats-url
// has turned order events on for the cluster, every node writes them for
// good, and only nodes with --nats-url publish them. A node started
// without it (the cluster's only one, after an operator dropped the flag)
// said nothing: the outbox grew by a row per change, for ever, with no log,
// no metric and no alert, as it exports the outbox's figures only with a
// relay. It says so at start.
func TestEventsOnNodeWithoutRelaySays(t *testing.T) {
	ns := namespace(t)
	a := openStore(t, ns, cluster.Config{NodeID: "a", Events: true, NoExpiry: true})
	a.Close()

	var log servicetest.Log
	b := openStore(t, ns, cluster.Config{NodeID: "b", NoExpiry: true, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	b.Close()
	if got := log.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "--nats-url") {
		t.Fatalf("a node without --nats-url in a cluster with order events on logged no warning; its log:\n%s", got)
	}

	// A cluster whose events were never turned on: nothing to say.
	quiet := namespace(t)
	var qlog servicetest.Log
	c := openStore(t, quiet, cluster.Config{NodeID: "c", NoExpiry: true, Logger: slog.New(slog.NewTextHandler(&qlog, nil))})
	c.Close()
	if strings.Contains(qlog.String(), "--nats-url") {
		t.Fatalf("a cluster without order events warned about them:\n%s", qlog.String())
	}
}
