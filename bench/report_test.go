package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// fakeSpikeResult is a realistic result: a 12-second spike (ramp up, hold,
// decay) of about 20k purchases against 1000 units; the stock sells out
// in the second second, a few 503s at the peak, latency rising with the
// load. pass decides whether verification held.
func fakeSpikeResult(pass bool) *Result {
	offered := []int64{300, 1100, 2100, 2700, 2700, 2700, 2700, 2600, 1900, 1100, 500, 200}
	reserved := []int64{300, 700}
	overloaded := []int64{0, 0, 0, 4, 6, 3}
	p50 := []float64{1.1, 1.6, 2.8, 4.9, 6.2, 6.0, 5.5, 4.1, 2.6, 1.7, 1.3, 1.1}
	r := &Result{
		Target:      "http://127.0.0.1:8080",
		SaleID:      "flash-2026-11",
		Mode:        OpenLoop,
		Shape:       "spike 0→2700/s in 3s, hold 5s, decay 4s",
		Users:       20600,
		Connections: 512,
		Started:     time.Date(2026, 11, 23, 3, 21, 17, 0, time.UTC),
		Elapsed:     Duration(12040 * time.Millisecond),
		Status:      map[int]int64{},
		Codes:       map[string]int64{},
		Latency:     Latency{Mean: 4.6, P50: 3.9, P90: 9.8, P99: 31.5, P999: 62.0, Max: 118.4},
		Client:      ClientOverhead{CPUSeconds: 3.1, CPUShare: 0.032, Late: 0},
	}
	for i, n := range offered {
		s := SecondStats{Second: i, Offered: n, Completed: n, P50: p50[i], P99: p50[i] * 5.5, Max: p50[i] * 14}
		if i < len(reserved) {
			s.Reserved = reserved[i]
		}
		if i < len(overloaded) {
			s.Failed = overloaded[i]
		}
		s.Rejected = n - s.Reserved - s.Failed
		r.Seconds = append(r.Seconds, s)
		r.Sent += n
		r.Completed += n
		r.Status[201] += s.Reserved
		r.Status[409] += s.Rejected
		r.Codes["reserved"] += s.Reserved
		r.Codes["sold_out"] += s.Rejected
		if s.Failed > 0 {
			r.Status[503] += s.Failed
			r.Codes["overloaded"] += s.Failed
		}
	}
	r.Latency.Count = r.Completed
	r.Throughput = float64(r.Completed) / time.Duration(r.Elapsed).Seconds()
	r.Verdict = &Verdict{
		OK: true, Stock: 1000, Remaining: 0, Orders: 1000, LiveUnits: 1000, Confirmed: 1000,
		Checks: []Check{
			{Name: "no oversell", OK: true, Detail: "1000 units in live orders, stock 1000, remaining 0"},
			{Name: "limits held", OK: true, Detail: "no buyer holds more than 1 unit (1000 buyers)"},
			{Name: "every 201 present", OK: true, Detail: "all 1000 confirmed orders are in the export, reserved or paid"},
			{Name: "idempotent retries", OK: true, Detail: "1020 retries answered with their original order"},
		},
	}
	if !pass {
		v := r.Verdict
		v.OK, v.LiveUnits, v.Orders, v.Confirmed = false, 1003, 1003, 1001
		v.Checks[0] = Check{Name: "no oversell", Detail: "1003 units in live orders, stock 1000: 3 units oversold\nfirst: o_9f2c, o_a71d, o_c03e"}
		v.Checks[2] = Check{Name: "every 201 present", Detail: "2 confirmed orders missing from the export: o_77xa, o_81qb"}
		r.Codes["transport_error"] = 7
		r.Errors = 7
		r.Sent += 7
		r.Seconds[5].Failed += 7
	}
	return r
}

