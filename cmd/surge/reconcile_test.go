package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/reconcile"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
)

// payStore is what the reconcile tests set up their data through.
type payStore interface {
	surge.Store
	surge.Payments
}

// openBooks opens an embedded store in a data directory of its own, with
// no expiry job: the books stay as a test writes them.
func openBooks(t *testing.T) (dir string, st *sqlite.Store) {
	t.Helper()
	dir = t.TempDir()
	st, err := sqlite.Open(context.Background(), dir, sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	// Closed before TempDir's removal (cleanups run last first): a store
	// left open writes its ledger image into dir while it is removed
	// ("directory not empty"). Tests that close it earlier close it once.
	t.Cleanup(func() { _ = st.Close() })
	return dir, st
}

// reserveInNewSale creates the sale in (its name its id, stock 10, limit
// 2) in st and reserves quantity units of it for u1 at now.
func reserveInNewSale(t *testing.T, st surge.Store, in surge.SaleInput, quantity int64, now time.Time) surge.Order {
	t.Helper()
	stock, limit := int64(10), int64(2)
	in.Name, in.Stock, in.PerUserLimit = in.ID, &stock, &limit
	sale, err := surge.NewSale(in, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSale(context.Background(), sale); err != nil {
		t.Fatal(err)
	}
	out, _, err := st.Reserve(context.Background(), sale.ID, []surge.Purchase{{UserID: "u1", Quantity: quantity}}, surge.At(now))
	if err != nil || out[0].Err != nil {
		t.Fatalf("reserve: %v %+v", err, out)
	}
	return out[0].Order
}

// damagedData is reconcileData in an embedded data directory of its own,
// then changed offline by update, whose one argument is the id of order
// (a name in the ids), as an operator's slip or a damaged disk would.
func damagedData(t *testing.T, update, order string) (dir string, ids map[string]string) {
	t.Helper()
	dir, st := openBooks(t)
	ids = reconcileData(t, st, false)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(update, ids[order]); err != nil {
		t.Fatal(err)
	}
	return dir, ids
}

// reconcileData fills a store: sale s (10 units at 10.00 EUR, 2 a buyer)
// with ORDER1 (1 unit) paid by evt_1, ORDER2 (2 units) paid by evt_2,
// ORDER3 (1 unit) still reserved, ORDER4 (1 unit) paid by the operator;
// with refundDue, ORDER3 is cancelled and then paid by evt_late. It
// returns the placeholders' order ids.
func reconcileData(t *testing.T, st payStore, refundDue bool) map[string]string {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	id, name, cur := "s", "Sale", "EUR"
	stock, limit, price := int64(10), int64(2), int64(1000)
	sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, PriceCents: &price, Currency: &cur}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	out, _, err := st.Reserve(ctx, "s", []surge.Purchase{
		{UserID: "u1", Quantity: 1}, {UserID: "u2", Quantity: 2}, {UserID: "u3", Quantity: 1}, {UserID: "u4", Quantity: 1},
	}, surge.At(

		now))

	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for i, o := range out {
		if o.Code != surge.CodeReserved {
			t.Fatalf("purchase %d: %s", i, o.Code)
		}
		ids["ORDER"+string(rune('1'+i))] = o.Order.ID
	}
	pay := func(ev, order string, cents int64, want surge.PaymentStatus) {
		r, err := st.RecordPayment(ctx, surge.PaymentEvent{ID: ev, Type: surge.PaymentSucceeded, OrderID: order,
			AmountCents: cents, Currency: "EUR", Created: now, Provider: "surge"}, now.Add(time.Second))
		if err != nil || r.Payment.Status != want {
			t.Fatalf("RecordPayment(%s) = %s, %v; want %s", ev, r.Payment.Status, err, want)
		}
	}
	pay("evt_1", ids["ORDER1"], 1000, surge.PaymentPaid)
	pay("evt_2", ids["ORDER2"], 2000, surge.PaymentPaid)
	if _, err := st.Pay(ctx, ids["ORDER4"], now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if refundDue {
		if _, err := st.Cancel(ctx, ids["ORDER3"], now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		pay("evt_late", ids["ORDER3"], 1000, surge.PaymentRefundDue)
	}
	return ids
}

// settlementFile writes testdata/reconcile/name with the order ids in.
func settlementFile(t *testing.T, name string, ids map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "reconcile", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(withIDs(string(b), ids)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// withIDs is text with each order name (ORDER1 …) replaced by its id.
func withIDs(text string, ids map[string]string) string {
	for name, id := range ids {
		text = strings.ReplaceAll(text, name, id)
	}
	return text
}

// writeSettlement writes text to a settlement file of its own.
func writeSettlement(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "settlement.csv")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runReconcile runs the command and returns its exit status and its
// JSON report.
func runReconcile(t *testing.T, args ...string) (int, reconcile.Report, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"reconcile", "--json"}, args...), &stdout, &stderr)
	var rep reconcile.Report
	if code < 2 {
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("reconcile --json printed %q (%v); stderr %s", stdout.String(), err, stderr.String())
		}
	}
	return code, rep, stderr.String()
}

func wantKinds(t *testing.T, rep reconcile.Report, want ...string) {
	t.Helper()
	var got []string
	for _, m := range rep.Mismatches {
		got = append(got, m.Kind)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("mismatches %+v, want kinds %v", rep.Mismatches, want)
	}
}

// TestReconcileEmbedded: one settlement file per kind of mismatch, and a
// clean one, against a data directory that a store holds open (as a
// running server would) or, for the tampered stock, offline.
func TestReconcileEmbedded(t *testing.T) {
	for _, c := range []struct {
		file      string
		refundDue bool
		kinds     []string
	}{
		{"clean.csv", false, nil},
		{"paid_not_in_surge.csv", false, []string{reconcile.PaidNotInSurge}},
		{"paid_not_at_provider.csv", false, []string{reconcile.PaidNotAtProvider}},
		{"amount_differs.csv", false, []string{reconcile.AmountDiffers}},
		{"refund_due.csv", true, []string{reconcile.RefundDue}},
	} {
		t.Run(strings.TrimSuffix(c.file, ".csv"), func(t *testing.T) {
			dir, st := openBooks(t)
			defer st.Close()
			ids := reconcileData(t, st, c.refundDue)
			code, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", settlementFile(t, c.file, ids))
			wantKinds(t, rep, c.kinds...)
			if want := min(len(c.kinds), 1); code != want {
				t.Errorf("exit status %d, want %d (stderr %s)", code, want, stderr)
			}
			if rep.Orders != 4 || rep.Sales != 1 {
				t.Errorf("report read %d orders of %d sales, want 4 of 1", rep.Orders, rep.Sales)
			}
		})
	}
	t.Run("stock_mismatch", func(t *testing.T) {
		// Damage the books offline: the reserved order now holds more
		// units than the sale has.
		dir, ids := damagedData(t, `UPDATE orders SET quantity = 9 WHERE id = ?`, "ORDER3")
		code, rep, _ := runReconcile(t, "--data-dir", dir, "--settlement", settlementFile(t, "stock_mismatch.csv", ids))
		wantKinds(t, rep, reconcile.StockMismatch)
		if code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
	})
	t.Run("usage", func(t *testing.T) {
		if code, _, _ := runReconcile(t, "--data-dir", t.TempDir()); code != 2 {
			t.Errorf("without --settlement: exit status %d, want 2", code)
		}
	})
}

// TestReconcileCluster: the same rules against the cluster's PostgreSQL,
// whose own count of sold units is checked too.
func TestReconcileCluster(t *testing.T) {
	ns := servicetest.Namespace(t)
	st, err := cluster.Open(context.Background(), servicetest.RedisURL(), servicetest.PostgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true})
	if err != nil {
		t.Fatalf("cluster.Open (run scripts/services.sh): %v", err)
	}
	defer st.Close()
	ids := reconcileData(t, st, true)
	url := servicetest.PostgresURL() + "&search_path=" + ns
	code, rep, stderr := runReconcile(t, "--postgres-url", url, "--settlement", settlementFile(t, "refund_due.csv", ids))
	wantKinds(t, rep, reconcile.RefundDue)
	if code != 1 || rep.Orders != 4 || rep.Payments != 4 {
		t.Errorf("exit status %d, %d orders, %d payments; want 1, 4, 4 (stderr %s)", code, rep.Orders, rep.Payments, stderr)
	}
	code, rep, _ = runReconcile(t, "--postgres-url", url, "--settlement", settlementFile(t, "paid_not_at_provider.csv", ids))
	wantKinds(t, rep, reconcile.PaidNotAtProvider, reconcile.RefundDue)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
}

