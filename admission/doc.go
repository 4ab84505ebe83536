// Package admission decides, before any real work, whether a request gets
// in: keyed rate limits that keep one client, buyer or sale from taking
// more than its share, and CoDel queue management that keeps the wait for
// the store to about one batch under overload.
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
//	CoDel.Admit ─▶ refused (overloaded, a full batch already waiting) ⇒ 503
//	   ▼
//	per-sale inbox ─▶ owner: CoDel.Begin (cutoff: what missed a batch ⇒ 503),
//	                  batch, CoDel.Taken ─▶ Store.Reserve
//
// Rate limits come first because they are the cheapest answer and because
// their job is fairness between clients, which only works if an abusive
// client is turned away before it costs anything (parsing, a JWT check, a
// slot in a queue). They are not a capacity control: their rates describe
// what one client may reasonably do, not what the server can take.
//
// CoDel is the capacity control, and it guards only requests that would
// queue for the store. A sold-out or not-yet-started purchase is answered
// by the engine from atomics in well under a microsecond; shedding it would
// turn a cheap, correct 409 into a 503 that invites a retry, and it says
// nothing about the store. CoDel measures the queue in batches: a request
// may wait for the batch ahead of it (that is group commit), not for two,
// so it needs no latency threshold tuned to one machine's disk.
//
// Shedder, an adaptive concurrency limit in the style of TCP Vegas, is kept
// for callers that want one, but surge serve no longer uses it: its
// baseline is the least latency seen, and in front of a group commit with
// a noisy fsync that reads ordinary batching as queueing, so the limit sits
// at its floor and starves the store (TestShedderStarvesGroupCommit).
//
// Everything here is in-process state owned by the values the constructors
// return; there are no package-level variables (but constants) and no
// background goroutines: idle rate-limit buckets are dropped lazily by
// later calls.
package admission
