package rpc

import (
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
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
	return protojson.Unmarshal(data, m)
}
