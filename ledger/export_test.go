package ledger

// Held returns the units a user holds (reserved and paid).
func (l *Sale) Held(user string) int64 { return l.held[user] }
