// Command tokens prints one HS256 buyer JWT per line, each for a distinct
// buyer (sub = PREFIX + n), for load generators that cannot sign (wrk's
// Lua): bench/jwt.sh feeds them to bench/jwt.lua.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func main() {
	n := flag.Int("n", 10000, "number of buyers (one token each)")
	secret := flag.String("secret", "", "HS256 secret of the server's --jwt-secret")
	prefix := flag.String("prefix", "buyer-", "buyer id prefix")
	ttl := flag.Duration("ttl", time.Hour, "lifetime of each token")
	flag.Parse()
	if *secret == "" {
		log.Fatal("tokens: --secret is required")
	}
	out := bufio.NewWriter(os.Stdout)
	now := time.Now()
	for i := range *n {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
			Subject:   fmt.Sprintf("%s%d", *prefix, i),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(*ttl)),
		}).SignedString([]byte(*secret))
		if err != nil {
			log.Fatalf("tokens: %v", err)
		}
		fmt.Fprintln(out, tok)
	}
	if err := out.Flush(); err != nil {
		log.Fatalf("tokens: %v", err)
	}
}
