// Package admission decides, before any real work, whether a request gets
// in: keyed rate limits that keep one client, buyer or sale from taking
// more than its share, and an adaptive load shedder that keeps the number
// of purchases waiting on the store near what the store can commit.
//
// Where each mechanism sits in the request path:
//
//	request ─▶ Limits: IP (Keyed.AllowAddr of ClientIP), then buyer, then sale
//	   │          refused ⇒ 429 with Retry-After; costs a map lookup, no I/O
//	   ▼
//	decode, authenticate, validate
//	   ▼
//	engine fast path (sold out, not started, ended) ─▶ answered here, never shed
//	   ▼
//	Shedder.Acquire ─▶ refused ⇒ 503 overloaded with Retry-After
//	   ▼
//	per-sale inbox ─▶ owner batch ─▶ Store.Reserve ─▶ release(latency, dropped)
//
// Rate limits come first because they are the cheapest answer and because
// their job is fairness between clients, which only works if an abusive
// client is turned away before it costs anything (parsing, a JWT check, a
// slot in a queue). They are not a capacity control: their rates describe
// what one client may reasonably do, not what the server can take.
//
// The shedder is the capacity control, and it guards only requests that
// would queue for the store. A sold-out or not-yet-started purchase is
// answered by the engine from atomics in well under a microsecond; shedding
// it would turn a cheap, correct 409 into a 503 that invites a retry, and
// its latency says nothing about the store. The shedder learns the store's
// no-queue latency and admits as many concurrent purchases as keep the
// observed latency near it, so it needs no threshold tuned to one machine's
// disk.
//
// Everything here is in-process state owned by the values the constructors
// return; there are no package-level variables and no background
// goroutines: idle rate-limit buckets are dropped lazily by later calls.
package admission
