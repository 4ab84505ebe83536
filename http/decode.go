package http

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
)

// noQuery refuses a query string on an endpoint that takes none (every
// one that changes something: its input is its body) and reports whether
// the request goes on. Ignored, POST …/purchases?quantity=3 bought the
// body's quantity, one without a body, while its client believed it had
// asked for three; a bad input must be refused, never guessed at.
func noQuery(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.RawQuery == "" {
		return true
	}
	invalid(w, "%s %s takes no query parameters; send its input in the JSON body", r.Method, r.URL.Path)
	return false
}

// noQueryNoInput is noQuery for an endpoint that takes no input at all
// (noBody): pointing its client to the body would fail again.
func noQueryNoInput(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.RawQuery == "" {
		return true
	}
	invalid(w, "%s %s takes no query parameters and no input (no body, or {})", r.Method, r.URL.Path)
	return false
}

// noBody refuses a body on an endpoint that takes none (blanks and {}
// are tolerated) and reports whether the request goes on. Ignored,
// {"quantity":1} on the cancel of an order of three units cancelled all
// three.
func noBody(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength == 0 {
		return true
	}
	body, ok := readBody(w, r, MaxPurchaseBody)
	if !ok {
		return false
	}
	if skipSpace(body, 0) != len(body) {
		if err := decodeStrict(body, &struct{}{}); err != nil {
			invalid(w, "this endpoint takes no body, or {}: %v", err)
			return false
		}
	}
	return true
}

// decodeStrict decodes exactly one JSON object into v.
//
// It uses github.com/go-json-experiment/json, the json/v2 prototype that
// became encoding/json/v2, instead of encoding/json: the latter takes the
// last of duplicate names and matches names case-insensitively (with
// Unicode folding: "\u017ftoc\u212a" is "stock"), so {"quantity":1,
// "quantity":9} or {"Quantity":9} would mean something a proxy, WAF or
// audit log in front of us may read differently. v2 matches names exactly,
// refuses duplicate names and invalid UTF-8 by default, and
// RejectUnknownMembers refuses unknown names: no scanner of our own.
func decodeStrict(body []byte, v any) error {
	err := json.Unmarshal(body, v, json.RejectUnknownMembers(true))
	if err != nil {
		return describeJSONError(body, v, err)
	}
	// null is the one non-object that decodes into a struct without error.
	if i := skipSpace(body, 0); i < len(body) && body[i] == 'n' {
		return errors.New("the body must be a JSON object")
	}
	return nil
}

// describeJSONError turns a json/v2 error into a message for the client,
// naming the field (as a dotted path) and what it must be.
func describeJSONError(body []byte, v any, err error) error {
	var semErr *json.SemanticError
	var synErr *jsontext.SyntacticError
	switch {
	case errors.As(err, &synErr) && errors.Is(synErr.Err, jsontext.ErrDuplicateName):
		return fmt.Errorf("field %q appears more than once; each field may appear only once", fieldPath(synErr.JSONPointer))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the body is empty or truncated JSON")
	case errors.As(err, &synErr):
		if trailingData(body) {
			return errors.New("the body must hold exactly one JSON object")
		}
		return fmt.Errorf("malformed JSON at byte %d: %v", synErr.ByteOffset, synErr.Err)
	case errors.As(err, &semErr) && errors.Is(semErr.Err, json.ErrUnknownName):
		name := semErr.JSONPointer.LastToken()
		msg := fmt.Sprintf("unknown field %q", fieldPath(semErr.JSONPointer))
		if known := caseVariantOf(semErr.GoType, name); known != "" {
			msg += fmt.Sprintf(": field names are case-sensitive, did you mean %q?", known)
		}
		return errors.New(msg)
	case errors.As(err, &semErr):
		if semErr.JSONPointer == "" {
			return errors.New("the body must be a JSON object")
		}
		what := "a value of the right type"
		if semErr.GoType != nil {
			what = jsonKind(semErr.GoType.Kind())
		}
		return fmt.Errorf("field %q must be %s", fieldPath(semErr.JSONPointer), what)
	}
	return err
}

// trailingData reports whether body starts with one complete, well-formed
// JSON value followed by something else.
func trailingData(body []byte) bool {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if _, err := dec.ReadValue(); err != nil {
		return false
	}
	return skipSpace(body, int(dec.InputOffset())) < len(body)
}

// fieldPath spells a JSON pointer as the dotted path clients know from the
// docs: /waiting_room/order is "waiting_room.order".
func fieldPath(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	return strings.Join(parts, ".")
}

// caseVariantOf returns the name of a field of struct type t that differs
// from name only in case, or "".
func caseVariantOf(t reflect.Type, name string) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if tag != "" && tag != "-" && tag != name && strings.EqualFold(tag, name) {
			return tag
		}
	}
	return ""
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "a value of the right type"
}

// waitingRoomInput checks every field of a sale's waiting_room is
// present; surge.NewSale checks the values.
func waitingRoomInput(r *api.NewWaitingRoom) (*surge.WaitingRoom, error) {
	if r == nil {
		return nil, nil
	}
	for _, f := range []struct {
		name    string
		missing bool
	}{{"admit_per_second", r.AdmitPerSecond == nil}, {"order", r.Policy == nil}, {"ticket_seconds", r.TicketSeconds == nil}} {
		if f.missing {
			return nil, fmt.Errorf("waiting_room.%s is required", f.name)
		}
	}
	return &surge.WaitingRoom{AdmitPerSecond: *r.AdmitPerSecond, Policy: *r.Policy, TicketSeconds: *r.TicketSeconds}, nil
}