func TestVerdictLine(t *testing.T) {
	pass := fakeSpikeResult(true).Verdict
	fail := fakeSpikeResult(false).Verdict
	for _, tc := range []struct {
		name string
		v    *Verdict
		want string
	}{
		{"nil", nil, "VERDICT: NOT VERIFIED"},
		{"pass", pass, "VERDICT: PASS — no oversell, limits held, every 201 present, idempotent retries (1000 confirmed, 1000 of 1000 units sold)"},
		{"fail quotes the first failed check on one line", fail,
			"VERDICT: FAIL — no oversell: 1003 units in live orders, stock 1000: 3 units oversold; first: o_9f2c, o_a71d, o_c03e"},
		{"not OK without a failed check", &Verdict{Checks: []Check{{Name: "a", OK: true}}}, "VERDICT: FAIL — verification failed"},
		{"OK but a check failed", &Verdict{OK: true, Checks: []Check{{Name: "a", OK: true}, {Name: "b", Detail: "broken"}}}, "VERDICT: FAIL — b: broken"},
		{"failed check without detail", &Verdict{Checks: []Check{{Name: "b"}}}, "VERDICT: FAIL — b"},
		{"pass without checks or figures", &Verdict{OK: true}, "VERDICT: PASS — no checks ran"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerdictLine(tc.v); got != tc.want {
				t.Errorf("VerdictLine:\n got %q\nwant %q", got, tc.want)
			}
		})
	}

	long := &Verdict{Checks: []Check{{Name: "x", Detail: strings.Repeat("violation ", 100)}}}
	got := VerdictLine(long)
	if strings.Contains(got, "\n") || len([]rune(got)) > 2*verdictDetailMax || !strings.HasSuffix(got, "…") {
		t.Errorf("long detail not cut to one line: %q", got)
	}
}

func summaryOf(r *Result) string {
	var b strings.Builder
	WriteSummary(&b, r)
	return b.String()
}

func TestWriteSummary(t *testing.T) {
	t.Run("pass", func(t *testing.T) {
		r := fakeSpikeResult(true)
		out := summaryOf(r)
		for _, want := range []string{
			`sale "flash-2026-11" at http://127.0.0.1:8080`,
			"open loop, spike 0→2700/s in 3s, hold 5s, decay 4s",
			"20,600 users, 512 connections",
			"12.040 s, started 2026-11-23 03:21:17 UTC",
			"sent        20,600", "answered 20,600",
			"1,711.0 answers/s",
			"p50 3.90 · p90 9.80 · p99 31.5 · p99.9 62.0 · max 118 ms",
			"reserved", "1,000", "4.9%",
			"sold_out", "19,587", "95.1%",
			"limit_reached", "overloaded", "transport errors",
			"201: 1,000 · 409: 19,587 · 503: 13",
			"CPU 3.10 s (3.2% of all cores), 0 late sends",
			"stock 1,000 · remaining 0 · orders 1,000 · units sold 1,000 · confirmed 1,000",
			"✓ no oversell ", "✓ every 201 present",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("summary lacks %q", want)
			}
		}
		if t.Failed() {
			t.Logf("summary:\n%s", out)
		}
		if strings.Contains(out, "✗") {
			t.Errorf("passing summary shows a failed check:\n%s", out)
		}
		if last := lastLineOf(out); last != VerdictLine(r.Verdict) || !strings.HasPrefix(last, "VERDICT: PASS — ") {
			t.Errorf("last line = %q, want the PASS verdict", last)
		}
	})
	t.Run("fail", func(t *testing.T) {
		r := fakeSpikeResult(false)
		out := summaryOf(r)
		for _, want := range []string{
			"✗ no oversell", "✓ limits held", "✗ every 201 present",
			// The second line of a detail is indented under the first.
			"\n                        first: o_9f2c",
			"transport errors", "7",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("summary lacks %q", want)
			}
		}
		if last := lastLineOf(out); !strings.HasPrefix(last, "VERDICT: FAIL — no oversell: 1003 units") {
			t.Errorf("last line = %q, want the FAIL verdict", last)
		}
	})
	t.Run("overload", func(t *testing.T) {
		r := fakeSpikeResult(true)
		r.Goodput, r.Shed, r.BadServerErrors = 1710.5, 13, 2
		r.Admitted = Latency{P50: 4, P90: 9.5, P99: 33, P999: 64, Max: 120, Count: 20587}
		r.Scheduled, r.Unsent = 25000, 4400
		out := summaryOf(r)
		for _, want := range []string{
			"goodput     1,710.5 decided/s (201 + 409) · shed 13 (429 + 503) · 5xx without Retry-After 2",
			"admitted    p50 4.00 · p90 9.50 · p99 33.0 · p99.9 64.0 · max 120 ms",
			"scheduled   25,000 purchases by the shape, 4,400 never sent",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("summary lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("not verified", func(t *testing.T) {
		r := fakeSpikeResult(true)
		r.Verdict = nil
		out := summaryOf(r)
		if !strings.Contains(out, "Verification: not run") || lastLineOf(out) != "VERDICT: NOT VERIFIED" {
			t.Errorf("summary without verdict:\n%s", out)
		}
	})
	t.Run("empty", func(t *testing.T) {
		for _, r := range []*Result{nil, {}} {
			out := summaryOf(r)
			if strings.Contains(out, "NaN") || strings.Contains(out, "Inf") || lastLineOf(out) != "VERDICT: NOT VERIFIED" {
				t.Errorf("empty summary:\n%s", out)
			}
		}
	})
}

func lastLineOf(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestWriteJSONRoundTrip(t *testing.T) {
	r := fakeSpikeResult(false)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\n  \"target\": \"http://127.0.0.1:8080\",\n") {
		t.Errorf("JSON not indented as expected:\n%.300s", buf.String())
	}
	if !strings.Contains(buf.String(), `"elapsed": 12.040`) {
		t.Errorf("elapsed not in seconds:\n%.600s", buf.String())
	}

	var back Result
	err := json.Unmarshal(buf.Bytes(), &back)
	// Duration marshals as seconds; until it can unmarshal them too, the
	// decoder reports elapsed (and only elapsed) and fills everything else.
	if _, ok := any(&back.Elapsed).(json.Unmarshaler); !ok {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) || typeErr.Field != "elapsed" {
			t.Fatalf("Unmarshal: %v", err)
		}
		back.Elapsed = r.Elapsed
		err = nil
	}
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !back.Started.Equal(r.Started) {
		t.Errorf("started = %v, want %v", back.Started, r.Started)
	}
	back.Started = r.Started
	want, _ := json.Marshal(r)
	got, _ := json.Marshal(&back)
	if !bytes.Equal(got, want) {
		t.Errorf("round trip changed the result:\n got %s\nwant %s", got, want)
	}
	if back.Verdict == nil || back.Verdict.LiveUnits != 1003 || back.Status[503] != 13 || back.Codes["sold_out"] != r.Codes["sold_out"] ||
		len(back.Seconds) != 12 || back.Latency.P99 != 31.5 {
		t.Errorf("figures lost in the round trip: %+v", back)
	}
}

