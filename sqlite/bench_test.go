package sqlite_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// BenchmarkReserveSerial measures one reservation per group commit: the
// latency floor of a lone purchase (one fsync), where any extra durable
// write on the commit path would show most.
func BenchmarkReserveSerial(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, b.TempDir(), sqlite.Options{NoExpiry: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	id, name, stock := "s", "S", int64(max(b.N, 1))
	sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock}, t0)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.CreateSale(ctx, sale); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		out, _, err := s.Reserve(ctx, "s", []surge.Purchase{{UserID: "u" + strconv.Itoa(i), Quantity: 1}}, surge.At(t0))
		if err != nil || out[0].Code != surge.CodeReserved {
			b.Fatalf("Reserve: %+v, %v", out, err)
		}
	}
}
