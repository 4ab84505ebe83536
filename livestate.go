package surge

// LiveState is the truth a sale's live state is built from in cluster
// mode: what package postgres reads for a rebuild and package redis
// installs. It lives here so that neither of the two depends on the other.
type LiveState struct {
	Sale    Sale
	Buckets int   // the Redis slots the sale's stock is split over
	Epoch   int64 // the state's epoch; only orders decided under it insert
	Ever    int64 // units ever inserted, final for this epoch's start
	Live    []Order
	Keyed   []Order // every order with an idempotency key, as first answered
}
