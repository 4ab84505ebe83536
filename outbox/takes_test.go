package outbox

import "testing"

func TestStreamTakesSubjects(t *testing.T) {
	for _, c := range []struct {
		subs []string
		want bool
	}{
		{[]string{"surge.orders.>"}, true},
		{[]string{">"}, true},
		{[]string{"surge.>"}, true},
		{[]string{"surge.orders.*.*"}, true},
		{[]string{"surge.*.*.*"}, true},
		{[]string{"other.>", "surge.orders.>"}, true},
		{[]string{"surge.orders.*.paid"}, false},
		{[]string{"surge.orders.*"}, false},
		{[]string{"surge.orders.phone.>"}, false},
		{[]string{"surge.orders"}, false},
		{[]string{"surge.orders.*.*.*"}, false},
		{nil, false},
	} {
		if got := takes(c.subs, "surge.orders"); got != c.want {
			t.Errorf("a stream with subjects %q takes surge.orders.<sale>.<event>: %v, want %v", c.subs, got, c.want)
		}
	}
}
