package ledger

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// roundTrip writes l's image and returns the state read back from it.
func roundTrip(t testing.TB, l *Sale) *Sale {
	t.Helper()
	b := image(t, l)
	got, err := readImage(*l.Sale(), b)
	if err != nil {
		t.Fatalf("ReadImage: %v", err)
	}
	return got
}

// readImage reads an image held in memory.
func readImage(sale surge.Sale, b []byte) (*Sale, error) {
	return ReadImage(sale, bufio.NewReader(bytes.NewReader(b)), int64(len(b)))
}

func image(t testing.TB, l *Sale) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := l.WriteImage(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != l.ImageSize() {
		t.Fatalf("WriteImage wrote %d bytes, ImageSize says %d", buf.Len(), l.ImageSize())
	}
	return buf.Bytes()
}

// imageSale is a sale of a few orders in every state: reserved, paid,
// cancelled and expired, keyed or not, one key forgotten.
func imageSale(t testing.TB) *Sale {
	t.Helper()
	id, name := "s", "S"
	stock, limit, hold := int64(100), int64(4), int64(60)
	sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &t0, HoldSeconds: &hold}, t0)
	if err != nil {
		t.Fatal(err)
	}
	l := New(sale)
	n := 0
	newID := func() string { n++; return fmt.Sprintf("o_%03d", n) }
	for i := range 12 {
		p := surge.Purchase{UserID: fmt.Sprintf("u%d", i%5), Quantity: 1}
		if i%3 != 0 {
			p.IdempotencyKey = fmt.Sprintf("k%d", i)
		}
		_, tent := l.Decide([]surge.Purchase{p}, t0.Add(time.Duration(i)*time.Second), newID)
		l.Commit(tent)
	}
	for i, st := range []surge.OrderStatus{surge.OrderPaid, surge.OrderPaid, surge.OrderCancelled, surge.OrderExpired, surge.OrderCancelled} {
		if !l.Settle(fmt.Sprintf("o_%03d", 2*i+1), st) {
			t.Fatalf("settle %d refused", i)
		}
	}
	l.Forget(t0.Add(5 * time.Second))
	return l
}

func TestImageRoundTrip(t *testing.T) {
	l := imageSale(t)
	got := roundTrip(t, l)
	if got.Remaining() != l.Remaining() {
		t.Errorf("remaining %d, want %d", got.Remaining(), l.Remaining())
	}
	if !maps.Equal(got.heldMap(), l.heldMap()) || !maps.Equal(got.keyMap(), l.keyMap()) || !maps.Equal(got.reservedMap(), l.reservedMap()) {
		t.Error("the state read back differs")
	}
	if got.forgot.Load() != l.forgot.Load() || got.Ceiling() != l.Ceiling() {
		t.Error("the sale's figures differ")
	}
	// The heaps are rebuilt: the holds end in the same order.
	end := t0.Add(time.Hour)
	if a, b := got.Due(end, 100), l.Due(end, 100); !equalOrders(a, b) {
		t.Errorf("Due after the image: %v, want %v", a, b)
	}
	if a, b := got.Forget(end), l.Forget(end); a != b {
		t.Errorf("Forget after the image dropped %d keys, want %d", a, b)
	}
}

func equalOrders(a, b []surge.Order) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestImageRefusesPending: only durable state is written.
func TestImageRefusesPending(t *testing.T) {
	l := imageSale(t)
	if _, tent := l.Decide([]surge.Purchase{{UserID: "late", Quantity: 1}}, t0, func() string { return "o_late" }); len(tent.Orders) != 1 {
		t.Fatal("the purchase was not reserved")
	}
	if err := l.WriteImage(bufio.NewWriter(&bytes.Buffer{})); err == nil {
		t.Fatal("an image of a pending batch was written")
	}
}

// TestImageDamaged: an image cut short, or whose records point outside
// it, is refused with ErrImage (the checksum around it catches most
// damage; this is what is left).
func TestImageDamaged(t *testing.T) {
	l := imageSale(t)
	b := image(t, l)
	for _, tc := range []struct {
		name string
		b    func() []byte
	}{
		{"cut short", func() []byte { return b[:len(b)-1] }},
		{"longer", func() []byte { return append(bytes.Clone(b), 0) }},
		{"empty", func() []byte { return nil }},
		{"a record's strings past the arena", func() []byte {
			c := bytes.Clone(b)
			last := 8 + recSize*(int(l.st.recs.len())-1) // a reserved order's record
			c[last+24+7] = 0x7f                          // its arena offset, high byte
			return c
		}},
		{"an unknown status", func() []byte {
			c := bytes.Clone(b)
			c[8+recSize*(int(l.st.recs.len())-1)+42] = 9
			return c
		}},
		{"a record count past the end", func() []byte {
			c := bytes.Clone(b)
			c[6] = 1
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := readImage(*l.Sale(), tc.b()); !errors.Is(err, ErrImage) {
				t.Fatalf("ReadImage: %v, want ErrImage", err)
			}
		})
	}
}

// FuzzReadImage: no bytes make ReadImage panic, and what it accepts
// passes Verify or fails it cleanly.
func FuzzReadImage(f *testing.F) {
	l := imageSale(f)
	f.Add(image(f, l))
	f.Add(image(f, New(*l.Sale())))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := readImage(*l.Sale(), b)
		if err != nil {
			return
		}
		_ = got.Verify()
		got.Due(t0.Add(time.Hour), 10)
		got.Forget(t0.Add(time.Hour))
		got.LookupKey("u1", "k1")
	})
}
