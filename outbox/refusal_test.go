package outbox_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/servicetest"
)

// TestRelayRefusalKeepsOrder: JetStream refuses one event (here a
// per-subject limit an operator set on the stream: one message per
// subject, new ones refused) while later events of the same order go to
// other subjects and are accepted. The relay must not let them overtake
// the refused one: once the operator lifts the limit, the order's events
// are in the stream in the order of its changes, and the stream in seq
// order. Before, the later events of the batch, already in flight, were
// stored, and the refused one came after them on the retry.
func TestRelayRefusalKeepsOrder(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	cfg := jetstream.StreamConfig{Name: stream, Subjects: []string{subject + ".>"}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute, MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true}
	js := operatorStream(t, nc, cfg)
	createSale(t, s, "a", 100)
	orders := reserve(t, s, "a", "u", 2, 2) // u0's reserved is stored, u1's is refused
	paid, err := s.Pay(t.Context(), orders[1].ID, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	orders[1] = paid
	reg := prometheus.NewRegistry()
	m, err := metrics.NewOutbox(reg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, s, servicetest.NATSURL(), stream, subject, m)
	// Two failed rounds: the first batch's acknowledgements all came back.
	waitFor(t, "the refusal", func() bool { return figure(t, reg, "surge_outbox_publish_failures_total") >= 2 })

	cfg.MaxMsgsPerSubject, cfg.Discard, cfg.DiscardNewPerSubject = -1, jetstream.DiscardOld, false
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	drainedWithin(t, s, 20*time.Second)
	msgs := servicetest.ReadStream(t, nc, stream, subject+".>")
	var got []string
	for _, m := range msgs {
		var e api.OrderEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e.ID)
	}
	want := []string{orders[0].ID + ":reserved", orders[1].ID + ":reserved", orders[1].ID + ":paid"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("the stream holds %q, want %q: an order's event stored before an earlier one JetStream refused", got, want)
	}
	wantStream(t, msgs, subject, orders)
}
