package rpc

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
)

// jsonCodecs replace connect-go's JSON codec, under both names it
// answers to, with strictJSON.
func jsonCodecs() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithCodec(strictJSON{"json"}),
		connect.WithCodec(strictJSON{"json; charset=utf-8"}),
	}
}

// strictJSON is connect-go's protojson codec without DiscardUnknown: the
// HTTP API refuses unknown and wrongly cased fields (docs/api.md), so that
// what a proxy or audit log in front reads is what the server reads, and
// {"Quantity":2} is a mistake refused, not a purchase of one unit. protojson
// still accepts each field's JSON and proto names, as the spec requires.
type strictJSON struct{ name string }

func (c strictJSON) Name() string { return c.name }

func (strictJSON) Marshal(message any) ([]byte, error) {
	m, ok := message.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", message)
	}
	return protojson.Marshal(m)
}

func (strictJSON) Unmarshal(data []byte, message any) error {
	m, ok := message.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto.Message", message)
	}
	if err := integersOnly(data, m.ProtoReflect().Descriptor()); err != nil {
		return err
	}
	data, err := rfc3339Times(data, m.ProtoReflect().Descriptor(), 0)
	if err != nil {
		return err
	}
	if _, ok := m.(*surgev1.PurchaseRequest); ok {
		if err := quantityGiven(data); err != nil {
			return err
		}
	}
	return protojson.Unmarshal(data, m)
}

// integersOnly refuses an integer field's value written with a fraction
// or an exponent (2.0, 2e0, "2.0"), which protojson reads as the integer
// it equals but the HTTP API refuses ("must be an integer"): the same
// text must not buy over Connect what HTTP refuses. The decimal string
// ("2") proto3 JSON writes int64 as stays accepted. Malformed JSON, and
// names the message lacks, are left to protojson.
func integersOnly(data []byte, md protoreflect.MessageDescriptor) error {
	if !numberTail(data) {
		return nil // a purchase's usual body: nothing to look at
	}
	return eachSingular(data, md, func(name string, f protoreflect.FieldDescriptor, v jsontext.Value) error {
		switch f.Kind() {
		case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
			protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind, protoreflect.Uint32Kind, protoreflect.Uint64Kind,
			protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
			text := []byte(v)
			if v.Kind() == '"' {
				// As protojson reads it: its escapes decoded ("2\u00650" is "2e0").
				var str string
				if json.Unmarshal(v, &str) != nil {
					return nil
				}
				text = []byte(str)
			}
			if bytes.ContainsAny(text, ".eE") {
				return fmt.Errorf("field %q must be an integer, without a fraction or an exponent", name)
			}
		case protoreflect.MessageKind:
			if f.Message().FullName() != timestampName && v.Kind() == '{' {
				return integersOnly(v, f.Message())
			}
		}
		return nil
	})
}

// eachSingular calls fn with each member of the JSON object data that
// names a field of md, by its JSON or its proto name, that is neither a
// list nor a map; it stops at fn's first error. Malformed JSON, and names
// md lacks, are left to protojson.
func eachSingular(data []byte, md protoreflect.MessageDescriptor, fn func(name string, f protoreflect.FieldDescriptor, v jsontext.Value) error) error {
	var members map[string]jsontext.Value
	if json.Unmarshal(data, &members) != nil {
		return nil
	}
	for name, v := range members {
		f := md.Fields().ByJSONName(name)
		if f == nil {
			f = md.Fields().ByTextName(name)
		}
		if f == nil || f.IsList() || f.IsMap() {
			continue
		}
		if err := fn(name, f, v); err != nil {
			return err
		}
	}
	return nil
}

// timestampName is the full name of google.protobuf.Timestamp.
const timestampName = "google.protobuf.Timestamp"

// rfc3339Times refuses a google.protobuf.Timestamp written as what RFC
// 3339 does not allow: protojson reads it with time.Parse, which lets
// through an offset of +24:00 or -23:60, a comma before the fraction and
// a one-digit hour (go.dev/issue/54580), so "2031-03-14T10:00:00+24:00"
// was a sale a day early. The HTTP API refuses those times
// (api.ParseTime), and the same text must not create over Connect what
// HTTP refuses. It answers data, or a copy of it in which a time whose
// fraction of a second has more than nine digits (RFC 3339 allows any
// number) is written with nine, as time.Parse reads it: protojson refuses
// such a time, which the HTTP API, like RFC 3339, accepts. depth bounds
// the descent into nested messages (a message may hold itself).
// Malformed JSON is left to protojson.
func rfc3339Times(data []byte, md protoreflect.MessageDescriptor, depth int) ([]byte, error) {
	if depth > 8 || !holdsTime(md, depth) {
		return data, nil // a purchase: no time to look at, and no decode
	}
	var members map[string]jsontext.Value
	if json.Unmarshal(data, &members) != nil {
		return data, nil
	}
	changed := false
	for name, v := range members {
		f := md.Fields().ByJSONName(name)
		if f == nil {
			f = md.Fields().ByTextName(name)
		}
		if f == nil || f.IsList() || f.IsMap() || f.Kind() != protoreflect.MessageKind {
			continue
		}
		if f.Message().FullName() != timestampName {
			if v.Kind() == '{' {
				nv, err := rfc3339Times(v, f.Message(), depth+1)
				if err != nil {
					return nil, err
				}
				if !bytes.Equal(nv, v) {
					members[name], changed = nv, true
				}
			}
			continue
		}
		var s string
		if v.Kind() != '"' || json.Unmarshal(v, &s) != nil {
			continue // not a string: protojson refuses it
		}
		// Year 0000 is RFC 3339 but no time the API keeps (HTTP refuses
		// it too); protojson's own refusal named no field.
		t, err := api.ParseTime(s)
		if err != nil {
			return nil, fmt.Errorf("field %q must be an RFC 3339 time such as 2026-11-23T10:00:00Z", name)
		}
		if !surge.Representable(t) {
			return nil, fmt.Errorf("field %q must lie between years 0001 and 9999 in UTC", name)
		}
		if longFraction(s) {
			nv, err := json.Marshal(t.Format(time.RFC3339Nano))
			if err != nil {
				return nil, err
			}
			members[name], changed = nv, true
		}
	}
	if !changed {
		return data, nil
	}
	return json.Marshal(members)
}

