package http

import (
	"fmt"
	"net/http"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/surgehq/surge"
)

// updateSale steers a sale in service (admin): PATCH /v1/sales/{id} with
// any of paused, name, stock, per_user_limit, ends_at, hold_seconds.
func (s *Server) updateSale(w http.ResponseWriter, r *http.Request) {
	id, ok := s.adminSaleID(w, r)
	if !ok || !noQuery(w, r) {
		return
	}
	body, ok := readBody(w, r, MaxSaleBody)
	if !ok {
		return
	}
	p, err := decodeSalePatch(body)
	if err != nil {
		invalid(w, "%v", err)
		return
	}
	st, err := s.svc.UpdateSale(r.Context(), id, p)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSaleJSON(st))
}

// decodeSalePatch reads the body of PATCH /v1/sales/{id} strictly. Its
// fields are read raw first, so that null, which would decode as absent,
// is refused for every field but ends_at, where it means "no end".
func decodeSalePatch(body []byte) (surge.SalePatch, error) {
	var raw struct {
		Paused       jsontext.Value `json:"paused"`
		Name         jsontext.Value `json:"name"`
		Stock        jsontext.Value `json:"stock"`
		PerUserLimit jsontext.Value `json:"per_user_limit"`
		EndsAt       jsontext.Value `json:"ends_at"`
		HoldSeconds  jsontext.Value `json:"hold_seconds"`
	}
	var p surge.SalePatch
	if err := decodeStrict(body, &raw); err != nil {
		return p, err
	}
	for _, f := range []struct {
		name string
		v    jsontext.Value
		dst  any
	}{
		{"paused", raw.Paused, &p.Paused},
		{"name", raw.Name, &p.Name},
		{"stock", raw.Stock, &p.Stock},
		{"per_user_limit", raw.PerUserLimit, &p.PerUserLimit},
		{"hold_seconds", raw.HoldSeconds, &p.HoldSeconds},
	} {
		if f.v == nil {
			continue
		}
		if f.v.Kind() == 'n' {
			return p, fmt.Errorf("field %q must not be null; leave it out to keep it as it is", f.name)
		}
		if err := json.Unmarshal(f.v, f.dst); err != nil {
			return p, fmt.Errorf("field %q must be %s", f.name, patchKind(f.name))
		}
	}
	if raw.EndsAt != nil {
		if raw.EndsAt.Kind() == 'n' {
			p.EndsAt = new(time.Time) // the zero time: no end
		} else {
			var v string
			if err := json.Unmarshal(raw.EndsAt, &v); err != nil {
				return p, fmt.Errorf(`field "ends_at" must be an RFC 3339 time such as 2026-11-23T10:00:00Z, "now", or null for no end`)
			}
			if v == "now" {
				// Ended at the server's present (surge sale end): a time
				// the caller computed ends it late by as much as the
				// caller's clock runs ahead.
				p.EndNow = true
				return p, nil
			}
			t, err := parseTimeField("ends_at", &v)
			if err != nil {
				return p, err
			}
			// The zero instant is SalePatch's "no end" (null): as a time it
			// lies before every starts_at (years 0001-9999), so it is
			// refused as any other end not after the start, never read
			// as null.
			if t.IsZero() {
				return p, fmt.Errorf("ends_at must be after starts_at")
			}
			p.EndsAt = t
		}
	}
	return p, nil
}

func patchKind(field string) string {
	switch field {
	case "paused":
		return "a boolean"
	case "name":
		return "a string"
	}
	return "an integer"
}
