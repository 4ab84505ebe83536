package rpc_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	"google.golang.org/protobuf/proto"
)

// TestReplayAfterTurn: a Purchase whose reservation committed in the
// buyer's waiting-room turn, replayed with the same idempotency_key once
// the turn had passed (its answer lost), was refused PERMISSION_DENIED
// (not_admitted, "your turn to buy expired"), as over HTTP, though a
// replay gets the first answer back. It now answers the first order,
// replayed; a new key with the expired ticket still buys nothing.
func TestReplayAfterTurn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := roomServer(t, "drop")
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base)
	// A sale whose turns last a second.
	const id = "brief"
	cr := connect.NewRequest(&surgev1.CreateSaleRequest{Id: proto.String(id), Name: "Brief", Stock: 10,
		WaitingRoom: &surgev1.WaitingRoom{AdmitPerSecond: 1000, Order: "fifo", TicketSeconds: 1}})
	cr.Header().Set("Authorization", "Bearer "+adminToken)
	if _, err := c.CreateSale(ctx, cr); err != nil {
		t.Fatal(err)
	}
	tk := admittedTicket(t, base, id, "alice")
	buy := func(key string) (*connect.Response[surgev1.PurchaseResponse], error) {
		r := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: id, IdempotencyKey: key, WaitingRoomTicket: tk})
		r.Header().Set("X-User-ID", "alice")
		return c.Purchase(ctx, r)
	}
	first, err := buy("k1")
	if err != nil {
		t.Fatalf("the purchase in the turn: %v", err)
	}
	time.Sleep(1500 * time.Millisecond) // the turn has passed
	again, err := buy("k1")
	if err != nil {
		t.Fatalf("the replay after the turn: %v; want the first order, replayed", err)
	}
	if !again.Msg.Replayed || !proto.Equal(again.Msg.Order, first.Msg.Order) {
		t.Fatalf("the replay after the turn: replayed %t, order %v; want true, %v", again.Msg.Replayed, again.Msg.Order, first.Msg.Order)
	}
	if _, err := buy("k2"); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("a new key after the turn: %v; want permission_denied (not_admitted)", err)
	}
	got, err := c.GetSale(ctx, connect.NewRequest(&surgev1.GetSaleRequest{Id: id}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Msg.Sale.Remaining != 9 {
		t.Fatalf("remaining = %d, want 9: one purchase", got.Msg.Sale.Remaining)
	}
}
