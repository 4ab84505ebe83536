package rpc_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/surgehq/surge/engine"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/waitroom"
)

// roomServer runs the HTTP API with the gRPC API mounted, both over one
// engine and one waiting room, with sale id (a waiting room admitting
// 1,000 buyers a second) created; it returns the base URL.
func roomServer(t *testing.T, id string) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	room, err := waitroom.New(waitroom.Config{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, err := engine.Open(ctx, st, engine.Config{Logger: log, WaitingRoom: room})
	if err != nil {
		t.Fatal(err)
	}
	g := rpc.New(eng, rpc.Config{Logger: log})
	api := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount, WaitingRoom: room})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: api, Protocols: &p}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); g.Close(); eng.Close(); st.Close() })
	base := "http://" + ln.Addr().String()
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base)
	cr := connect.NewRequest(&surgev1.CreateSaleRequest{Id: &id, Name: "Drop", Stock: 10,
		WaitingRoom: &surgev1.WaitingRoom{AdmitPerSecond: 1000, Order: "fifo", TicketSeconds: 300}})
	cr.Header().Set("Authorization", "Bearer "+adminToken)
	if _, err := c.CreateSale(ctx, cr); err != nil {
		t.Fatal(err)
	}
	return base
}

// admittedTicket joins sale id's queue over HTTP as user and returns the
// ticket once the place reads admitted (a 1,000-a-second room: at once,
// or within a few milliseconds).
func admittedTicket(t *testing.T, base, id, user string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("POST", base+"/v1/sales/"+id+"/queue", nil)
		req.Header.Set("X-User-ID", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var q struct {
			Ticket   string `json:"ticket"`
			Admitted bool   `json:"admitted"`
		}
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatalf("join: %d %s", resp.StatusCode, b)
		}
		if q.Admitted {
			return q.Ticket
		}
		time.Sleep(5 * time.Millisecond) // the next slot opens within 1 ms
	}
	t.Fatalf("%s not admitted within 10 s", user)
	return ""
}

// TestWaitingRoomTicketHeader: the HTTP API takes the ticket in the
// Waiting-Room-Ticket header, and a Purchase over gRPC, gRPC-Web and
// Connect carries headers (metadata) the same way, as it does its
// Idempotency-Key; the header was ignored there, and an admitted buyer who
// sent it was answered not_admitted ("join it with POST …/queue"). It now
// admits as over HTTP; a header that differs from waiting_room_ticket is
// refused as an invalid argument, nothing reserved, and two headers are
// refused as over HTTP (not_admitted).
func TestWaitingRoomTicketHeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const id = "drop"
	base := roomServer(t, id)
	clients := []struct {
		name string
		c    surgev1connect.SaleServiceClient
	}{
		{"connect", surgev1connect.NewSaleServiceClient(http.DefaultClient, base)},
		{"grpc", surgev1connect.NewSaleServiceClient(h2cClient(), base, connect.WithGRPC())},
		{"grpcweb", surgev1connect.NewSaleServiceClient(http.DefaultClient, base, connect.WithGRPCWeb())},
	}
	reserved := int64(0)
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			buy := func(user, field string, headers ...string) error {
				r := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: id, WaitingRoomTicket: field})
				r.Header().Set("X-User-ID", user)
				for _, h := range headers {
					r.Header().Add("Waiting-Room-Ticket", h)
				}
				_, err := cl.c.Purchase(ctx, r)
				return err
			}
			user := "hdr-" + cl.name
			tk := admittedTicket(t, base, id, user)
			if err := buy(user, "", tk); err != nil {
				t.Errorf("an admitted buyer's Purchase with the Waiting-Room-Ticket header: %v; want the reservation HTTP makes", err)
			} else {
				reserved++
			}
			// Sent both ways, the same ticket admits.
			user = "both-" + cl.name
			tk = admittedTicket(t, base, id, user)
			if err := buy(user, tk, tk); err != nil {
				t.Errorf("the same ticket in waiting_room_ticket and the header: %v; want the reservation", err)
			} else {
				reserved++
			}
			// A header that differs from the field: which one is meant?
			user = "differ-" + cl.name
			tk = admittedTicket(t, base, id, user)
			other := admittedTicket(t, base, id, "other-"+cl.name)
			if err := buy(user, tk, other); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("waiting_room_ticket and a different header: %v; want invalid_argument", err)
			}
			// Two headers: refused as the HTTP API refuses them.
			if err := buy(user, "", tk, tk); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("two Waiting-Room-Ticket headers: %v; want permission_denied (not_admitted), as over HTTP", err)
			}
		})
	}
	got, err := clients[0].c.GetSale(ctx, connect.NewRequest(&surgev1.GetSaleRequest{Id: id}))
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Msg.GetSale().GetRemaining(); r != 10-reserved {
		t.Errorf("remaining %d after %d reservations; want %d: a refused purchase reserved", r, reserved, 10-reserved)
	}
}
