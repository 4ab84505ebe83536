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
	// Ended: the sale's end had come by the clock of the node that last
	// changed it (its end set to that change's instant or before, as an
	// operator's end "now" does, or a change made once it had ended).
	// Every batch decided from this state is refused ended, whatever the
	// clock of the node deciding it reads: a node whose clock was behind
	// the one that ended the sale sold on after the end was answered.
	Ended bool
}
