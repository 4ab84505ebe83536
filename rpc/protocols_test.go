package rpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/surgehq/surge/engine"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
	"github.com/surgehq/surge/sqlite"
)

// TestIdempotencyKeyOneAcrossProtocols: docs/api.md, gRPC: "purchases run
// through the same engine, with idempotency_key as Idempotency-Key", and
// README: "the same buyer and Idempotency-Key never buys twice". An HTTP
// field value never holds the spaces around it (RFC 9110 §5.5: net/http
// drops them), so the header "Idempotency-Key: k1 " is the key "k1"; the
// gRPC API took idempotency_key "k1 " as another key, and the buyer who
// bought with it over gRPC and retried over HTTP with the same key bought
// twice. A key of spaces alone, refused over HTTP, was taken over gRPC.
func TestIdempotencyKeyOneAcrossProtocols(t *testing.T) {
	base := server(t)
	createSale(t, base, "drop", 10)
	// per_user_limit is 1 by default; raise it so that only the key
	// stands between the buyer and a second unit.
	req, _ := http.NewRequest("PATCH", base+"/v1/sales/drop", stringsReader(`{"per_user_limit":5}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("raise the limit: %v %v", resp, err)
	}
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base, connect.WithProtoJSON())
	buy := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "drop", IdempotencyKey: "k1 "})
	buy.Header().Set("X-User-ID", "alice")
	first, err := c.Purchase(context.Background(), buy)
	if err != nil {
		t.Fatal(err)
	}
	hreq, _ := http.NewRequest("POST", base+"/v1/sales/drop/purchases", nil)
	hreq.Header.Set("X-User-ID", "alice")
	hreq.Header["Idempotency-Key"] = []string{"k1 "}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Order struct {
			ID             string `json:"id"`
			IdempotencyKey string `json:"idempotency_key"`
		} `json:"order"`
	}
	_ = json.Unmarshal(b, &got)
	if got.Order.ID != first.Msg.Order.Id {
		t.Errorf("gRPC idempotency_key %q bought order %s; HTTP Idempotency-Key %q then answered %d %s: a second order",
			"k1 ", first.Msg.Order.Id, "k1 ", resp.StatusCode, b)
	}
	blank := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "drop", IdempotencyKey: "   "})
	blank.Header().Set("X-User-ID", "bob")
	if _, err := c.Purchase(context.Background(), blank); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("idempotency_key of spaces alone: %v, want INVALID_ARGUMENT as HTTP's 400", err)
	}
}

func stringsReader(s string) io.Reader { return &sr{s: s} }

type sr struct{ s string }

func (r *sr) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}

// FuzzIdempotencyKeyAcrossProtocols: a key means the same over gRPC
// (Connect, JSON) as over HTTP, where it is the Idempotency-Key header:
// refused by both, or the HTTP retry of a gRPC purchase replays its order
// (a buyer may hold one unit, so anything else is a second purchase or a
// refusal of the retry).
func FuzzIdempotencyKeyAcrossProtocols(f *testing.F) {
	for _, k := range []string{"k1", "k1 ", " k1", "   ", "a\tb", "", "~!@#$%^&*()_+", "\x7f", "é"} {
		f.Add(k)
	}
	base := server(f)
	createSale(f, base, "keys", 1_000_000_000)
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base, connect.WithProtoJSON())
	n := 0
	f.Fuzz(func(t *testing.T, key string) {
		if !httpHeaderValue(key) || key == "" || !utf8.ValidString(key) {
			return // no HTTP client can send it as a header, or gRPC as a string
		}
		n++
		user := fmt.Sprintf("u%d", n)
		buy := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "keys", IdempotencyKey: key})
		buy.Header().Set("X-User-ID", user)
		first, gerr := c.Purchase(context.Background(), buy)
		hreq, _ := http.NewRequest("POST", base+"/v1/sales/keys/purchases", nil)
		hreq.Header.Set("X-User-ID", user)
		hreq.Header["Idempotency-Key"] = []string{key}
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if gerr != nil {
			if connect.CodeOf(gerr) != connect.CodeInvalidArgument || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("key %q: gRPC %v, HTTP %d %s", key, gerr, resp.StatusCode, b)
			}
			return
		}
		var got struct {
			Order struct {
				ID string `json:"id"`
			} `json:"order"`
		}
		_ = json.Unmarshal(b, &got)
		if resp.StatusCode != http.StatusCreated || got.Order.ID != first.Msg.Order.Id || resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("key %q: gRPC bought %s; the HTTP retry answered %d %s", key, first.Msg.Order.Id, resp.StatusCode, b)
		}
	})
}

// httpHeaderValue reports whether net/http's client sends v as a header
// value (httpguts.ValidHeaderFieldValue: no control character but tab).
func httpHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// TestWaitingRoomTicketOneAcrossProtocols: docs/api.md, gRPC: purchases
// take "waiting_room_ticket as Waiting-Room-Ticket". An HTTP field value
// never holds the spaces around it (RFC 9110 §5.5; net/http drops them),
// so the header "Waiting-Room-Ticket: <ticket> " admits; the same text in
// waiting_room_ticket must admit too, not answer not_admitted.
func TestWaitingRoomTicketOneAcrossProtocols(t *testing.T) {
	ctx := context.Background()
	base := roomServer(t, "drop")
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base, connect.WithProtoJSON())
	// HTTP: the padded header admits.
	tk := admittedTicket(t, base, "drop", "alice")
	hreq, _ := http.NewRequest("POST", base+"/v1/sales/drop/purchases", nil)
	hreq.Header.Set("X-User-ID", "alice")
	hreq.Header["Waiting-Room-Ticket"] = []string{" " + tk + "\t"}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("HTTP with a padded ticket: %d %s", resp.StatusCode, b)
	}
	// gRPC: the same text.
	tk = admittedTicket(t, base, "drop", "bob")
	buy := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "drop", WaitingRoomTicket: " " + tk + "\t"})
	buy.Header().Set("X-User-ID", "bob")
	if _, err := c.Purchase(ctx, buy); err != nil {
		t.Errorf("gRPC waiting_room_ticket with the spaces HTTP drops: %v; HTTP answered 201 to the same text", err)
	}
}

// postJSON sends body to path with the given headers, and answers the
// status and the Surge-Code header (HTTP's code is in its body, the
// Connect protocol's in the header).
func postJSON(t testing.TB, base, path string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, strings.TrimSpace(resp.Header.Get("Surge-Code") + " " + string(b))
}

// TestJSONNumbersOneAcrossProtocols: docs/api.md, gRPC: "JSON messages
// (Connect's and gRPC-Web's JSON) are read as strictly as the HTTP API's
// bodies". The HTTP API refuses an integer field written as a fraction or
// with an exponent ({"quantity":2.0}: "quantity must be a positive
// integer"; {"stock":5e0}: "field \"stock\" must be an integer"); protojson
// reads them as integers, so the same text bought two units over Connect
// and created a sale, where HTTP answered 400 and changed nothing.
func TestJSONNumbersOneAcrossProtocols(t *testing.T) {
	base := server(t)
	createSale(t, base, "drop", 100)
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	req, _ := http.NewRequest("PATCH", base+"/v1/sales/drop", strings.NewReader(`{"per_user_limit":5}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("raise the limit: %v %v", resp, err)
	}
	for i, n := range []string{"2.0", "2e0", "2E0", "20e-1", "0.2e1", "2.00000", `"2.0"`, `"2e0"`} {
		user := string(rune('a' + i))
		hc, hb := postJSON(t, base, "/v1/sales/drop/purchases", map[string]string{"X-User-ID": "h" + user}, `{"quantity":`+n+`}`)
		gc, gb := postJSON(t, base, "/surge.v1.SaleService/Purchase", map[string]string{"X-User-ID": "g" + user}, `{"sale_id":"drop","quantity":`+n+`}`)
		if (hc < 300) != (gc < 300) {
			t.Errorf("quantity %s: HTTP %d %.120s; Connect JSON %d %.120s", n, hc, hb, gc, gb)
		}
		hc, hb = postJSON(t, base, "/v1/sales", admin, `{"name":"x","stock":`+n+`}`)
		gc, gb = postJSON(t, base, "/surge.v1.SaleService/CreateSale", admin, `{"name":"x","stock":`+n+`}`)
		if (hc < 300) != (gc < 300) {
			t.Errorf("stock %s: HTTP %d %.120s; Connect JSON %d %.120s", n, hc, hb, gc, gb)
		}
	}
	// An integer is read alike over both; proto3 JSON's decimal string
	// for an int64 stays accepted, and so does a dot in a string field.
	if gc, gb := postJSON(t, base, "/surge.v1.SaleService/Purchase", map[string]string{"X-User-ID": "z"}, `{"sale_id":"drop","quantity":2}`); gc != 200 {
		t.Errorf("quantity 2 over Connect JSON: %d %s", gc, gb)
	}
	if gc, gb := postJSON(t, base, "/surge.v1.SaleService/Purchase", map[string]string{"X-User-ID": "y"}, `{"sale_id":"drop","quantity":"2"}`); gc != 200 {
		t.Errorf(`quantity "2" over Connect JSON: %d %s`, gc, gb)
	}
	if gc, gb := postJSON(t, base, "/surge.v1.SaleService/CreateSale", admin,
		`{"name":"v2.0e","stock":"5","waitingRoom":{"admitPerSecond":"10","order":"fifo","ticketSeconds":60},"startsAt":"2030-01-01T00:00:00.5Z"}`); gc != 200 {
		t.Errorf("a sale over Connect JSON: %d %s", gc, gb)
	}
	if gc, gb := postJSON(t, base, "/surge.v1.SaleService/CreateSale", admin,
		`{"name":"x","stock":5,"waiting_room":{"admit_per_second":1e1,"order":"fifo","ticket_seconds":60}}`); gc < 400 {
		t.Errorf("admit_per_second 1e1 over Connect JSON: %d %s; HTTP refuses it", gc, gb)
	}
}

// TestPublicListenerHidesCreateSaleAlike: docs/api.md: on the public
// listener of --admin-addr the admin-only endpoints answer 404 as if they
// did not exist, and the admin token grants nothing; the gRPC API is
// served there too. POST /v1/sales answers 404 not_found there.
func TestPublicListenerHidesCreateSaleAlike(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, err := engine.Open(ctx, st, engine.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	g := rpc.New(eng, rpc.Config{Logger: log})
	api := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.Public()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); g.Close(); eng.Close(); st.Close() })
	base := "http://" + ln.Addr().String()
	for _, hdr := range []map[string]string{{"Authorization": "Bearer " + adminToken}, {"X-User-ID": "alice"}} {
		body := `{"name":"x","stock":5}`
		hc, hb := postJSON(t, base, "/v1/sales", hdr, body)
		gc, gb := postJSON(t, base, "/surge.v1.SaleService/CreateSale", hdr, body)
		hcode, gcode := codeOf(hb), codeOf(gb)
		if hcode != gcode {
			t.Errorf("CreateSale on the public listener with %v: HTTP %d %q; gRPC %d %q", hdr, hc, hcode, gc, gcode)
		}
	}
}