func renderHTMLReport(t *testing.T, r *Result) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatalf("WriteHTML: %v", err)
	}
	return buf.String()
}

// checkHTMLReport checks that page is well formed (every element closed, in
// order: the template writes void elements as <x/>), self-contained and
// free of NaN. target is the run's target URL, the one http:// the page
// may show as text.
func checkHTMLReport(t *testing.T, page, target string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	var open []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("HTML not well formed: %v (open: %v)", err, open)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			open = append(open, tok.Name.Local)
			switch tok.Name.Local {
			case "script", "link", "img", "iframe", "object", "embed", "image", "use", "foreignObject", "a":
				t.Errorf("page has a <%s> element", tok.Name.Local)
			}
			for _, a := range tok.Attr {
				name := strings.ToLower(a.Name.Local)
				if strings.HasPrefix(name, "on") || name == "src" || name == "href" || name == "srcset" ||
					strings.Contains(a.Value, "url(") {
					t.Errorf("<%s %s=%q>", tok.Name.Local, a.Name.Local, a.Value)
				}
			}
		case xml.EndElement:
			open = open[:len(open)-1]
		case xml.CharData:
			if len(open) > 0 && open[len(open)-1] == "style" && (bytes.Contains(tok, []byte("url(")) || bytes.Contains(tok, []byte("@import"))) {
				t.Errorf("style sheet loads a resource")
			}
		}
	}
	if len(open) != 0 {
		t.Errorf("elements left open: %v", open)
	}
	for _, bad := range []string{"NaN", "Inf", "<script", "<img", "<link"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	rest := page
	if target != "" {
		rest = strings.ReplaceAll(page, target, "")
	}
	if strings.Contains(rest, "http://") || strings.Contains(rest, "https://") {
		i := max(strings.Index(rest, "http://"), strings.Index(rest, "https://"))
		t.Errorf("page refers to the network: …%s…", rest[max(0, i-80):min(len(rest), i+80)])
	}
	for _, want := range []string{"<svg", "</svg>", "<title>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestWriteHTML(t *testing.T) {
	t.Run("pass", func(t *testing.T) {
		r := fakeSpikeResult(true)
		page := renderHTMLReport(t, r)
		checkHTMLReport(t, page, r.Target)
		for _, want := range []string{
			`class="verdict pass"`, ">PASS<", "flash-2026-11",
			"Throughput per second", "Latency per second", "Outcomes", "Verification",
			"reserved (201)", "rejected (409)", "offered", "p50", "p99", "max",
			"latency, ms (log scale)", "seconds since start", "requests / s",
			"1,711.0", "31.5", "19,587", "no oversell", "limits held",
		} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if n := strings.Count(page, "<polyline"); n < 4 { // offered, p50, p99, max
			t.Errorf("%d polylines, want the offered load and three latency series", n)
		}
	})
	t.Run("fail", func(t *testing.T) {
		r := fakeSpikeResult(false)
		page := renderHTMLReport(t, r)
		checkHTMLReport(t, page, r.Target)
		for _, want := range []string{`class="verdict fail"`, ">FAIL<", `<tr class="bad">`, "✗", "3 units oversold"} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})
	t.Run("not verified", func(t *testing.T) {
		r := fakeSpikeResult(true)
		r.Verdict = nil
		page := renderHTMLReport(t, r)
		checkHTMLReport(t, page, r.Target)
		if !strings.Contains(page, `class="verdict none"`) || !strings.Contains(page, "NOT VERIFIED") {
			t.Errorf("page without verdict not marked NOT VERIFIED")
		}
	})
	t.Run("hostile strings are escaped", func(t *testing.T) {
		r := fakeSpikeResult(false)
		r.SaleID = `<script>alert("sale")</script>`
		r.Shape = `"><img src=x onerror=alert(1)>`
		r.Codes[`<b>code</b>`] = 3
		r.Verdict.Checks[0].Name = `<i>oversell</i>`
		r.Verdict.Checks[0].Detail = `</td></tr></table><script>alert(2)</script>`
		page := renderHTMLReport(t, r)
		checkHTMLReport(t, page, r.Target)
		for _, want := range []string{"&lt;script&gt;alert(&#34;sale&#34;)&lt;/script&gt;", "&lt;b&gt;code&lt;/b&gt;", "&lt;i&gt;oversell&lt;/i&gt;"} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks escaped %q", want)
			}
		}
	})
}

