package surge

import "time"

// TimeLayout is the one textual form of an instant, wherever Surge writes
// one: the API's answers and the embedded store's columns. RFC 3339 in UTC
// with exactly three fraction digits, so that text order is time order
// (SQLite compares the columns as text).
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime spells t in TimeLayout, in UTC.
func FormatTime(t time.Time) string {
	var b [len("2006-01-02T15:04:05.000Z")]byte
	return string(AppendTime(b[:0], t))
}

// AppendTime appends t as FormatTime spells it. An embedded reservation
// is spelled four times (its creation and expiry, in the answer and in
// the store's row), and time.Time.AppendFormat reads its layout afresh
// each call: 1.4 % of the server's CPU in a reserve-heavy run
// (docs/benchmarks.md).
// The fixed layout is written here digit by digit; years that need other
// than four digits go through AppendFormat, whose text FuzzAppendTime
// compares this with.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	b = append(b, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-')
	b = appendTwo(b, int(month), '-')
	b = appendTwo(b, day, 'T')
	b = appendTwo(b, hour, ':')
	b = appendTwo(b, minute, ':')
	b = appendTwo(b, sec, '.')
	return append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// appendTwo appends v (0-99) in two digits, then sep.
func appendTwo(b []byte, v int, sep byte) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10), sep)
}