// longFraction reports whether the RFC 3339 time s has a fraction of a
// second of more than nine digits.
func longFraction(s string) bool {
	const frac = len("2006-01-02T15:04:05.")
	if len(s) <= frac || s[frac-1] != '.' {
		return false
	}
	n := 0
	for n < len(s)-frac && s[frac+n] >= '0' && s[frac+n] <= '9' {
		n++
	}
	return n > 9
}

// holdsTime reports whether md has a google.protobuf.Timestamp field, in
// itself or in a message it holds (up to rfc3339Times's depth).
func holdsTime(md protoreflect.MessageDescriptor, depth int) bool {
	fields := md.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.Kind() != protoreflect.MessageKind || f.IsMap() {
			continue
		}
		if f.Message().FullName() == timestampName || (depth < 8 && holdsTime(f.Message(), depth+1)) {
			return true
		}
	}
	return false
}

// quantityGiven refuses a purchase's quantity written as 0 or null (0,
// -0, "0", null), which protojson reads as the field's zero value, an
// absent quantity: one unit. The HTTP API refuses the same body 400
// ("quantity must be a positive integer"); only an absent quantity means
// 1 there. Binary proto cannot tell 0 from absent, and means 1.
func quantityGiven(data []byte) error {
	if !zeroOrNull(data) {
		return nil // a purchase's usual body ({"quantity":2}): nothing to look at
	}
	var members map[string]jsontext.Value
	if json.Unmarshal(data, &members) != nil {
		return nil // malformed or a name twice: protojson refuses it
	}
	v, ok := members["quantity"]
	if !ok {
		return nil
	}
	text := string(v)
	switch v.Kind() {
	case 'n':
		return errQuantity
	case '"':
		if json.Unmarshal(v, &text) != nil {
			return nil
		}
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil && n == 0 {
		return errQuantity
	}
	return nil
}

var errQuantity = errors.New("quantity must be a positive integer")

// zeroOrNull reports whether data may hold a value written 0 or null:
// "null", an escape, or a 0 that is not part of a longer number (0, -0,
// "0"). A quantity of 2 or 10 does not, so a usual purchase body skips
// quantityGiven's decode (it would double the cost of reading one).
func zeroOrNull(data []byte) bool {
	if bytes.Contains(data, []byte("null")) || bytes.Contains(data, []byte(`\u`)) {
		return true
	}
	digit := func(i int) bool { return i >= 0 && i < len(data) && data[i] >= '0' && data[i] <= '9' }
	for i, c := range data {
		if c == '0' && !digit(i-1) && !digit(i+1) {
			return true
		}
	}
	return false
}

// numberTail reports whether data holds a fraction, an exponent or an
// escape right after a digit: every integer written with a fraction or
// an exponent does ("2.0", "2e0", "2\u00650": an escaped digit ends in a
// digit too), while names such as "sale_id" do not, so most bodies skip
// the full check.
func numberTail(data []byte) bool {
	for i := 1; i < len(data); i++ {
		switch data[i] {
		case '.', 'e', 'E', '\\':
			if c := data[i-1]; c >= '0' && c <= '9' {
				return true
			}
		}
	}
	return false
}

// boundedGzip replaces connect-go's gzip decompressor, which, once a
// message inflates past the read bound, inflates the rest of it anyway
// to report its size: a 64 KiB body of zeros is 64 MiB of work, a
// thousand times what it sent. This one ends the message one byte past
// bound, enough for connect-go to refuse it (RESOURCE_EXHAUSTED,
// too_large) and no more.
func boundedGzip(bound int64) connect.HandlerOption {
	return connect.WithCompression("gzip",
		func() connect.Decompressor { return &boundedReader{limit: bound + 1} },
		func() connect.Compressor { return gzip.NewWriter(io.Discard) })
}

// boundedReader is a gzip.Reader that reads at most limit bytes of a
// message, then reports its end.
type boundedReader struct {
	gz    gzip.Reader
	limit int64
	n     int64
}

func (r *boundedReader) Read(p []byte) (int, error) {
	if r.n >= r.limit {
		return 0, io.EOF
	}
	if int64(len(p)) > r.limit-r.n {
		p = p[:r.limit-r.n]
	}
	k, err := r.gz.Read(p)
	r.n += int64(k)
	return k, err
}

func (r *boundedReader) Reset(src io.Reader) error {
	r.n = 0
	return r.gz.Reset(src)
}

func (r *boundedReader) Close() error { return r.gz.Close() }
