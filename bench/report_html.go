package bench

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
)

// reportTemplate is the HTML report: one self-contained page, inline CSS,
// charts as inline SVG computed here.
//
//go:embed templates/report.html.tmpl
var reportTemplate string

// WriteHTML writes a self-contained HTML report of r: the verdict, key
// figures, charts of throughput, latency and outcomes (inline SVG), the
// verification checks and the run's details. It needs nothing from the
// network to display. Nothing is written if rendering fails.
func WriteHTML(w io.Writer, r *Result) error {
	if r == nil {
		r = &Result{}
	}
	t, err := template.New("report").Parse(reportTemplate)
	if err != nil {
		return fmt.Errorf("bench: HTML report template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, newReportView(r)); err != nil {
		return fmt.Errorf("bench: rendering HTML report: %w", err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("bench: writing HTML report: %w", err)
	}
	return nil
}

// Colours of the series in the charts and their legends.
const (
	svgReserved = "#2da44e"
	svgRejected = "#8c9eb5"
	svgFailed   = "#d1242f"
	svgOffered  = "#24292f"
	svgP50      = "#0969da"
	svgP99      = "#e16f24"
	svgMax      = "#8250df"
)

// reportView is what the template renders: every figure already formatted.
type reportView struct {
	SaleID, Started        string
	Subtitle               string // target, load and start, those known
	OfferedLabel           string // what the dashed line of the throughput chart is, if drawn
	Verdict                reportVerdict
	Warnings               []string // shown under the verdict
	Cards                  []reportCard
	Throughput, Latency    svgChart
	Outcomes               svgChart
	Run, Latencies, Client []reportKV
	Status                 []reportKV
	Seconds                []reportSecond
}

type reportVerdict struct {
	State  string // pass, fail, none: the CSS class
	Word   string // PASS, FAIL, NOT VERIFIED
	Reason string // the verdict line after its "VERDICT: WORD — "
	Line   string // the whole verdict line
	Tally  string // how many checks held, e.g. "2 of 4 checks failed"
	Checks []Check
	Facts  []reportKV
}

type reportCard struct {
	Label, Value, Unit, Note string
	Alert                    bool
}

type reportKV struct{ Key, Value string }

type reportSecond struct {
	Second                                      int
	Offered, Completed, Reserved, Rejected, Bad string
	P50, P99, Max                               string
}

func newReportView(r *Result) reportView {
	v := reportView{
		SaleID:  orDash(r.SaleID),
		Verdict: newReportVerdict(r.Verdict),
	}
	for _, s := range r.Seconds {
		if s.Offered > 0 {
			v.OfferedLabel = offeredLabel(r.Mode)
			break
		}
	}
	var sub []string
	if r.Target != "" {
		sub = append(sub, r.Target)
	}
	if r.Mode != "" || r.Shape != "" {
		sub = append(sub, loadText(r))
	}
	if !r.Started.IsZero() {
		v.Started = r.Started.UTC().Format("2006-01-02 15:04:05 MST")
		sub = append(sub, "started "+v.Started)
	}
	v.Subtitle = strings.Join(sub, " · ")
	v.Cards = reportCards(r)
	if warn := deliveryWarning(r); warn != "" {
		v.Warnings = append(v.Warnings, warn)
	}
	v.Throughput = throughputChart(r.Seconds, offeredLabel(r.Mode))
	v.Latency = latencyChart(r.Seconds)
	v.Outcomes = outcomeChart(r)

	v.Run = []reportKV{
		{"Target", orDash(r.Target)},
		{"Sale", orDash(r.SaleID)},
		{"Mode", loadText(r)},
		{"Users", showInt(int64(r.Users))},
		{"Connections", showInt(int64(r.Connections))},
		{"Started", orDash(v.Started)},
		{"Elapsed", elapsedText(r.Elapsed)},
		{"Sent", showInt(r.Sent)},
		{"Answered", showInt(r.Completed)},
		{"Transport errors", showInt(r.Errors)},
		{"Throughput", showRate(r.Throughput) + " answers/s"},
	}
	l := r.Latency
	v.Latencies = []reportKV{
		{"mean", showMs(l.Mean) + " ms"},
		{"p50", showMs(l.P50) + " ms"},
		{"p90", showMs(l.P90) + " ms"},
		{"p99", showMs(l.P99) + " ms"},
		{"p99.9", showMs(l.P999) + " ms"},
		{"max", showMs(l.Max) + " ms"},
		{"samples", showInt(l.Count)},
	}
	v.Client = []reportKV{
		{"CPU time", showFloat(r.Client.CPUSeconds, 2) + " s"},
		{"CPU share", showShare(r.Client.CPUShare) + " of all cores"},
		{"Late sends", showInt(r.Client.Late)},
	}
	for _, s := range statusRows(r.Status) {
		v.Status = append(v.Status, reportKV{strconv.Itoa(s.Status), showInt(s.Count)})
	}
	for _, s := range r.Seconds {
		v.Seconds = append(v.Seconds, reportSecond{
			Second:    s.Second,
			Offered:   showInt(s.Offered),
			Completed: showInt(s.Completed),
			Reserved:  showInt(s.Reserved),
			Rejected:  showInt(s.Rejected),
			Bad:       showInt(s.Failed),
			P50:       showMs(s.P50),
			P99:       showMs(s.P99),
			Max:       showMs(s.Max),
		})
	}
	return v
}

func newReportVerdict(v *Verdict) reportVerdict {
	line := VerdictLine(v)
	vv := reportVerdict{State: verdictClass(v), Line: line}
	switch vv.State {
	case "pass":
		vv.Word = "PASS"
	case "fail":
		vv.Word = "FAIL"
	default:
		vv.Word = "NOT VERIFIED"
		vv.Reason = "the run was not checked against the server's export"
	}
	if _, reason, ok := strings.Cut(line, " — "); ok {
		vv.Reason = reason
	}
	if v != nil {
		failed := 0
		for _, c := range v.Checks {
			if !c.OK {
				failed++
			}
		}
		switch {
		case len(v.Checks) == 0:
		case failed > 0:
			vv.Tally = fmt.Sprintf("%d of %d checks failed", failed, len(v.Checks))
		default:
			vv.Tally = fmt.Sprintf("all %d checks held", len(v.Checks))
		}
		vv.Checks = v.Checks
		vv.Facts = []reportKV{
			{"stock", showInt(v.Stock)},
			{"remaining", showInt(v.Remaining)},
			{"orders", showInt(v.Orders)},
			{"units sold", showInt(v.LiveUnits)},
			{"confirmed (201)", showInt(v.Confirmed)},
		}
	}
	return vv
}

func reportCards(r *Result) []reportCard {
	rows, total := outcomeRows(r)
	reserved, replayed, soldOut := rows[0].Count, rows[1].Count, rows[2].Count
	transport := rows[len(rows)-1].Count
	failed := failedAnswers(r.Status) + transport

	cards := []reportCard{
		{
			Label: "Throughput", Value: showRate(r.Throughput), Unit: "answers/s",
			Note: showInt(r.Completed) + " answered in " + elapsedText(r.Elapsed),
		},
		{
			Label: "Latency p99", Value: latencyFigure(r.Latency), Unit: "ms",
			Note: "p50 " + showMs(r.Latency.P50) + " ms · max " + showMs(r.Latency.Max) + " ms",
		},
		// Replays of a key are 201s too, but name an earlier order: they
		// are counted apart, and the note gives the units sold once
		// verified.
		{Label: "Reserved", Value: showInt(reserved), Unit: "new orders (201)", Note: "not counted: " + showInt(replayed) + " replays of a key"},
		{
			Label: "Sold out", Value: showInt(soldOut), Unit: "answers",
			Note: "409 sold_out · " + showPercent(soldOut, total) + " of outcomes",
		},
		{Label: "Errors", Value: showInt(failed), Unit: "requests", Alert: failed > 0},
	}
	if v := r.Verdict; v != nil {
		cards[2].Note += " · " + showInt(v.LiveUnits) + " of " + showInt(v.Stock) + " units sold"
		cards[2].Alert = v.LiveUnits > v.Stock
	}
	if r.SoldOutAt > 0 {
		cards[3].Note += " · sold out at " + elapsedText(r.SoldOutAt)
	}
	var parts []string
	for _, s := range statusRows(r.Status) {
		if s.Status >= 400 && s.Status != 409 && s.Count > 0 {
			parts = append(parts, showInt(s.Count)+" × "+strconv.Itoa(s.Status))
		}
	}
	if transport > 0 || len(parts) == 0 {
		parts = append(parts, showInt(transport)+" transport")
	}
	cards[4].Note = strings.Join(parts, " · ")
	return cards
}

// offeredLabel names SecondStats.Offered: the load due in an open loop,
// the requests sent in a closed one.
func offeredLabel(m Mode) string {
	if m == ClosedLoop {
		return "sent"
	}
	return "offered"
}

func throughputChart(secs []SecondStats, offeredName string) svgChart {
	c := newSVGChart("Throughput per second: reserved, rejected and failed answers", "seconds since start", "requests / s")
	ax := newSVGTimeAxis(&c, secs)
	offered := false
	top := 0.0
	for _, s := range secs {
		top = max(top, float64(s.Reserved+s.Rejected+s.Failed), float64(s.Offered))
		offered = offered || s.Offered > 0
	}
	y := c.linearY(top, true)
	items := []svgLegend{
		{Color: svgReserved, Text: "reserved (201)"},
		{Color: svgRejected, Text: "rejected (409)"},
		{Color: svgFailed, Text: "failed (other 4xx/5xx, transport)"},
	}
	if offered {
		items = append(items, svgLegend{Color: svgOffered, Text: offeredName, Line: true, Dash: "5 4"})
	}
	c.legend(items...)
	if len(secs) == 0 {
		c.empty("no per-second data")
		return c
	}

	var pts []string
	for _, s := range secs {
		x0, x1 := ax.x(float64(s.Second)), ax.x(float64(s.Second+1))
		gap := min(0.15*(x1-x0), 6)
		if x1-x0 < 3 {
			gap = 0
		}
		tip := fmt.Sprintf("%d–%d s: %s %s · %s reserved · %s rejected · %s failed",
			s.Second, s.Second+1, showInt(s.Offered), offeredName, showInt(s.Reserved), showInt(s.Rejected), showInt(s.Failed))
		base, floor := 0.0, y(0) // floor: pixel top of the stack so far
		for _, part := range []struct {
			n     int64
			color string
		}{{s.Reserved, svgReserved}, {s.Rejected, svgRejected}, {s.Failed, svgFailed}} {
			if part.n <= 0 {
				continue
			}
			base += float64(part.n)
			yBase := floor
			yTop := min(y(base), yBase-2) // a few failures among thousands stay visible
			floor = yTop
			c.Rects = append(c.Rects, svgRect{
				X: svgRound(x0 + gap/2), Y: svgRound(yTop), W: svgRound(x1 - x0 - gap), H: svgRound(yBase - yTop),
				Fill: part.color, Tip: tip,
			})
		}
		if offered {
			xm, ym := svgRound((x0+x1)/2), svgRound(y(float64(s.Offered)))
			pts = append(pts, svgPoint(xm, ym))
			if len(secs) <= 60 {
				c.Dots = append(c.Dots, svgDot{X: xm, Y: ym, R: 3, Fill: svgOffered, Tip: tip})
			}
		}
	}
	if len(pts) > 1 {
		c.Lines = append(c.Lines, svgLine{Points: strings.Join(pts, " "), Stroke: svgOffered, Width: 1.5, Dash: "5 4"})
	}
	return c
}

func svgPoint(x, y float64) string {
	return strconv.FormatFloat(x, 'f', -1, 64) + "," + strconv.FormatFloat(y, 'f', -1, 64)
}

// latencyChart draws p50, p99 and max per second. The y axis is
// logarithmic when the values span more than a factor of 30, so that p50
// stays readable next to the maximum. Seconds without a value leave a gap.
func latencyChart(secs []SecondStats) svgChart {
	c := newSVGChart("Latency per second: p50, p99 and max in milliseconds", "seconds since start", "latency, ms")
	ax := newSVGTimeAxis(&c, secs)
	lo, hi := math.Inf(1), 0.0
	for _, s := range secs {
		for _, v := range []float64{s.P50, s.P99, s.Max} {
			if v = finiteOr0(v); v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	var y func(float64) float64
	if hi > 0 && hi/lo > 30 {
		c.YLabel = "latency, ms (log scale)"
		y = c.logY(lo, hi)
	} else {
		y = c.linearY(hi, false)
	}
	c.legend(
		svgLegend{Color: svgP50, Text: "p50", Line: true},
		svgLegend{Color: svgP99, Text: "p99", Line: true},
		svgLegend{Color: svgMax, Text: "max", Line: true, Dash: "2 3"},
	)
	if hi == 0 {
		msg := "no latency recorded"
		if len(secs) == 0 {
			msg = "no per-second data"
		}
		c.empty(msg)
		return c
	}
	series := []struct {
		name, color, dash string
		width             float64
		get               func(SecondStats) float64
	}{
		{"max", svgMax, "2 3", 1.5, func(s SecondStats) float64 { return s.Max }},
		{"p99", svgP99, "", 2.5, func(s SecondStats) float64 { return s.P99 }},
		{"p50", svgP50, "", 2.5, func(s SecondStats) float64 { return s.P50 }},
	}
	for _, ser := range series {
		var run []string
		flush := func() {
			if len(run) > 1 {
				c.Lines = append(c.Lines, svgLine{Points: strings.Join(run, " "), Stroke: ser.color, Width: ser.width, Dash: ser.dash})
			}
			run = nil
		}
		prev := math.MinInt
		for _, s := range secs {
			v := finiteOr0(ser.get(s))
			if v <= 0 || s.Second != prev+1 {
				flush()
			}
			prev = s.Second
			if v <= 0 {
				continue
			}
			xm := svgRound(ax.x(float64(s.Second) + 0.5))
			ym := svgRound(y(v))
			run = append(run, svgPoint(xm, ym))
			isolated := len(run) == 1 && !secondHasValue(secs, s.Second+1, ser.get)
			if len(secs) <= 60 || isolated {
				c.Dots = append(c.Dots, svgDot{
					X: xm, Y: ym, R: 3, Fill: ser.color,
					Tip: fmt.Sprintf("%d–%d s: %s %s ms", s.Second, s.Second+1, ser.name, showMs(v)),
				})
			}
		}
		flush()
	}
	return c
}

// secondHasValue reports whether second sec is present with a positive value.
func secondHasValue(secs []SecondStats, sec int, get func(SecondStats) float64) bool {
	for _, s := range secs {
		if s.Second == sec {
			return finiteOr0(get(s)) > 0
		}
	}
	return false
}

// outcomeChart is a horizontal bar per outcome, its count and share at the
// end of the bar.
func outcomeChart(r *Result) svgChart {
	rows, total := outcomeRows(r)
	const rowH, labelW, valueW, top = 34.0, 170.0, 190.0, 12.0
	c := svgChart{
		Title: "Outcomes: answers by outcome code",
		W:     svgW,
		H:     top*2 + rowH*float64(len(rows)),
	}
	c.Plot = svgBox{labelW, top, svgW - labelW - valueW, rowH * float64(len(rows))}
	var most int64
	for _, o := range rows {
		most = max(most, o.Count)
	}
	colors := map[string]string{"ok": svgReserved, "reject": svgRejected, "fail": svgFailed}
	for i, o := range rows {
		yc := top + rowH*(float64(i)+0.5)
		c.Texts = append(c.Texts, svgText{X: labelW - 12, Y: svgRound(yc), Text: o.Label, Anchor: "end", Class: "cat"})
		w := 0.0
		if most > 0 {
			w = float64(o.Count) / float64(most) * c.Plot.W
		}
		if o.Count > 0 {
			w = max(w, 2) // visible however small
		}
		tip := fmt.Sprintf("%s: %s (%s)", o.Label, showInt(o.Count), showPercent(o.Count, total))
		c.Rects = append(c.Rects, svgRect{X: labelW, Y: svgRound(yc - rowH*0.32), W: svgRound(w), H: svgRound(rowH * 0.64), Fill: colors[o.Kind], Tip: tip})
		c.Texts = append(c.Texts, svgText{
			X: svgRound(labelW + w + 10), Y: svgRound(yc), Anchor: "start", Class: "val",
			Text: outcomeBarLabel(o.Count, total),
		})
	}
	// A baseline at zero.
	c.Lines = append(c.Lines, svgLine{
		Points: svgPoint(labelW, top-4) + " " + svgPoint(labelW, svgRound(top+rowH*float64(len(rows))+4)),
		Stroke: "#57606a", Width: 1,
	})
	return c
}

func outcomeBarLabel(n, total int64) string {
	if n == 0 {
		return "0"
	}
	return showInt(n) + "  ·  " + showPercent(n, total)
}

// latencyFigure is the p99 for the key figures, or a dash when nothing
// was measured.
func latencyFigure(l Latency) string {
	if l.Count == 0 && finiteOr0(l.P99) == 0 {
		return "—"
	}
	return showMs(l.P99)
}
