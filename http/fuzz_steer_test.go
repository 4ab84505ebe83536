package http_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
)

// patchKeys are the members of a PATCH /v1/sales/{id} body.
var patchKeys = []string{"paused", "name", "stock", "per_user_limit", "ends_at", "hold_seconds"}

// steerBaseline is the fuzzed sale as every round starts it: it began an
// hour before the test clock and ends a day after.
func steerBaseline() string {
	return `{"paused":false,"name":"steer","stock":100,"per_user_limit":3,"ends_at":"` +
		surge.FormatTime(epoch.Add(24*time.Hour)) + `","hold_seconds":900}`
}

// FuzzSalePatchBody: a PATCH either is refused with a 4xx JSON error
// and leaves the sale byte for byte as it was, or answers 200 with the
// sale as the body asked: every field it named as it said (ends_at a
// time exactly when the body gave a time, null exactly when it gave
// null), every field it left out as before.
func FuzzSalePatchBody(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"paused":true}`,
		`{"paused":false,"stock":1200}`,
		`{"name":"Phone drop","per_user_limit":2,"hold_seconds":60}`,
		`{"ends_at":null}`,
		`{"ends_at":"2031-03-14T09:26:53Z"}`,
		`{"ends_at":"2031-03-20T00:00:00.123456789+02:00"}`,
		`{"ends_at":"0001-01-01T00:00:01Z"}`,
		`{"ends_at":"9999-12-31T23:59:59.999Z"}`,
		`{"ends_at":""}`,
		`{"stock":null}`,
		`{"stock":0}`,
		`{"stock":1,"per_user_limit":2}`,
		`{"Paused":true}`,
		`{"paused":true,"paused":false}`,
		`{"hold_seconds":604801}`,
		`{"name":"a\u202eb"}`,
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f, envOptions{noServer: true, inboxSize: 1})
	starts := surge.FormatTime(epoch.Add(-time.Hour))
	if r := e.serve("POST", "/v1/sales", []byte(`{"id":"steer","name":"steer","stock":100,"per_user_limit":3,"starts_at":"`+
		starts+`","ends_at":"`+surge.FormatTime(epoch.Add(24*time.Hour))+`"}`), asAdmin()); r.status != http.StatusCreated {
		f.Fatalf("create sale: %v", r)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if r := e.serve("PATCH", "/v1/sales/steer", []byte(steerBaseline()), asAdmin()); r.status != http.StatusOK {
			t.Fatalf("reset the sale: %v", r)
		}
		before := e.serve("GET", "/v1/sales/steer", nil)
		was, err := parseSale(before.body)
		if err != nil {
			t.Fatal(err)
		}
		r := e.serve("PATCH", "/v1/sales/steer", body, asAdmin())
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type = %q: %v", ct, r)
		}
		after := e.serve("GET", "/v1/sales/steer", nil)
		switch r.status {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge:
			if err := checkErrorShape(r.body); err != nil {
				t.Fatalf("%v: %v", r, err)
			}
			if !bytes.Equal(after.body, before.body) {
				t.Fatalf("refused %q (%v), yet the sale changed:\nbefore %s\nafter  %s", body, r, before.body, after.body)
			}
			return
		default:
			t.Fatalf("status %d for %q: %v", r.status, body, r)
		}
		got, err := parseSale(r.body)
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		if !bytes.Equal(after.body, r.body) {
			t.Fatalf("answered %s, GET says %s", r.body, after.body)
		}
		names, err := memberNames(body)
		if err != nil {
			t.Fatalf("accepted %q: %v", body, err)
		}
		for i, n := range names {
			if !slices.Contains(patchKeys, n) || slices.Contains(names[:i], n) {
				t.Fatalf("accepted %q with member %q", body, n)
			}
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted %q: %v", body, err)
		}
		want := was
		if v, ok := m["name"]; ok {
			_ = json.Unmarshal(v, &want.Name)
		}
		if v, ok := m["stock"]; ok {
			_ = json.Unmarshal(v, &want.Stock)
			want.Remaining = want.Stock // no order is ever placed
		}
		if v, ok := m["per_user_limit"]; ok {
			_ = json.Unmarshal(v, &want.PerUserLimit)
		}
		if v, ok := m["hold_seconds"]; ok {
			_ = json.Unmarshal(v, &want.HoldSeconds)
		}
		if v, ok := m["ends_at"]; ok {
			if string(v) == "null" {
				want.EndsAt = nil
			} else {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					t.Fatalf("accepted ends_at %s", v)
				}
				at, err := api.ParseTime(s)
				if err != nil {
					t.Fatalf("accepted ends_at %q: %v", s, err)
				}
				if !at.After(epoch.Add(-time.Hour)) {
					t.Fatalf("accepted ends_at %q, not after starts_at %s: %s", s, starts, r.body)
				}
				end := surge.FormatTime(at.UTC().Truncate(time.Millisecond))
				want.EndsAt = &end
			}
		}
		paused := was.Status == "paused"
		if v, ok := m["paused"]; ok {
			_ = json.Unmarshal(v, &paused)
		}
		if (got.Status == "paused") != paused {
			t.Fatalf("paused %v, status %q after %q", paused, got.Status, body)
		}
		if got.Name != want.Name || got.Stock != want.Stock || got.Remaining != want.Remaining ||
			got.PerUserLimit != want.PerUserLimit || got.HoldSeconds != want.HoldSeconds ||
			(got.EndsAt == nil) != (want.EndsAt == nil) || (got.EndsAt != nil && *got.EndsAt != *want.EndsAt) ||
			got.StartsAt != was.StartsAt || got.ID != was.ID || got.PriceCents != was.PriceCents || got.Currency != was.Currency {
			t.Fatalf("PATCH %q answered\n%s\nwant %+v (ends_at %v)", body, r.body, want, deref(want.EndsAt))
		}
	})
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