func TestWriteHTMLDegenerate(t *testing.T) {
	one := fakeSpikeResult(true)
	one.Seconds = one.Seconds[3:4]
	zeros := &Result{Seconds: make([]SecondStats, 5), Verdict: &Verdict{OK: true}}
	for i := range zeros.Seconds {
		zeros.Seconds[i].Second = i
	}
	gappy := fakeSpikeResult(true)
	gappy.Seconds[4] = SecondStats{Second: 4}
	gappy.Seconds = append(gappy.Seconds[:7], gappy.Seconds[9:]...) // seconds 7 and 8 missing
	flat := fakeSpikeResult(true)
	for i := range flat.Seconds {
		flat.Seconds[i].P50, flat.Seconds[i].P99, flat.Seconds[i].Max = 2, 2, 2
	}
	for name, r := range map[string]*Result{
		"nil":           nil,
		"empty":         {},
		"one second":    one,
		"all zeros":     zeros,
		"gaps":          gappy,
		"flat latency":  flat,
		"closed loop":   {Mode: ClosedLoop, Seconds: []SecondStats{{Second: 0, Completed: 5, Reserved: 5, P50: 1, P99: 2, Max: 3}}},
		"huge latency":  {Seconds: []SecondStats{{Second: 0, P50: 0.01, P99: 5000, Max: 90000}, {Second: 1, P50: 0.02, P99: 6000, Max: 95000}}},
		"late start":    {Seconds: []SecondStats{{Second: 40, Completed: 1, Rejected: 1, P50: 1, P99: 1, Max: 1}}},
		"long run":      longRunResult(3600),
		"missing maps":  {Sent: 10, Errors: 10},
		"codes no 2xx":  {Codes: map[string]int64{"": 2, "overloaded": 3}, Status: map[int]int64{503: 3}},
		"checks absent": {Verdict: &Verdict{}},
	} {
		t.Run(name, func(t *testing.T) {
			target := ""
			if r != nil {
				target = r.Target
			}
			checkHTMLReport(t, renderHTMLReport(t, r), target)
		})
	}
}

func longRunResult(n int) *Result {
	r := &Result{Mode: ClosedLoop}
	for i := range n {
		r.Seconds = append(r.Seconds, SecondStats{Second: i, Offered: 100, Completed: 100, Rejected: 100, P50: 1 + float64(i%7), P99: 9, Max: 20})
	}
	return r
}

// TestReportScreenshot renders the PASS and FAIL reports and screenshots
// them with headless Chromium, for a person to look at. It runs only when
// SURGE_REPORT_SCREENSHOTS names a directory and chromium is installed.
func TestReportScreenshot(t *testing.T) {
	dir := os.Getenv("SURGE_REPORT_SCREENSHOTS")
	if dir == "" {
		t.Skip("set SURGE_REPORT_SCREENSHOTS=dir to screenshot the HTML reports")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed")
	}
	for name, r := range map[string]*Result{"report": fakeSpikeResult(true), "report-fail": fakeSpikeResult(false)} {
		page := filepath.Join(dir, name+".html")
		if err := os.WriteFile(page, []byte(renderHTMLReport(t, r)), 0o644); err != nil {
			t.Fatal(err)
		}
		shot := filepath.Join(dir, name+".png")
		cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu",
			"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
			"--user-data-dir="+t.TempDir(), "--screenshot="+shot, "--window-size=1280,2700", "file://"+page)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("chromium: %v\n%s", err, out)
		}
		t.Logf("%s → %s", page, shot)
	}
}

