package main

import (
	"strings"
	"testing"
)

// TestMaskedNATSCredentials: --print-config masks "the passwords in store
// URLs and connection strings" (docs/configuration.md). NATS URLs carry
// credentials in two more shapes than user:password: a token alone as the
// user part (nats://<token>@host, which nats.go sends as the auth token),
// and a comma-separated list of servers.
func TestMaskedNATSCredentials(t *testing.T) {
	for _, in := range []string{
		"nats://s3cr3tT0ken@127.0.0.1:4222",
		"nats://bob:s3cr3tT0ken@10.0.0.1:4222,nats://bob:s3cr3tT0ken@10.0.0.2:4222",
	} {
		if got := masked("nats-url", in); strings.Contains(got, "s3cr3tT0ken") {
			t.Errorf("masked(nats-url, %q) = %q: the credential is printed", in, got)
		}
	}
}