// codeOf is the Surge code of an answer of postJSON: the Surge-Code
// header when there is one, else the HTTP body's.
func codeOf(s string) string {
	if !strings.HasPrefix(s, "{") {
		c, _, _ := strings.Cut(s, " ")
		return c
	}
	var b struct{ Error struct{ Code string } }
	_ = json.Unmarshal([]byte(s), &b)
	return b.Error.Code
}

// TestJSONNumbersEscapedExponent: integersOnly looks for '.', 'e' and 'E'
// in the raw bytes of a value, but a JSON string may write its 'e' as
// \u0065: protojson decodes "2\u00650" to "2e0" and reads it as 2, which
// the same field written "2e0" is refused for.
func TestJSONNumbersEscapedExponent(t *testing.T) {
	base := server(t)
	createSale(t, base, "drop", 100)
	req, _ := http.NewRequest("PATCH", base+"/v1/sales/drop", strings.NewReader(`{"per_user_limit":5}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("raise the limit: %v %v", resp, err)
	}
	plain, pb := postJSON(t, base, "/surge.v1.SaleService/Purchase", map[string]string{"X-User-ID": "a"}, `{"sale_id":"drop","quantity":"2e0"}`)
	esc, eb := postJSON(t, base, "/surge.v1.SaleService/Purchase", map[string]string{"X-User-ID": "b"}, `{"sale_id":"drop","quantity":"2\u00650"}`)
	if (plain < 300) != (esc < 300) {
		t.Errorf(`quantity "2e0": %d %.120s; quantity "2\u00650" (the same string): %d %.120s`, plain, pb, esc, eb)
	}
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	plain, pb = postJSON(t, base, "/surge.v1.SaleService/CreateSale", admin, `{"name":"x","stock":"5e0"}`)
	esc, eb = postJSON(t, base, "/surge.v1.SaleService/CreateSale", admin, `{"name":"x","stock":"5\u00650"}`)
	if (plain < 300) != (esc < 300) {
		t.Errorf(`stock "5e0": %d %.120s; stock "5\u00650": %d %.120s`, plain, pb, esc, eb)
	}
}

// TestJSONQuantityZeroRefusedAcrossProtocols: docs/api.md, gRPC: JSON
// messages "are read as strictly as the HTTP API's bodies", and bad input
// changes nothing. The HTTP API refuses a purchase of {"quantity":0} or
// {"quantity":null} 400; Connect JSON read the same text as an absent
// quantity (proto3's zero value) and reserved one unit: a client whose
// cart computed a quantity of 0 bought something over Connect that HTTP
// refused. (Over binary proto 0 cannot be told from absent, and means 1.)
func TestJSONQuantityZeroRefusedAcrossProtocols(t *testing.T) {
	base := server(t)
	createSale(t, base, "drop", 100)
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base)
	remaining := func() int64 {
		t.Helper()
		r, err := c.GetSale(context.Background(), connect.NewRequest(&surgev1.GetSaleRequest{Id: "drop"}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.Sale.Remaining
	}
	for i, q := range []string{`0`, `-0`, `null`, `"0"`, `"-0"`, `"\u0030"`} {
		t.Run(q, func(t *testing.T) {
			user := fmt.Sprintf("u%d", i)
			before := remaining()
			hc, hb := postJSON(t, base, "/v1/sales/drop/purchases", map[string]string{"X-User-ID": "h" + user}, `{"quantity":`+q+`}`)
			if hc != http.StatusBadRequest || remaining() != before {
				t.Fatalf("HTTP quantity %s: %d %.120s, remaining %d → %d; want 400 and nothing reserved", q, hc, hb, before, remaining())
			}
			for j, field := range []string{"quantity", `quant\u0069ty`} {
				before := remaining()
				gc, gb := postJSON(t, base, "/surge.v1.SaleService/Purchase", map[string]string{"X-User-ID": fmt.Sprintf("g%s-%d", user, j)},
					`{"sale_id":"drop","`+field+`":`+q+`}`)
				if after := remaining(); gc < 400 || codeOf(gb) != "invalid_request" || after != before {
					t.Errorf("Connect JSON %q: %s: %d %.160s, remaining %d → %d; HTTP refused the same text 400 (%s) and reserved nothing",
						field, q, gc, gb, before, after, codeOf(hb))
				}
			}
		})
	}
	// Absent, the quantity is 1 over both.
	if gc, gb := postJSON(t, base, "/surge.v1.SaleService/Purchase", map[string]string{"X-User-ID": "z"}, `{"sale_id":"drop"}`); gc != 200 {
		t.Errorf("no quantity over Connect JSON: %d %s", gc, gb)
	}
}

// TestJSONTimesOneAcrossProtocols: docs/api.md, gRPC: JSON messages "are
// read as strictly as the HTTP API's bodies", and bad input changes
// nothing. The HTTP API refuses a starts_at or ends_at that is not RFC
// 3339 though Go's time.Parse lets it through (an offset of +24:00 or
// -23:60, a comma before the fraction, a one-digit hour); protojson reads
// a google.protobuf.Timestamp with time.Parse, so the same text created a
// sale over Connect JSON, "+24:00" a whole day early.
func TestJSONTimesOneAcrossProtocols(t *testing.T) {
	base := server(t)
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base)
	for i, ts := range []string{
		"2031-03-14T10:00:00+24:00", "2031-03-14T10:00:00-24:00", "2031-03-14T10:00:00+23:60",
		"2031-03-14T10:00:00,5Z", "2031-03-14T1:00:00Z",
	} {
		for _, field := range []string{"starts_at", "ends_at"} {
			hid, gid := fmt.Sprintf("h%d-%s", i, field), fmt.Sprintf("g%d-%s", i, field)
			// ends_at after a starts_at a year before it, so that only the
			// time's spelling can be refused.
			times := `"starts_at":"` + ts + `"`
			if field == "ends_at" {
				times = `"starts_at":"2030-03-14T10:00:00Z","ends_at":"` + ts + `"`
			}
			hc, hb := postJSON(t, base, "/v1/sales", admin, `{"id":"`+hid+`","name":"x","stock":5,`+times+`}`)
			if hc != http.StatusBadRequest {
				t.Fatalf("HTTP %s %q: %d %.160s; want 400", field, ts, hc, hb)
			}
			gc, gb := postJSON(t, base, "/surge.v1.SaleService/CreateSale", admin, `{"id":"`+gid+`","name":"x","stock":5,`+times+`}`)
			if gc < 400 || codeOf(gb) != "invalid_request" {
				got := ""
				if r, err := c.GetSale(context.Background(), connect.NewRequest(&surgev1.GetSaleRequest{Id: gid})); err == nil {
					got = r.Msg.Sale.StartsAt.AsTime().Format(time.RFC3339)
					if r.Msg.Sale.EndsAt != nil {
						got += " to " + r.Msg.Sale.EndsAt.AsTime().Format(time.RFC3339)
					}
				}
				t.Errorf("Connect JSON %s %q: %d %.160s, a sale created (%s); HTTP refused the same text 400 (%s) and created nothing",
					field, ts, gc, gb, got, codeOf(hb))
			}
		}
	}
	// An RFC 3339 time with an offset or a fraction is read alike over both.
	if gc, gb := postJSON(t, base, "/surge.v1.SaleService/CreateSale", admin,
		`{"name":"x","stock":5,"startsAt":"2031-03-14T10:00:00.250+05:30","ends_at":"2031-03-15T00:00:00Z"}`); gc != 200 {
		t.Errorf("RFC 3339 times over Connect JSON: %d %s", gc, gb)
	}
}
