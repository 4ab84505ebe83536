package bench

import (
	_ "embed"
	"math"
	"strconv"
)

// svgChart is an SVG chart with its geometry computed: the template only
// draws what is here.
type svgChart struct {
	Title          string
	W, H           float64
	Plot           svgBox
	XLabel, YLabel string
	XTicks, YTicks []svgTick
	Rects          []svgRect
	Lines          []svgLine
	Dots           []svgDot
	Texts          []svgText
	Legend         []svgLegend
	Empty          string // shown in the middle of the plot when there is no data
	EmptyX, EmptyY float64
}

type svgBox struct{ X, Y, W, H float64 }

// XAxisY is where the x axis runs.
func (c svgChart) XAxisY() float64 { return c.Plot.Y + c.Plot.H }

// XAxisEnd is the right end of the x axis.
func (c svgChart) XAxisEnd() float64 { return c.Plot.X + c.Plot.W }

// XLabelX and XLabelY place the x axis title under the tick labels.
func (c svgChart) XLabelX() float64 { return svgRound(c.Plot.X + c.Plot.W/2) }

// XLabelY: see XLabelX.
func (c svgChart) XLabelY() float64 { return c.Plot.Y + c.Plot.H + 42 }

// svgTick is a grid line from (X1,Y1) to (X2,Y2) and its label at (LX,LY).
type svgTick struct {
	X1, Y1, X2, Y2 float64
	LX, LY         float64
	Label          string
}

// MarkEnd is the bottom of an x tick mark.
func (t svgTick) MarkEnd() float64 { return t.Y2 + 5 }

type svgRect struct {
	X, Y, W, H float64
	Fill, Tip  string
}

type svgLine struct {
	Points string
	Stroke string
	Width  float64
	Dash   string
}

type svgDot struct {
	X, Y, R   float64
	Fill, Tip string
}

type svgText struct {
	X, Y   float64
	Text   string
	Anchor string
	Class  string
}

type svgLegend struct {
	X, Y        float64
	Color, Text string
	Line        bool // a line sample instead of a square
	Dash        string
}

// SampleEnd, SquareY and TextX place a legend item's sample and text.
func (l svgLegend) SampleEnd() float64 { return l.X + 22 }

// SquareY: see SampleEnd.
func (l svgLegend) SquareY() float64 { return l.Y - 6 }

// TextX: see SampleEnd.
func (l svgLegend) TextX() float64 { return l.X + 28 }

// Chart frame: the SVG is svgW wide and scales with the page.
const (
	svgW            = 1040.0
	svgH            = 330.0
	svgMarginLeft   = 70.0
	svgMarginRight  = 20.0
	svgMarginTop    = 44.0
	svgMarginBottom = 50.0
)

func newSVGChart(title, xLabel, yLabel string) svgChart {
	return svgChart{
		Title: title, W: svgW, H: svgH,
		Plot:   svgBox{svgMarginLeft, svgMarginTop, svgW - svgMarginLeft - svgMarginRight, svgH - svgMarginTop - svgMarginBottom},
		XLabel: xLabel, YLabel: yLabel,
	}
}

// svgRound rounds a coordinate to 0.1 px, and NaN or infinities to 0.
func svgRound(v float64) float64 { return math.Round(finiteOr0(v)*10) / 10 }

// legend lays items out right-aligned above the plot. Widths are estimated
// from the label length (the page uses a sans-serif of about 7 px per
// character at 13 px).
func (c *svgChart) legend(items ...svgLegend) {
	const sample, gap, charW = 22.0, 22.0, 6.6
	width := 0.0
	for _, it := range items {
		width += sample + 6 + charW*float64(len([]rune(it.Text))) + gap
	}
	x := c.Plot.X + c.Plot.W - width + gap
	for _, it := range items {
		it.X, it.Y = svgRound(x), 18
		c.Legend = append(c.Legend, it)
		x += sample + 6 + charW*float64(len([]rune(it.Text))) + gap
	}
}

func (c *svgChart) empty(msg string) {
	c.Empty = msg
	c.EmptyX = svgRound(c.Plot.X + c.Plot.W/2)
	c.EmptyY = svgRound(c.Plot.Y + c.Plot.H/2)
}