// TestReconcileMissingDataDirIsUsage: docs/payments.md, "The exit status is
// 0 when nothing mismatches, 1 when anything does, 2 for a usage error (a
// missing or unreadable file, a bad header or line)". A --data-dir without
// a database (a typo, the wrong host) compared nothing: exit 1 would tell a
// script that the books mismatch.
func TestReconcileMissingDataDirIsUsage(t *testing.T) {
	file := settlementFile(t, "clean.csv", map[string]string{"ORDER1": "o_1", "ORDER2": "o_2", "ORDER3": "o_3"})
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"reconcile", "--json", "--data-dir", filepath.Join(t.TempDir(), "nope"), "--settlement", file}, &stdout, &stderr)
	if code != 2 {
		t.Errorf("reconcile of a data directory without a database: exit status %d, want 2 (usage); stdout %q, stderr %q",
			code, stdout.String(), stderr.String())
	}
}

// TestReconcileRefundOfPaidOrderPaymentRow: a paid order refunded at the
// provider, with the settlement in docs/payments.md's own shape, where a
// refunded payment is its own line marked refunded
// ("pi_3QxSurgeTestPI01,o_…,12999,EUR,refunded"). Surge recorded the
// refund (refund_unexpected, which reports it): refund_not_in_surge ("the
// settlement says refunded, Surge has no refund for it") is false.
func TestReconcileRefundOfPaidOrderPaymentRow(t *testing.T) {
	ctx := context.Background()
	dir, st := openBooks(t)
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	o, price, cur := reservedOrder(t, st, now)
	recordPayments(t, st, now.Add(time.Second),
		surge.PaymentEvent{ID: "pi_1", Type: surge.PaymentSucceeded, OrderID: o.ID, AmountCents: price, Currency: cur, Created: now, Provider: "stripe"},
		surge.PaymentEvent{ID: "evt_refund_1", Type: surge.RefundSucceeded, OrderID: o.ID, AmountCents: price, Currency: cur, Created: now, Provider: "stripe"})
	src, closeSrc, err := openSource(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer closeSrc()
	rep, err := reconcile.Run(ctx, src, []reconcile.Row{
		{PaymentID: "pi_1", OrderID: o.ID, AmountCents: price, Currency: cur, Status: reconcile.Refunded},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rep.Mismatches {
		t.Logf("%s %s: %s", m.Kind, m.PaymentID, m.Detail)
		if m.Kind == reconcile.RefundNotInSurge {
			t.Errorf("refund_not_in_surge for a refund Surge recorded (refund_unexpected evt_refund_1): %s", m.Detail)
		}
	}
}

// TestReconcileWebhookIDWithSpaces: docs/payments.md: "a consistent store
// never reports a mismatch". The webhook (and the store) recorded a
// payment whose event id has a space around it; the provider's
// settlement names that very payment, the id quoted as CSV quotes it;
// surge reconcile read the line's id trimmed, so the consistent store
// was reported twice over (paid_not_in_surge, paid_not_at_provider), exit 1.
func TestReconcileWebhookIDWithSpaces(t *testing.T) {
	ctx := context.Background()
	dir, st := openBooks(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	o, price, cur := reservedOrder(t, st, now)
	const id = "evt_1 "
	r, err := st.RecordPayment(ctx, surge.PaymentEvent{ID: id, Type: surge.PaymentSucceeded, OrderID: o.ID, AmountCents: price,
		Currency: cur, Created: now, Provider: "surge"}, now.Add(time.Second))
	if err != nil {
		t.Logf("the id %q is refused (%v): it can never be recorded, so never mismatch", id, err)
		st.Close()
		return
	}
	if r.Payment.Status != surge.PaymentPaid {
		t.Fatalf("payment %+v", r.Payment)
	}
	st.Close()
	csv := writeSettlement(t, "payment id,order id,amount,currency,status\n\""+id+"\","+o.ID+","+
		itoa(price)+","+cur+",succeeded\n")
	code, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
	if code != 0 || len(rep.Mismatches) != 0 {
		t.Errorf("a consistent store: exit %d, mismatches %+v (%s)", code, rep.Mismatches, stderr)
	}
}

func itoa(n int64) string {
	b := []byte{}
	if n == 0 {
		return "0"
	}
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// recordPayments records each event in st at at, failing t on an error.
func recordPayments(t *testing.T, st payStore, at time.Time, evs ...surge.PaymentEvent) {
	t.Helper()
	for _, ev := range evs {
		if _, err := st.RecordPayment(context.Background(), ev, at); err != nil {
			t.Fatal(err)
		}
	}
}

// firstTwoSettled opens a settlement: its header, and ORDER1's and
// ORDER2's payments (reconcileData's) taken.
const firstTwoSettled = "payment_id,order_id,amount,currency,status\nevt_1,ORDER1,10.00,EUR,succeeded\nevt_2,ORDER2,20.00,EUR,succeeded\n"

// shortPaymentRefunded records evt_short, 9.99 EUR taken for order (one
// unit of 10.00 EUR: amount_mismatch), and refundID, a refund of cents of it.
func shortPaymentRefunded(t *testing.T, st payStore, order, refundID string, cents int64) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	recordPayments(t, st, now.Add(2*time.Second),
		surge.PaymentEvent{ID: "evt_short", Type: surge.PaymentSucceeded, OrderID: order, AmountCents: 999, Currency: "EUR", Created: now, Provider: "surge"},
		surge.PaymentEvent{ID: refundID, Type: surge.RefundSucceeded, OrderID: order, AmountCents: cents, Currency: "EUR", Created: now, Provider: "surge"})
}

// TestReconcilePaidPaymentOfEndedOrder: the state docs/payments.md says
// must never exist, money counted as having paid an order that then
// expired (its units back on sale, no refund_due), reached here by an
// offline write as TestReconcileEmbedded's stock_mismatch. surge reconcile
// checks "a paid order without a payment that paid it" but not the
// converse: the settlement matches Surge's payment, the stock still adds
// up (the order's units left with it), and it answered "no mismatch",
// exit 0, for a buyer charged for goods Surge sells to someone else.
func TestReconcilePaidPaymentOfEndedOrder(t *testing.T) {
	dir, ids := damagedData(t, `UPDATE orders SET status = 'expired' WHERE id = ?`, "ORDER1")
	code, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", settlementFile(t, "clean.csv", ids))
	found := false
	for _, m := range rep.Mismatches {
		found = found || (m.PaymentID == "evt_1" && m.OrderID == ids["ORDER1"])
	}
	if !found || code != 1 {
		t.Errorf("payment evt_1 recorded paid for order %s, which is expired: exit %d, mismatches %+v (stderr %s); want exit 1 and a mismatch naming evt_1",
			ids["ORDER1"], code, rep.Mismatches, stderr)
	}
}

// TestReconcileRowOrder: a settlement listing a payment settled and then
// refunded under the same id (a transactions export: the charge's line,
// later its refund's) is the same settlement whichever line comes first,
// and must get the same report. The last line read won: with the refund
// last, "Surge counts 1000 EUR paid; the settlement has it refunded"
// (paid_not_at_provider) for a payment the provider settled.
func TestReconcileRowOrder(t *testing.T) {
	dir, st := openBooks(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	o, price, cur := reservedOrder(t, st, now)
	recordPayments(t, st, now.Add(time.Second),
		surge.PaymentEvent{ID: "pi_1", Type: surge.PaymentSucceeded, OrderID: o.ID, AmountCents: price, Currency: cur, Created: now, Provider: "stripe"},
		surge.PaymentEvent{ID: "evt_refund_1", Type: surge.RefundSucceeded, OrderID: o.ID, AmountCents: price, Currency: cur, Created: now, Provider: "stripe"})
	st.Close()
	settled := "pi_1," + o.ID + "," + itoa(price) + "," + cur + ",succeeded\n"
	refunded := "pi_1," + o.ID + "," + itoa(price) + "," + cur + ",refunded\n"
	report := func(lines string) string {
		csv := writeSettlement(t, "payment id,order id,amount,currency,status\n"+lines)
		code, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
		var out []string
		for _, m := range rep.Mismatches {
			out = append(out, m.Kind+" "+m.PaymentID+": "+m.Detail)
		}
		return "exit " + itoa(int64(code)) + " " + stderr + "\n\t" + strings.Join(out, "\n\t")
	}
	first, last := report(settled+refunded), report(refunded+settled)
	if first != last {
		t.Errorf("the same settlement, refund line last:\n%s\nrefund line first:\n%s\nwant the same report", first, last)
	}
}

// TestReconcileClusterWithoutSurgeDataIsUsage: the cluster-mode twin of
// TestReconcileMissingDataDirIsUsage. A --postgres-url naming a database
// (or search_path) that holds no Surge data, the wrong database of a
// typo, compared nothing: exit 1 would tell a script the books mismatch
// (every settled payment "paid_not_in_surge"). It also created Surge's
// tables in that database, a write by a read-only command in a database
// that is not Surge's.
func TestReconcileClusterWithoutSurgeDataIsUsage(t *testing.T) {
	ctx := context.Background()
	ns := servicetest.Namespace(t) // dropped at the end
	conn, err := pgx.Connect(ctx, servicetest.PostgresURL())
	if err != nil {
		t.Fatalf("connect (run scripts/services.sh): %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{ns}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	file := settlementFile(t, "clean.csv", map[string]string{"ORDER1": "o_1", "ORDER2": "o_2", "ORDER3": "o_3"})
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"reconcile", "--json", "--postgres-url", servicetest.PostgresURL() + "&search_path=" + ns, "--settlement", file}, &stdout, &stderr)
	var tables int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = $1`, ns).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if code != 2 || tables != 0 {
		t.Errorf("reconcile of a PostgreSQL schema without Surge's tables: exit status %d, want 2 (usage); %d tables created there, want 0; stdout %q, stderr %q",
			code, tables, stdout.String(), stderr.String())
	}
}

// TestReconcileStripeISKDecimal: Stripe keeps the Icelandic króna a
// two-decimal currency in its API ("an ISK amount of 100 will continue to
// represent 1 króna"), so a Stripe-paid ISK sale is priced, and its
// payments recorded, in hundredths: 500 kr is 50000. A settlement that
// writes the amount in major units, "500.00", is that same payment. Read
// with ISO 4217's zero places for ISK it became 500, and a consistent
// store reported amount_differs (before ISO digits it read 50000 and
// matched).
func TestReconcileStripeISKDecimal(t *testing.T) {
	ctx := context.Background()
	dir, st := openBooks(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	name, cur, cents := "s", "ISK", int64(50000) // 500 kr in Stripe's hundredths
	o := reserveInNewSale(t, st, surge.SaleInput{ID: &name, PriceCents: &cents, Currency: &cur}, 1, now)
	r, err := st.RecordPayment(ctx, surge.PaymentEvent{ID: "pi_isk", Type: surge.PaymentSucceeded, OrderID: o.ID,
		AmountCents: cents, Currency: cur, Created: now, Provider: "stripe"}, now.Add(time.Second))
	if err != nil || r.Payment.Status != surge.PaymentPaid {
		t.Fatalf("RecordPayment = %s, %v; want paid", r.Payment.Status, err)
	}
	st.Close()
	csv := writeSettlement(t, "payment id,order id,amount,currency,status\npi_isk,"+o.ID+",500.00,ISK,succeeded\n")
	code, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
	if code != 0 || len(rep.Mismatches) != 0 {
		t.Errorf("Stripe payment pi_isk of 50000 (Stripe's hundredths: 500 kr) settled as \"500.00 ISK\": exit %d, mismatches %+v (stderr %s); "+
			"want exit 0: Stripe counts ISK in two decimals, so 500.00 kr is 50000, the amount Surge recorded", code, rep.Mismatches, stderr)
	}
}

// TestReconcileCannotCompareIsNotMismatch: exit 1 tells a script the books
// mismatch (docs/payments.md). A reconcile that compared nothing, because
// PostgreSQL could not be reached or the data directory's database could
// not be read, must not say so: it exits 3, and prints no report.
func TestReconcileCannotCompareIsNotMismatch(t *testing.T) {
	ctx := context.Background()
	file := settlementFile(t, "clean.csv", map[string]string{"ORDER1": "o_1", "ORDER2": "o_2", "ORDER3": "o_3"})
	damaged := t.TempDir()
	if err := os.WriteFile(filepath.Join(damaged, "surge.db"), bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, flag, value string }{
		{"PostgreSQL not listening", "--postgres-url", "postgres://surge@127.0.0.1:1/test?connect_timeout=2"},
		{"a data directory whose database is damaged", "--data-dir", damaged},
	} {
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{"reconcile", tc.flag, tc.value, "--settlement", file}, &stdout, &stderr)
		if code != 3 || stdout.Len() != 0 {
			t.Errorf("reconcile with %s: exit status %d, want 3 (could not compare; 1 says the books mismatch); stdout %q, stderr %q",
				tc.name, code, stdout.String(), stderr.String())
		}
	}
}

// TestReconcileDetailAmountsInMajorUnits: the report's details named amounts
// in minor units with the currency's code after them: a settlement line of
// "1.00,USD" came back as "the provider settled 100 USD", and a refund_due
// payment of 1000 cents as "1000 EUR taken …; refund it", an instruction
// to refund a hundred times the money taken. Amounts are shown as the
// settlement writes them: major units, with the currency's own places.
func TestReconcileDetailAmountsInMajorUnits(t *testing.T) {
	dir, st := openBooks(t)
	defer st.Close()
	ids := reconcileData(t, st, true) // evt_late: 1000 cents of EUR for a cancelled order
	lines := "payment_id,order_id,amount,currency,status\n" +
		"evt_1," + ids["ORDER1"] + ",10.00,EUR,succeeded\n" +
		"evt_2," + ids["ORDER2"] + ",20.00,EUR,succeeded\n" +
		"evt_late," + ids["ORDER3"] + ",10.00,EUR,succeeded\n" +
		"evt_usd,o_unknown,1.00,USD,succeeded\n" +
		"evt_jpy,o_unknown2,1000,JPY,succeeded\n" +
		"evt_kwd,o_unknown3,12.345,KWD,succeeded\n"
	csv := writeSettlement(t, lines)
	_, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
	want := map[string]string{ // payment id: the amount its detail must name
		"evt_late": "10.00 EUR",
		"evt_usd":  "1.00 USD",
		"evt_jpy":  "1000 JPY",
		"evt_kwd":  "12.345 KWD",
	}
	detailsName(t, rep, stderr, want, "the settlement's own figure")
}

// TestReconcileRefusesBothStores: the synopsis is "[--data-dir DIR |
// --postgres-url URL]", one store or the other. Given both (or one of them
// from the environment, as a node's SURGE_POSTGRES_URL), the command read
// PostgreSQL and ignored --data-dir without a word: here it reported on
// the cluster's empty books ("0 orders of 0 sales") instead of the data
// directory's, which hold a refund due. Two stores are refused instead,
// but for a SURGE_DATA_DIR of the environment (the container image sets
// /data in every node), which gives way to the URL as in surge serve.
func TestReconcileRefusesBothStores(t *testing.T) {
	ns := servicetest.Namespace(t)
	st, err := cluster.Open(context.Background(), servicetest.RedisURL(), servicetest.PostgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true})
	if err != nil {
		t.Fatalf("cluster.Open (run scripts/services.sh): %v", err)
	}
	st.Close() // the cluster's books: Surge's tables, empty
	url := servicetest.PostgresURL() + "&search_path=" + ns

	dir, books := openBooks(t)
	ids := reconcileData(t, books, true) // evt_late: a refund due
	books.Close()
	file := settlementFile(t, "clean.csv", ids)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"both flags", nil, []string{"--data-dir", dir, "--postgres-url", url}},
		{"postgres from the environment", map[string]string{"SURGE_POSTGRES_URL": url}, []string{"--data-dir", dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"reconcile", "--settlement", file}, tc.args...), &stdout, &stderr)
			if code != 2 || !oneLine(stderr.String()) || !strings.Contains(stderr.String(), "--data-dir") || !strings.Contains(stderr.String(), "--postgres-url") {
				t.Errorf("reconcile given a data directory and a PostgreSQL URL: exit %d, stdout %q, stderr %q; want exit 2 and one line naming --data-dir and --postgres-url",
					code, stdout.String(), stderr.String())
			}
		})
	}
	t.Run("data dir from the environment", func(t *testing.T) {
		t.Setenv("SURGE_DATA_DIR", dir)
		code, rep, stderr := runReconcile(t, "--postgres-url", url, "--settlement", file)
		if code == 2 || rep.Orders != 0 || rep.Sales != 0 {
			t.Errorf("reconcile --postgres-url in a node's environment (SURGE_DATA_DIR set): exit %d, %d orders of %d sales (stderr %s); want the cluster's books, 0 orders of 0 sales",
				code, rep.Orders, rep.Sales, stderr)
		}
	})
}

// TestReconcileMalformedPostgresURLIsUsage: a --postgres-url that does not
// parse is a usage error, exit 2 ("fix the command"), as surge serve
// answers it; exit 3 says the store could not be read (PostgreSQL
// unreachable: try again later), and a script that retries on 3 would
// retry a typo for ever.
func TestReconcileMalformedPostgresURLIsUsage(t *testing.T) {
	ctx := context.Background()
	file := settlementFile(t, "clean.csv", map[string]string{"ORDER1": "o_1", "ORDER2": "o_2", "ORDER3": "o_3"})
	for _, url := range []string{"postgres://%zz@127.0.0.1/test", "postgres://surge@127.0.0.1:99999999/test", "mysql://127.0.0.1/test"} {
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{"reconcile", "--postgres-url", url, "--settlement", file}, &stdout, &stderr)
		if code != 2 {
			t.Errorf("reconcile --postgres-url %q (does not parse): exit status %d, want 2 (a usage error, as surge serve answers it; 3 says PostgreSQL could not be read); stderr %q",
				url, code, stderr.String())
		}
	}
}

// failingWriter refuses every write, as a full disk under `> report.txt`.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// failsFirstWrite refuses the first write only, as a disk that was full
// for a moment (another process's file removed right after) does: the
// report's later lines are written, its first is not.
type failsFirstWrite struct{ failed bool }

func (w *failsFirstWrite) Write(p []byte) (int, error) {
	if !w.failed {
		w.failed = true
		return 0, errors.New("no space left on device")
	}
	return len(p), nil
}

// TestReconcileReportUnwrittenIsNotMismatch: exit 1 tells a script the
// books mismatch (docs/payments.md). Books that match, whose report could
// not be written whole (stdout on a full disk, from the start or for its
// first line: the table dropped that line's error and exited 0, the
// report missing its counts), must exit 3 and name the write's error, not
// 1: the script would raise a mismatch that is not there, with no report
// to look at. Books that mismatch still exit 1, whether or not the report
// was written.
func TestReconcileReportUnwrittenIsNotMismatch(t *testing.T) {
	dir, st := openBooks(t)
	defer st.Close()
	ids := reconcileData(t, st, false)
	for _, w := range []struct {
		what string
		out  func() io.Writer
	}{
		{"its report unwritten", func() io.Writer { return failingWriter{} }},
		{"the report's first line unwritten", func() io.Writer { return &failsFirstWrite{} }},
	} {
		for _, c := range []struct {
			file string
			want int
		}{{"clean.csv", 3}, {"amount_differs.csv", 1}} {
			for _, format := range [][]string{nil, {"--json"}} {
				var stderr bytes.Buffer
				args := append([]string{"reconcile", "--data-dir", dir, "--settlement", settlementFile(t, c.file, ids)}, format...)
				code := run(context.Background(), args, w.out(), &stderr)
				if code != c.want || !strings.Contains(stderr.String(), "no space left") {
					t.Errorf("reconcile %s %v, %s: exit status %d, stderr %q; want %d (1 only when the books mismatch) and the write's error",
						c.file, format, w.what, code, stderr.String(), c.want)
				}
			}
		}
	}
}

// TestReconcileDetailKronaFractionInMajorUnits: a króna line with a
// fraction ("40.10", a Stripe charge of before 2023) is read in Stripe's
// hundredths, since ISO 4217's whole krónur cannot hold it. The details
// wrote that count as whole krónur, "4010 ISK", a hundred times the line's
// figure; they must name the amount as the settlement wrote it.
func TestReconcileDetailKronaFractionInMajorUnits(t *testing.T) {
	dir, st := openBooks(t)
	defer st.Close()
	ids := reconcileData(t, st, false)
	lines := "payment_id,order_id,amount,currency,status\n" +
		"evt_1," + ids["ORDER1"] + ",40.10,ISK,succeeded\n" + // Surge recorded 10.00 EUR: the amounts differ
		"evt_2," + ids["ORDER2"] + ",20.00,EUR,succeeded\n" +
		"evt_isk,o_unknown,40.10,ISK,succeeded\n" +
		"evt_iskr,o_unknown2,12.50,ISK,refunded\n"
	csv := writeSettlement(t, lines)
	_, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
	want := map[string]string{ // payment id: the amount its detail must name
		"evt_1":    "settled 40.10 ISK",
		"evt_isk":  "settled 40.10 ISK",
		"evt_iskr": "refunded 12.50 ISK",
	}
	detailsName(t, rep, stderr, want, "the settlement's figure: a króna fraction is read in hundredths; written as whole krónur it is 100 times the figure")
}

// detailsName checks that each payment of want has a mismatch in rep whose
// detail names want's amount; why says why that amount.
func detailsName(t *testing.T, rep reconcile.Report, stderr string, want map[string]string, why string) {
	t.Helper()
	for _, m := range rep.Mismatches {
		w, ok := want[m.PaymentID]
		if !ok {
			continue
		}
		delete(want, m.PaymentID)
		if !strings.Contains(m.Detail, w) {
			t.Errorf("%s %s: detail %q; want the amount as %q (%s)", m.Kind, m.PaymentID, m.Detail, w, why)
		}
	}
	for id, w := range want {
		t.Errorf("no mismatch for %s (%s); report %+v, stderr %s", id, w, rep.Mismatches, stderr)
	}
}

// TestReconcileFreeOrderPaidWithNothing: an order that costs nothing is
// paid by a payment of zero (a Stripe Checkout Session completed with
// payment_status no_payment_required, which has no PaymentIntent and no
// charge). No money moved, so the provider's settlement has no line for
// it; reconcile reported it paid_not_at_provider, exit 1, for books that
// match ("a consistent store never reports a mismatch").
func TestReconcileFreeOrderPaidWithNothing(t *testing.T) {
	ctx := context.Background()
	dir, st := openBooks(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	name, cur, free := "free", "EUR", int64(0)
	o := reserveInNewSale(t, st, surge.SaleInput{ID: &name, PriceCents: &free, Currency: &cur}, 2, now)
	r, err := st.RecordPayment(ctx, surge.PaymentEvent{ID: "cs_test_free", Type: surge.PaymentSucceeded, OrderID: o.ID,
		AmountCents: 0, Currency: "eur", Created: now, Provider: "stripe"}, now.Add(time.Second))
	if err != nil || r.Payment.Status != surge.PaymentPaid {
		t.Fatalf("RecordPayment = %s, %v; want paid", r.Payment.Status, err)
	}
	st.Close()
	csv := writeSettlement(t, "payment id,order id,amount,currency,status\n")
	code, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
	if code != 0 || len(rep.Mismatches) != 0 {
		t.Errorf("free order %s paid by cs_test_free of 0.00 EUR, a settlement without it (no money moved): exit %d, mismatches %+v (stderr %s); "+
			"want exit 0: a payment of nothing has no settlement line", o.ID, code, rep.Mismatches, stderr)
	}
}

// TestReconcileFreeCheckoutTooLate: a free order's checkout (a Stripe
// Checkout Session completed no_payment_required, a payment of zero) that
// completes after the order's hold ran out, or a second one of an order
// its first paid already, is recorded refund_due, as any payment of an
// order no longer payable. It took nothing, so there is nothing to give
// back and no settlement line; reconcile told the operator to refund
// "0.00 EUR" and exited 1 for books that match.
func TestReconcileFreeCheckoutTooLate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		payFirst bool          // the order is paid by a first free checkout
		at       time.Duration // when the late one is recorded, after the purchase
	}{
		{"after the hold ran out", false, 2 * time.Hour},
		{"a second checkout of a paid order", true, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir, st := openBooks(t)
			now := time.Now().UTC().Truncate(time.Millisecond)
			name, cur, free, hold := "free", "EUR", int64(0), int64(60)
			o := reserveInNewSale(t, st, surge.SaleInput{ID: &name, PriceCents: &free, Currency: &cur, HoldSeconds: &hold}, 2, now)
			if tc.payFirst {
				r, err := st.RecordPayment(ctx, surge.PaymentEvent{ID: "cs_test_free1", Type: surge.PaymentSucceeded, OrderID: o.ID,
					AmountCents: 0, Currency: "eur", Created: now, Provider: "stripe"}, now.Add(time.Millisecond))
				if err != nil || r.Payment.Status != surge.PaymentPaid {
					t.Fatalf("first RecordPayment = %s, %v; want paid", r.Payment.Status, err)
				}
			}
			r, err := st.RecordPayment(ctx, surge.PaymentEvent{ID: "cs_test_free2", Type: surge.PaymentSucceeded, OrderID: o.ID,
				AmountCents: 0, Currency: "eur", Created: now.Add(tc.at), Provider: "stripe"}, now.Add(tc.at))
			if err != nil || r.Payment.Status != surge.PaymentRefundDue {
				t.Fatalf("late RecordPayment = %s, %v; want refund_due (the order is no longer payable)", r.Payment.Status, err)
			}
			st.Close()
			csv := writeSettlement(t, "payment id,order id,amount,currency,status\n")
			code, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
			if code != 0 || len(rep.Mismatches) != 0 {
				t.Errorf("free order %s, checkout cs_test_free2 of 0.00 EUR %s, recorded refund_due: exit %d, mismatches %+v (stderr %s); "+
					"want exit 0: a payment of nothing took nothing, so nothing is due back", o.ID, tc.name, code, rep.Mismatches, stderr)
			}
		})
	}
}

// TestReconcileRefundInSteps: money owed back (refund_due) refunded in
// steps, as Stripe refunds a charge. While part is refunded, the report
// asks for the rest, not the whole (which would refund the buyer twice
// over); once the steps add up, nothing is owed and nothing is reported.
func TestReconcileRefundInSteps(t *testing.T) {
	dir, st := openBooks(t)
	ids := reconcileData(t, st, true) // evt_late: 10.00 EUR refund_due of ORDER3
	now := time.Now().UTC().Truncate(time.Second)
	refund := func(id string, cents int64) surge.PaymentEvent {
		return surge.PaymentEvent{ID: id, Type: surge.RefundSucceeded, OrderID: ids["ORDER3"], AmountCents: cents,
			Currency: "EUR", Created: now, Provider: "surge"}
	}
	settlement := firstTwoSettled +
		"evt_late,ORDER3,10.00,EUR,succeeded\nre_1,ORDER3,4.00,EUR,refunded\n"
	recordPayments(t, st, now.Add(2*time.Second), refund("re_1", 400))
	csv := writeSettlement(t, withIDs(settlement, ids))
	_, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
	if len(rep.Mismatches) != 1 || rep.Mismatches[0].Kind != reconcile.RefundDue || !strings.Contains(rep.Mismatches[0].Detail, "refund the other 6.00 EUR") {
		t.Errorf("evt_late (10.00 EUR, refund_due) refunded 4.00 EUR by re_1: mismatches %+v (stderr %s); want one refund_due asking for the other 6.00 EUR",
			rep.Mismatches, stderr)
	}
	recordPayments(t, st, now.Add(3*time.Second), refund("re_2", 600))
	csv = writeSettlement(t, withIDs(settlement+"re_2,ORDER3,6.00,EUR,refunded\n", ids))
	code, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
	if code != 0 || len(rep.Mismatches) != 0 {
		t.Errorf("evt_late (10.00 EUR) refunded in two steps, 4.00 and 6.00 EUR: exit %d, mismatches %+v (stderr %s); want exit 0, nothing owed",
			code, rep.Mismatches, stderr)
	}
}

// TestReconcileRefundNotInSettlement: money owed back (refund_due) that
// Surge recorded refunded in two steps, 4.00 and 6.00 EUR, while the
// provider's settlement holds the payment taken and only the first step:
// by the provider's books 6.00 EUR of it is still taken, and reconcile
// must ask for it instead of calling the payment refunded. With no step in
// the settlement, the whole is asked for; with both, or with the payment's
// own line marked refunded, nothing is.
func TestReconcileRefundNotInSettlement(t *testing.T) {
	dir, st := openBooks(t)
	ids := reconcileData(t, st, true) // evt_late: 10.00 EUR refund_due of ORDER3
	now := time.Now().UTC().Truncate(time.Second)
	refund := func(id string, cents int64) surge.PaymentEvent {
		return surge.PaymentEvent{ID: id, Type: surge.RefundSucceeded, OrderID: ids["ORDER3"], AmountCents: cents,
			Currency: "EUR", Created: now, Provider: "surge"}
	}
	recordPayments(t, st, now.Add(2*time.Second), refund("re_1", 400), refund("re_2", 600))
	settlement := firstTwoSettled +
		"evt_late,ORDER3,10.00,EUR,succeeded\n"
	for _, tc := range []struct {
		name, lines, want string
	}{
		{"one step of two", "re_1,ORDER3,4.00,EUR,refunded\n", "refund the other 6.00 EUR"},
		{"no step", "", "refund it"},
		{"both steps", "re_1,ORDER3,4.00,EUR,refunded\nre_2,ORDER3,6.00,EUR,refunded\n", ""},
		{"the payment marked refunded", "evt_late,ORDER3,10.00,EUR,refunded\n", ""},
		// The provider's own ids of the refunds, which Surge recorded
		// under others: paid_not_in_surge says so, and nothing is asked
		// for again.
		{"refunds under other ids", "rf_a,ORDER3,4.00,EUR,refunded\nrf_b,ORDER3,6.00,EUR,refunded\n", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csv := writeSettlement(t, withIDs(settlement+tc.lines, ids))
			code, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
			if tc.want == "-" {
				for _, m := range rep.Mismatches {
					if m.Kind != reconcile.PaidNotInSurge {
						t.Errorf("mismatch %+v (stderr %s); want only paid_not_in_surge", m, stderr)
					}
				}
				return
			}
			if tc.want == "" {
				if code != 0 || len(rep.Mismatches) != 0 {
					t.Errorf("exit %d, mismatches %+v (stderr %s); want exit 0, nothing owed", code, rep.Mismatches, stderr)
				}
				return
			}
			if len(rep.Mismatches) != 1 || rep.Mismatches[0].Kind != reconcile.RefundDue || rep.Mismatches[0].PaymentID != "evt_late" ||
				!strings.Contains(rep.Mismatches[0].Detail, tc.want) {
				t.Errorf("mismatches %+v (stderr %s); want one refund_due of evt_late saying %q", rep.Mismatches, stderr, tc.want)
			}
		})
	}
	t.Run("amount_mismatch", func(t *testing.T) {
		// Money of the wrong amount, refunded in full in Surge's books;
		// the settlement holds it taken and not its refund.
		dir, st := openBooks(t)
		ids := reconcileData(t, st, false) // ORDER3 (1 unit, 10.00 EUR) reserved
		shortPaymentRefunded(t, st, ids["ORDER3"], "re_short", 999)
		text := firstTwoSettled +
			"evt_short,ORDER3,9.99,EUR,succeeded\n"
		_, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", writeSettlement(t, withIDs(text, ids)))
		if len(rep.Mismatches) != 1 || rep.Mismatches[0].Kind != reconcile.NotApplied || rep.Mismatches[0].PaymentID != "evt_short" {
			t.Errorf("mismatches %+v (stderr %s); want one not_applied of evt_short: its refund is not in the settlement", rep.Mismatches, stderr)
		}
	})
}

// TestReconcileRefundDueRefundedAtProvider: money owed back (refund_due)
// that the provider's settlement holds refunded, whose refund Surge never
// heard of (a webhook lost). refund_not_in_surge tells of the missing
// record; refund_due ("refund it") would have the operator give the buyer
// the money a second time.
func TestReconcileRefundDueRefundedAtProvider(t *testing.T) {
	dir, st := openBooks(t)
	ids := reconcileData(t, st, true) // evt_late: 10.00 EUR refund_due of ORDER3
	text := firstTwoSettled +
		"evt_late,ORDER3,10.00,EUR,succeeded\nevt_late,ORDER3,10.00,EUR,refunded\n"
	_, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", writeSettlement(t, withIDs(text, ids)))
	if len(rep.Mismatches) != 1 || rep.Mismatches[0].Kind != reconcile.RefundNotInSurge || rep.Mismatches[0].PaymentID != "evt_late" {
		t.Errorf("mismatches %+v (stderr %s); want only refund_not_in_surge of evt_late, no refund_due: the provider refunded it", rep.Mismatches, stderr)
	}
}

// TestReconcileMismatchRefundedAtProvider: money of the wrong amount
// (amount_mismatch) that Surge recorded refunded in part, 5.00 of 9.99 EUR,
// while the provider's settlement holds the payment refunded. The refund
// Surge lacks is refund_not_in_surge; not_applied saying "the other 4.99
// EUR still taken" would have the operator give it back a second time.
func TestReconcileMismatchRefundedAtProvider(t *testing.T) {
	dir, st := openBooks(t)
	ids := reconcileData(t, st, false) // ORDER3 (1 unit, 10.00 EUR) reserved
	shortPaymentRefunded(t, st, ids["ORDER3"], "re_half", 500)
	text := firstTwoSettled +
		"evt_short,ORDER3,9.99,EUR,succeeded\nre_half,ORDER3,5.00,EUR,refunded\nevt_short,ORDER3,9.99,EUR,refunded\n"
	_, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", writeSettlement(t, withIDs(text, ids)))
	if len(rep.Mismatches) != 1 || rep.Mismatches[0].Kind != reconcile.RefundNotInSurge || rep.Mismatches[0].PaymentID != "evt_short" {
		t.Errorf("mismatches %+v (stderr %s); want only refund_not_in_surge of evt_short: the provider refunded it", rep.Mismatches, stderr)
	}
}

// TestReconcileRefundedMismatch: money taken of the wrong amount
// (amount_mismatch), then refunded in full, is settled: nothing is owed
// and the order is not paid by it. Its refund stayed refund_unexpected
// ("the order may be paid") and the payment not_applied, for good.
func TestReconcileRefundedMismatch(t *testing.T) {
	dir, st := openBooks(t)
	ids := reconcileData(t, st, false) // ORDER3 (1 unit, 10.00 EUR) reserved
	shortPaymentRefunded(t, st, ids["ORDER3"], "re_short", 999)
	text := firstTwoSettled +
		"evt_short,ORDER3,9.99,EUR,succeeded\nre_short,ORDER3,9.99,EUR,refunded\nevt_short,ORDER3,9.99,EUR,refunded\n"
	code, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", writeSettlement(t, withIDs(text, ids)))
	if code != 0 || len(rep.Mismatches) != 0 {
		t.Errorf("evt_short (9.99 EUR for an order of 10.00 EUR: amount_mismatch) refunded in full by re_short: exit %d, mismatches %+v (stderr %s); want exit 0, nothing owed",
			code, rep.Mismatches, stderr)
	}
}

// TestReconcileHalfRefundedMismatch: money taken of the wrong amount
// (amount_mismatch) and refunded in part. The part refunded settles it in
// part (no longer refund_unexpected), so the report's not_applied was all
// the operator saw of it, and it did not say that part was given back: a
// refund of the whole it invited would give the buyer 5.00 EUR twice. It
// says what was refunded and what is still taken, as refund_due does.
func TestReconcileHalfRefundedMismatch(t *testing.T) {
	dir, st := openBooks(t)
	ids := reconcileData(t, st, false) // ORDER3 (1 unit, 10.00 EUR) reserved
	shortPaymentRefunded(t, st, ids["ORDER3"], "re_half", 500)
	text := firstTwoSettled +
		"evt_short,ORDER3,9.99,EUR,succeeded\nre_half,ORDER3,5.00,EUR,refunded\n"
	_, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", writeSettlement(t, withIDs(text, ids)))
	if len(rep.Mismatches) != 1 || rep.Mismatches[0].Kind != reconcile.NotApplied || rep.Mismatches[0].PaymentID != "evt_short" ||
		!strings.Contains(rep.Mismatches[0].Detail, "5.00 EUR of it refunded") || !strings.Contains(rep.Mismatches[0].Detail, "the other 4.99 EUR") {
		t.Errorf("evt_short (9.99 EUR for an order of 10.00 EUR: amount_mismatch) refunded 5.00 EUR by re_half: mismatches %+v (stderr %s); "+
			"want one not_applied saying 5.00 EUR of it refunded and the other 4.99 EUR still taken", rep.Mismatches, stderr)
	}
}
