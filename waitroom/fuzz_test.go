package waitroom

import (
	"errors"
	"testing"
)

// FuzzParseTicket feeds arbitrary text to the ticket parser. It never
// panics, refuses anything over MaxTicketLen, and accepts only what sign
// writes: an accepted ticket signs back to the very same text (the seeds of
// version 1, before epochs, are refused as stale). The seeds in
// testdata include tickets signed with testSecret, so the fuzzer starts
// from valid tickets and mutates them.
func FuzzParseTicket(f *testing.F) {
	f.Add(testSigner.sign(ticket{SaleID: "s", UserID: "u", Seq: 1, Slot: 0, Issued: start}))
	f.Add(testSigner.sign(ticket{SaleID: "phone-drop", UserID: "alice", Seq: 9, Draw: 1 << 63, Slot: Unassigned, Issued: start}))
	f.Add(testSigner.sign(ticket{SaleID: "s", UserID: "u", Seq: 1, Slot: 0, Issued: start, Epoch: 1 << 63}))
	f.Add("")
	f.Add("AQFzAXUBAAEA")
	f.Fuzz(func(t *testing.T, text string) {
		tk, err := testSigner.parse(text)
		if err != nil {
			if !errors.Is(err, errMalformed) && !errors.Is(err, errForged) && !errors.Is(err, errStale) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(text) > MaxTicketLen {
			t.Fatalf("accepted %d characters", len(text))
		}
		if again := testSigner.sign(tk); again != text {
			t.Fatalf("accepted %q, which signs back as %q", text, again)
		}
	})
}