// svgTimeAxis maps seconds of the run to x over [first, last+1) of the
// seconds present, and sets the x ticks.
type svgTimeAxis struct {
	from, to float64
	plot     svgBox
}

func newSVGTimeAxis(c *svgChart, secs []SecondStats) svgTimeAxis {
	a := svgTimeAxis{from: 0, to: 1, plot: c.Plot}
	if len(secs) > 0 {
		lo, hi := secs[0].Second, secs[0].Second
		for _, s := range secs {
			lo, hi = min(lo, s.Second), max(hi, s.Second)
		}
		a.from, a.to = float64(lo), float64(hi+1)
	}
	step := svgTimeStep(a.to - a.from)
	for t := math.Ceil(a.from/step) * step; t <= a.to+1e-9; t += step {
		x := svgRound(a.x(t))
		c.XTicks = append(c.XTicks, svgTick{
			X1: x, Y1: c.Plot.Y, X2: x, Y2: c.Plot.Y + c.Plot.H,
			LX: x, LY: c.Plot.Y + c.Plot.H + 9,
			Label: strconv.FormatFloat(t, 'f', -1, 64),
		})
	}
	return a
}

func (a svgTimeAxis) x(t float64) float64 {
	return a.plot.X + (t-a.from)/(a.to-a.from)*a.plot.W
}

// svgTimeStep picks a tick step in seconds giving at most about 12 ticks.
func svgTimeStep(span float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200} {
		if span/s <= 12 {
			return s
		}
	}
	return math.Ceil(span/12/3600) * 3600
}

// svgNiceStep is a 1-2-5 step that divides [0, top] into at most n parts.
func svgNiceStep(top float64, n int) float64 {
	if !(top > 0) || math.IsInf(top, 0) {
		return 1
	}
	raw := top / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// svgTickLabel formats an axis value: digit grouping, decimals only if needed.
func svgTickLabel(v float64) string {
	if v >= 1000 && v == math.Trunc(v) {
		return showInt(int64(v))
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// linearY sets linear y ticks over [0, top] and returns the mapping.
func (c *svgChart) linearY(top float64, integer bool) func(float64) float64 {
	top = finiteOr0(top)
	if top <= 0 {
		top = 1
	}
	step := svgNiceStep(top, 5)
	if integer && step < 1 {
		step = 1
	}
	top = math.Ceil(top/step-1e-9) * step
	y := func(v float64) float64 { return c.Plot.Y + c.Plot.H - finiteOr0(v)/top*c.Plot.H }
	for i := 0; float64(i)*step <= top+1e-9; i++ {
		v := float64(i) * step
		c.addYTick(y(v), svgTickLabel(math.Round(v*1e6)/1e6))
	}
	return y
}

// logY sets logarithmic y ticks over the decades around [lo, hi] (lo > 0)
// and returns the mapping; values at or below the floor sit on the axis.
func (c *svgChart) logY(lo, hi float64) func(float64) float64 {
	bottom := math.Pow(10, math.Floor(math.Log10(lo)))
	top := bottom
	for top < hi {
		top *= 10
	}
	// Trim the top decade to the first 1-2-5 value above hi.
	for _, m := range []float64{0.2, 0.5} {
		if top*m >= hi && top*m > bottom {
			top *= m
			break
		}
	}
	lb, lt := math.Log10(bottom), math.Log10(top)
	y := func(v float64) float64 {
		if v < bottom {
			v = bottom
		}
		return c.Plot.Y + c.Plot.H - (math.Log10(v)-lb)/(lt-lb)*c.Plot.H
	}
	decades := lt - lb
	for d := bottom; d <= top*1.0001; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := d * m
			if v > top*1.0001 || (m != 1 && decades > 4) {
				continue
			}
			c.addYTick(y(v), svgTickLabel(svgRoundSig(v)))
		}
	}
	return y
}

// svgRoundSig removes floating-point noise from a 1-2-5 tick value.
func svgRoundSig(v float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64)
	return f
}

func (c *svgChart) addYTick(y float64, text string) {
	y = svgRound(y)
	c.YTicks = append(c.YTicks, svgTick{
		X1: c.Plot.X, Y1: y, X2: c.Plot.X + c.Plot.W, Y2: y,
		LX: c.Plot.X - 8, LY: y, Label: text,
	})
}
