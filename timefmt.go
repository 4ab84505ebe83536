package surge

import "time"

// TimeLayout is the one textual form of an instant, wherever Surge writes
// one: the API's answers and the embedded store's columns. RFC 3339 in UTC
// with exactly three fraction digits, so that text order is time order
// (SQLite compares the columns as text).
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime spells t in TimeLayout, in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }
