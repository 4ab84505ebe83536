package waitroom

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var testSigner = signer{key: testSecret}

func TestTicketRoundTrip(t *testing.T) {
	for _, tk := range []ticket{
		{SaleID: "s", UserID: "u", Seq: 1, Slot: 0, Issued: start},
		{SaleID: "s", UserID: "u", Seq: 1, Slot: Unassigned, Draw: 1, Issued: start},
		{SaleID: strings.Repeat("S", 64), UserID: strings.Repeat("u", 64), Seq: 1 << 40, Draw: 1<<64 - 1,
			Slot: 1 << 50, Issued: time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)},
		{SaleID: "phone-drop", UserID: "alice_1", Seq: 523, Slot: 522, Issued: time.UnixMilli(0).UTC()},
	} {
		text := testSigner.sign(tk)
		if len(text) > MaxTicketLen {
			t.Errorf("%d characters, over MaxTicketLen", len(text))
		}
		got, err := testSigner.parse(text)
		if err != nil || got != tk {
			t.Errorf("parse(sign(%+v)) = %+v, %v", tk, got, err)
		}
	}
	short := testSigner.sign(ticket{SaleID: "phone-drop", UserID: "alice", Seq: 523, Slot: 522, Issued: start})
	if len(short) > 90 {
		t.Errorf("a ticket of short ids takes %d characters: %s", len(short), short)
	}
}

// TestTicketTampering: changing any byte of a ticket, or any character of
// its text, makes it invalid; so do truncation and extension.
func TestTicketTampering(t *testing.T) {
	text := testSigner.sign(ticket{SaleID: "sale-1", UserID: "alice", Seq: 7, Draw: 99, Slot: 6, Issued: start})
	raw, err := ticketEncoding.DecodeString(text)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for _, flip := range []byte{0x01, 0x80, 0xff} {
			b := append([]byte(nil), raw...)
			b[i] ^= flip
			if _, err := testSigner.parse(ticketEncoding.EncodeToString(b)); !errors.Is(err, errForged) {
				t.Errorf("byte %d ^ %#x: %v, want a signature failure", i, flip, err)
			}
		}
	}
	for i := range text {
		for _, c := range []byte{'A', 'z', '-', '_', '=', '.', '+', '/'} {
			if c == text[i] {
				continue
			}
			changed := text[:i] + string(c) + text[i+1:]
			if _, err := testSigner.parse(changed); err == nil {
				t.Errorf("character %d changed to %q: accepted", i, c)
			}
		}
	}
	for _, bad := range []string{
		text[:len(text)-1], text + "A", text + "=", " " + text, text[1:], "", "A",
		text[:5] + "\n" + text[5:], text[:5] + "\r\n" + text[5:], text + "\n",
		strings.Repeat("A", MaxTicketLen+1),
	} {
		if _, err := testSigner.parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTicketForgery(t *testing.T) {
	genuine := ticket{SaleID: "s", UserID: "alice", Seq: 1, Slot: 0, Issued: start}
	for _, key := range [][]byte{
		[]byte("0123456789abcdef0123456789abcdeF"), // one bit off
		[]byte("0123456789abcdef0123456789abcdef0"),
		make([]byte, 32),
	} {
		if _, err := testSigner.parse((signer{key: key}).sign(genuine)); !errors.Is(err, errForged) {
			t.Errorf("a ticket under key %q: %v, want a signature failure", key, err)
		}
	}
	text := testSigner.sign(genuine)
	raw, _ := ticketEncoding.DecodeString(text)
	// Alice's MAC on a payload naming mallory.
	moved := testSigner.sign(ticket{SaleID: "s", UserID: "mallory", Seq: 1, Slot: 0, Issued: start})
	mr, _ := ticketEncoding.DecodeString(moved)
	spliced := append(append([]byte(nil), mr[:len(mr)-macSize]...), raw[len(raw)-macSize:]...)
	if _, err := testSigner.parse(ticketEncoding.EncodeToString(spliced)); !errors.Is(err, errForged) {
		t.Errorf("alice's MAC on mallory's ticket: %v", err)
	}
}

// TestTicketValidMACBadPayload: payloads signed with the right key but not
// written by sign (a key shared with something else) are still refused.
func TestTicketValidMACBadPayload(t *testing.T) {
	for _, payload := range [][]byte{
		{},
		{3, 1, 's', 1, 'u', 1, 0, 1, 0, 1},       // unknown version
		{2, 1, 's', 1, 'u', 1, 0, 1, 0},          // missing epoch
		{2, 1, 's', 1, 'u', 1, 0, 1, 0, 1, 0},    // trailing byte
		{2, 1, '/', 1, 'u', 1, 0, 1, 0, 1},       // invalid sale id
		{2, 1, 's', 0, 1, 0, 1, 0, 1},            // empty user id
		{2, 9, 's', 1, 'u', 1, 0, 1, 0, 1},       // length past the end
		{2, 1, 's', 1, 'u', 0, 0, 1, 0, 1},       // seq 0
		{2, 1, 's', 1, 'u', 1, 0, 1, 0, 0xff},    // unterminated epoch
		{2, 1, 's', 1, 'u', 0xff, 0xff, 0xff, 1}, // unterminated varint
	} {
		text := ticketEncoding.EncodeToString(append(append([]byte(nil), payload...), testSigner.mac(payload)...))
		if _, err := testSigner.parse(text); !errors.Is(err, errMalformed) {
			t.Errorf("payload %v: %v, want malformed", payload, err)
		}
	}
	// A version 1 ticket (no epoch) predates every current queue.
	v1 := []byte{1, 1, 's', 1, 'u', 1, 0, 1, 0}
	if _, err := testSigner.parse(ticketEncoding.EncodeToString(append(v1, testSigner.mac(v1)...))); !errors.Is(err, errStale) {
		t.Errorf("a version 1 ticket: %v, want stale", err)
	}
	ok := []byte{2, 1, 's', 1, 'u', 1, 0, 1, 0, 1}
	if _, err := testSigner.parse(ticketEncoding.EncodeToString(append(ok, testSigner.mac(ok)...))); err != nil {
		t.Errorf("the minimal ticket: %v", err)
	}
}
