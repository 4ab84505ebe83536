package surge_test

import (
	"fmt"
	"testing"

	"github.com/surgehq/surge"
)

// TestSettleEarly: the refunds delivered before a payment owed back that
// settle it. Those naming it are its own, each as far as it is still
// owed; of those naming only the order, one of its exact amount alone,
// else the oldest that fit, in steps.
func TestSettleEarly(t *testing.T) {
	order := func(id string, cents int64) surge.EarlyRefund { return surge.EarlyRefund{ID: id, AmountCents: cents} }
	named := func(id string, cents int64) surge.EarlyRefund {
		return surge.EarlyRefund{ID: id, AmountCents: cents, Named: true}
	}
	for _, c := range []struct {
		name  string
		owed  int64
		early []surge.EarlyRefund
		want  string // settled ids, then what is still owed
	}{
		{"none", 3000, nil, "[] 3000"},
		{"whole", 3000, []surge.EarlyRefund{order("a", 3000)}, "[a] 0"},
		{"exact before steps", 3000, []surge.EarlyRefund{order("a", 1000), order("b", 3000)}, "[b] 0"},
		{"steps", 3000, []surge.EarlyRefund{order("a", 1000), order("b", 1500), order("c", 500)}, "[a b c] 0"},
		{"steps in part", 3000, []surge.EarlyRefund{order("a", 1000), order("b", 1500)}, "[a b] 500"},
		{"a step too many", 3000, []surge.EarlyRefund{order("a", 2000), order("b", 2000), order("c", 1000)}, "[a c] 0"},
		{"more than owed", 3000, []surge.EarlyRefund{order("a", 3001)}, "[] 3000"},
		{"nothing of something", 3000, []surge.EarlyRefund{order("a", 0)}, "[] 3000"},
		{"nothing of nothing", 0, []surge.EarlyRefund{order("a", 0), order("b", 0)}, "[a] 0"},
		{"named steps", 3000, []surge.EarlyRefund{named("a", 1000), named("b", 2000)}, "[a b] 0"},
		{"named over", 3000, []surge.EarlyRefund{named("a", 2000), named("b", 2000)}, "[a] 1000"},
		{"named first", 3000, []surge.EarlyRefund{order("a", 3000), named("b", 3000)}, "[b] 0"},
		{"named then the order's", 3000, []surge.EarlyRefund{named("a", 1000), order("b", 2000)}, "[a b] 0"},
	} {
		settle, rest := surge.SettleEarly(c.owed, c.early)
		if got := fmt.Sprint(settle, rest); got != c.want {
			t.Errorf("%s: SettleEarly(%d, %+v) = %s, want %s", c.name, c.owed, c.early, got, c.want)
		}
	}
}
