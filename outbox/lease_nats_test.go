package outbox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestRelayLetsTheLeaseGoWithoutNATS: in cluster mode "any node may relay".
// When the node holding the outbox lease loses its NATS connection (a
// partition, its NATS route down) while another node reaches NATS, the
// events must still go out through the other node within a few lease
// TTLs: the holder must not keep renewing a lease it cannot use.
func TestRelayLetsTheLeaseGoWithoutNATS(t *testing.T) {
	ns := servicetest.Namespace(t)
	nc, stream, subject := servicetest.NATS(t)
	a, b := openNode(t, ns, "a"), openNode(t, ns, "b")
	createSale(t, a, "s", 10000)
	waitFor(t, "node b to know the sale", func() bool {
		_, err := b.Remaining(t.Context(), "s")
		return err == nil
	})
	proxy := servicetest.NewProxy(t, strings.TrimPrefix(servicetest.NATSURL(), "nats://"))
	// a starts first and takes the outbox lease, over the proxy.
	runUntil(t, a, "nats://"+proxy.Addr, stream, subject)
	orders := reserve(t, a, "s", "x", 20, 10)
	drained(t, a)
	runUntil(t, b, servicetest.NATSURL(), stream, subject)

	proxy.Cut() // a can no longer reach NATS; b can
	orders = append(orders, reserve(t, b, "s", "y", 50, 10)...)
	// Lease TTL 5 s: give b four of them.
	drainedWithin(t, b, 20*time.Second)
	wantStream(t, servicetest.ReadStream(t, nc, stream, subject+".>"), subject, orders)
}
