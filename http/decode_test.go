package http

import (
	"strings"
	"testing"

	"github.com/surgehq/surge/api"
)

// TestDecodeStrictMessages pins what a client is told for each way a body
// can be refused: the field, as a dotted path, and what is wrong with it.
func TestDecodeStrictMessages(t *testing.T) {
	for _, c := range []struct {
		body string
		want string // "" accepts the body
	}{
		{`{"name":"x","stock":1}`, ""},
		{`{"name":"x","stock":1,"ends_at":null}`, ""},
		{`{"n\u0061me":"x","stock":1}`, ""}, // an escaped name is the same name
		{`{"name":"x","stock":1,"stock":2}`, `field "stock" appears more than once`},
		{`{"name":"x","stock":1,"st\u006fck":1}`, `field "stock" appears more than once`},
		{`{"name":"x","Stock":1}`, `unknown field "Stock": field names are case-sensitive, did you mean "stock"?`},
		{`{"name":"x","STOCK":1}`, `did you mean "stock"?`},
		{`{"name":"x","\u017ftoc\u212a":1}`, `field names are case-sensitive, did you mean "stock"?`},
		{`{"name":"x","colour":"red"}`, `unknown field "colour"`},
		{`{"name":"x","stock":"1"}`, `field "stock" must be an integer`},
		{`{"name":"x","stock":1.5}`, `field "stock" must be an integer`},
		{`{"name":"x","stock":9223372036854775808}`, `field "stock" must be an integer`},
		{`{"name":5,"stock":1}`, `field "name" must be a string`},
		{`{"name":"x","stock":1,"waiting_room":[]}`, `field "waiting_room" must be an object`},
		{`{"name":"x","stock":1,"waiting_room":{"order":1}}`, `field "waiting_room.order" must be a string`},
		{`{"name":"x","stock":1,"waiting_room":{"Order":"fifo"}}`, `unknown field "waiting_room.Order": field names are case-sensitive, did you mean "order"?`},
		{`{"name":"x","stock":1,"waiting_room":{"order":"fifo","order":"lottery"}}`, `field "waiting_room.order" appears more than once`},
		{`null`, `the body must be a JSON object`},
		{` null `, `the body must be a JSON object`},
		{`[]`, `the body must be a JSON object`},
		{`"x"`, `the body must be a JSON object`},
		{``, `the body is empty or truncated JSON`},
		{`{"name":"x"`, `the body is empty or truncated JSON`},
		{`{"name":"x","stock":1}{}`, `the body must hold exactly one JSON object`},
		{`{"name":"x","stock":1} x`, `the body must hold exactly one JSON object`},
		{`{name:"x"}`, `malformed JSON at byte 2: invalid character`},
		{"{\"name\":\"\xff\",\"stock\":1}", `malformed JSON at byte 9: invalid UTF-8`},
	} {
		var v api.NewSale // the body of POST /v1/sales
		err := decodeStrict([]byte(c.body), &v)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v, want accepted", c.body, err)
		case c.want != "" && err == nil:
			t.Errorf("%q: accepted, want %q", c.body, c.want)
		case c.want != "" && !strings.Contains(err.Error(), c.want):
			t.Errorf("%q: %q, want it to contain %q", c.body, err, c.want)
		}
	}
}

func TestDecodePurchase(t *testing.T) {
	for _, c := range []struct {
		body string
		q    int64
		want string
	}{
		{`{}`, 1, ""},
		{`{"quantity":2}`, 2, ""},
		{` { "quantity" : 3 } `, 3, ""},
		{`{"quant\u0069ty":2}`, 2, ""},
		{`{"quantity":-0}`, 0, ""}, // refused later as out of range
		{`{"quantity":1,"quantity":2}`, 0, `field "quantity" appears more than once`},
		{`{"quantity":2,"quantity":2}`, 0, `field "quantity" appears more than once`},
		{`{"Quantity":2}`, 0, `unknown field "Quantity": field names are case-sensitive, did you mean "quantity"?`},
		{`{"quantity":1,"QUANTITY":2}`, 0, `did you mean "quantity"?`},
		{`{"qty":1}`, 0, `unknown field "qty"`},
		{`{"quantity":null}`, 0, `quantity must be a positive integer`},
		{`{"quantity":"1"}`, 0, `quantity must be a positive integer`},
		{`{"quantity":1.0}`, 0, `quantity must be a positive integer`},
		{`{"quantity":1e0}`, 0, `quantity must be a positive integer`},
		{`{"quantity":9223372036854775808}`, 0, `quantity must be a positive integer`},
		{`{"quantity":[1]}`, 0, `quantity must be a positive integer`},
	} {
		q, err := decodePurchase([]byte(c.body))
		switch {
		case c.want == "" && (err != nil || q != c.q):
			t.Errorf("%q: %d, %v; want %d", c.body, q, err, c.q)
		case c.want != "" && err == nil:
			t.Errorf("%q: accepted (%d), want %q", c.body, q, c.want)
		case c.want != "" && !strings.Contains(err.Error(), c.want):
			t.Errorf("%q: %q, want it to contain %q", c.body, err, c.want)
		}
	}
}
