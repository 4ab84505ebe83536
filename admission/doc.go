// Package admission provides the mechanisms that decide, before any real
// work, whether a request gets in: keyed token buckets (Keyed) that keep
// one client address, buyer or sale from taking more than its share,
// client-IP resolution behind trusted proxies (ClientIP), CoDel queue
// management (CoDel) that keeps the wait for the store to about one batch
// under overload, and the cluster-wide rate limit (Distributed: a local
// pre-filter plus a shared state such as GCRA in Redis).
//
// The package only provides them; where each one sits in the purchase path,
// and in what order, is written down once, in docs/architecture.md, and the
// reasons and settings in docs/protection.md.
//
// Everything here is in-process state owned by the values the constructors
// return; there are no package-level variables (but constants) and no
// background goroutines except Distributed's flush loop: idle rate-limit
// buckets are dropped lazily by later calls.
package admission