// TestShapeDelivery: when more than 5% of an open-loop run's sends left
// late, the summary and the HTML report say the shape was not delivered.
func TestShapeDelivery(t *testing.T) {
	const notDelivered = "shape not delivered"
	tests := []struct {
		name       string
		mode       Mode
		sent, late int64
		warn       string // "" when the shape was delivered
	}{
		{"on time", OpenLoop, 20_600, 0, ""},
		{"5% late is within", OpenLoop, 20_000, 1000, ""},
		{"just over 5% late", OpenLoop, 20_000, 1001, "1,001 of 20,000 sends (5.0%) left late"},
		{"most late", OpenLoop, 1000, 900, "900 of 1,000 sends (90.0%) left late"},
		{"closed loop has no shape", ClosedLoop, 1000, 900, ""},
		{"nothing sent", OpenLoop, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fakeSpikeResult(true)
			r.Mode, r.Sent, r.Client.Late = tt.mode, tt.sent, tt.late
			out := summaryOf(r)
			page := renderHTMLReport(t, r)
			checkHTMLReport(t, page, r.Target)
			if tt.warn == "" {
				if strings.Contains(out, notDelivered) || strings.Contains(page, notDelivered) {
					t.Fatalf("a delivered shape is reported as not delivered:\n%s", out)
				}
				return
			}
			for what, text := range map[string]string{"summary": out, "HTML report": page} {
				if !strings.Contains(text, notDelivered) || !strings.Contains(text, tt.warn) {
					t.Errorf("%s lacks %q and %q:\n%s", what, notDelivered, tt.warn, out)
				}
			}
		})
	}
}

// TestReservationsAndReplays: new reservations and replays of a key are
// shown apart, and so is when the sale sold out.
func TestReservationsAndReplays(t *testing.T) {
	r := fakeSpikeResult(true)
	r.Status[201] += 100
	r.Codes["replayed"] = 100
	r.SoldOutAt = Duration(1234 * time.Millisecond)
	out := summaryOf(r)
	for _, want := range []string{
		"reservations 1,000 new · 100 replays of a key (same order again) · sold out at 1.234 s",
		"  reserved ", "  replayed ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	page := renderHTMLReport(t, r)
	checkHTMLReport(t, page, r.Target)
	for _, want := range []string{"new orders (201)", "not counted: 100 replays of a key", "sold out at 1.234 s"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}

	r.SoldOutAt = 0 // never sold out
	if out := summaryOf(r); !strings.Contains(out, "reservations 1,000 new · 100 replays of a key (same order again) · no sold_out answer") {
		t.Errorf("summary of a sale that did not sell out:\n%s", out)
	}
}

// TestWriteSummaryShowsServerTextPlainly: the summary quotes text the
// server sent (an outcome's error code, an order id in a check's detail)
// and the operator's sale id. A terminal obeys the escapes in it: a
// hostile or broken server could hide the FAIL line ("\x1b[8m", conceal)
// or rewrite what came before ("\r", "\x1b[1A"). The summary shows such
// characters escaped, never raw; its own line breaks stay.
func TestWriteSummaryShowsServerTextPlainly(t *testing.T) {
	r := fakeSpikeResult(false)
	r.SaleID = "s\x1b]0;title\x07"
	r.Codes["\x1b[8mhidden"] = 3
	r.Verdict.Checks = append(r.Verdict.Checks, Check{Name: "replays consistent",
		Detail: "order o-1\r\x1b[1A\x1b[2K\u202eVERDICT: PASS\nsecond line\x1b[0m"})
	out := summaryOf(r)
	for i, c := range out {
		if c != '\n' && surge.Unshowable(c) {
			t.Fatalf("the summary holds %U at byte %d, from text the server or the operator sent: %q", c, i, out[max(i-40, 0):min(i+40, len(out))])
		}
	}
	for _, want := range []string{`\x1b[8mhidden`, `order o-1\r\x1b[1A`, "second line", "VERDICT: FAIL"} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary does not show %q:\n%s", want, out)
		}
	}
}
