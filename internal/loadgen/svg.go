package loadgen

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The picture is hand-written SVG: a header with the figures beside their
// targets, the latency distribution and its percentile curve (HdrHistogram
// style) for the main phase, and a timeline of throughput, p99 and the
// server's CPU and memory, with the phases shaded.

var palette = []string{"#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"}

type svgDoc struct{ b strings.Builder }

func (d *svgDoc) f(format string, args ...any) {
	fmt.Fprintf(&d.b, format, args...)
	d.b.WriteByte('\n')
}

func (d *svgDoc) text(x, y float64, size int, anchor, color, s string, extra ...string) {
	d.f(`<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" fill="%s" %s>%s</text>`, x, y, size, anchor, color, strings.Join(extra, " "), html.EscapeString(s))
}

// panel is a plotting area with its scales.
type panel struct {
	x, y, w, h     float64
	x0, x1, y0, y1 float64
	logX, logY     bool
}

func (p *panel) px(v float64) float64 {
	if p.logX {
		v, p0, p1 := math.Log10(math.Max(v, 1e-9)), math.Log10(p.x0), math.Log10(p.x1)
		return p.x + (v-p0)/(p1-p0)*p.w
	}
	return p.x + (v-p.x0)/(p.x1-p.x0)*p.w
}

func (p *panel) py(v float64) float64 {
	if p.logY {
		v, p0, p1 := math.Log10(math.Max(v, 1e-9)), math.Log10(p.y0), math.Log10(p.y1)
		return p.y + p.h - (v-p0)/(p1-p0)*p.h
	}
	return p.y + p.h - (v-p.y0)/(p.y1-p.y0)*p.h
}

func (d *svgDoc) frame(p *panel, title string) {
	d.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#fafafa" stroke="#d4d4d8"/>`, p.x, p.y, p.w, p.h)
	d.text(p.x, p.y-8, 13, "start", "#18181b", title, `font-weight="600"`)
}

// niceTicks returns round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	step := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(step)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= step {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step/1e6; v += step {
		out = append(out, v)
	}
	return out
}

func fmtTick(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.4gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.4gk", v/1e3)
	case v == 0:
		return "0"
	}
	return fmt.Sprintf("%.4g", v)
}

// SVG renders the result's picture.
func (r *Result) SVG() string {
	if r.Picture.Phase == "" {
		r.Picture = defaultPicture(r.Scenario)
	}
	const width = 1000.0
	var d svgDoc
	figH := 22 + 17*float64(len(r.Figures)+len(r.Limits))
	top := 70 + figH
	height := top + 750
	d.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`, width, height, width, height)
	d.f(`<rect width="100%%" height="100%%" fill="white"/>`)
	d.text(30, 32, 20, "start", "#09090b", fmt.Sprintf("Parley benchmark: %s", r.Title), `font-weight="700"`)
	d.text(30, 52, 12, "start", "#52525b", fmt.Sprintf("target: %s", r.Target))
	d.text(30, 68, 11, "start", "#71717a", fmt.Sprintf("%s · %d CPUs %s · %s · load %s · server: %s", r.Started.Format("2006-01-02 15:04"), r.Machine.CPUs, r.Machine.CPUModel, r.Machine.GoVersion, r.Machine.LoadAvg, r.Server.Placement))
	y := 92.0
	if r.Error != "" {
		d.text(30, y, 12, "start", "#dc2626", "error: "+r.Error)
		y += 17
	}
	for _, f := range r.Figures {
		mark, color := "•", "#52525b"
		if f.Met != nil {
			mark, color = "✔", "#16a34a"
			if !*f.Met {
				mark, color = "✘", "#dc2626"
			}
		}
		d.text(40, y, 12, "middle", color, mark, `font-weight="700"`)
		d.text(55, y, 12, "start", "#18181b", f.Name)
		d.text(470, y, 12, "end", "#09090b", fmtValue(f.Value)+" "+f.Unit, `font-weight="600"`)
		rest := ""
		if f.Target != "" {
			rest = "target " + f.Target
		}
		if f.Note != "" {
			if rest != "" {
				rest += " · "
			}
			rest += f.Note
		}
		d.text(485, y, 11, "start", "#71717a", rest)
		y += 17
	}
	for _, l := range r.Limits {
		d.text(55, y, 11, "start", "#b45309", "limit: "+l)
		y += 17
	}
	hists := r.pictureHists()
	r.drawDistribution(&d, &panel{x: 70, y: top + 20, w: 390, h: 230}, hists)
	r.drawPercentiles(&d, &panel{x: 570, y: top + 20, w: 390, h: 230}, hists)
	r.drawTimeline(&d, &panel{x: 70, y: top + 330, w: 860, h: 220})
	r.drawServer(&d, &panel{x: 70, y: top + 610, w: 860, h: 110})
	d.f(`</svg>`)
	return d.b.String()
}

type namedHist struct {
	name string
	s    *Snapshot
}

func (r *Result) pictureHists() []namedHist {
	var out []namedHist
	ph := r.phase(r.Picture.Phase)
	for _, name := range r.Picture.Hists {
		if ph == nil {
			break
		}
		if s := ph.Hists[name]; s != nil && s.Count > 0 {
			out = append(out, namedHist{name, s})
		}
	}
	return out
}

func (r *Result) drawDistribution(d *svgDoc, p *panel, hs []namedHist) {
	d.frame(p, fmt.Sprintf("distribution (%s)", r.Picture.Phase))
	if len(hs) == 0 {
		d.text(p.x+p.w/2, p.y+p.h/2, 12, "middle", "#a1a1aa", "no samples")
		return
	}
	const perDecade = 16
	lo, hi := math.Inf(1), 0.0
	for _, h := range hs {
		if len(h.s.Buckets) > 0 {
			lo = math.Min(lo, math.Max(float64(bucketValue(int(h.s.Buckets[0][0])))/1000, 0.001))
		}
		hi = math.Max(hi, float64(h.s.Max)/1000)
	}
	p.logX = true
	p.x0 = math.Pow(10, math.Floor(math.Log10(lo)))
	p.x1 = math.Pow(10, math.Ceil(math.Log10(math.Max(hi, p.x0*10))))
	type series struct{ frac []float64 }
	nb := int(math.Round(math.Log10(p.x1/p.x0) * perDecade))
	all := make([]series, len(hs))
	peak := 0.0
	for i, h := range hs {
		fr := make([]float64, nb)
		for _, b := range h.s.Buckets {
			v := math.Max(float64(bucketValue(int(b[0])))/1000, p.x0)
			k := min(nb-1, int(math.Log10(v/p.x0)*perDecade))
			fr[k] += float64(b[1]) / float64(h.s.Count) * 100
		}
		for _, v := range fr {
			peak = math.Max(peak, v)
		}
		all[i] = series{fr}
	}
	p.y0, p.y1 = 0, peak*1.1
	for _, t := range niceTicks(0, p.y1, 4) {
		d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e4e4e7"/>`, p.x, p.x+p.w, p.py(t), p.py(t))
		d.text(p.x-6, p.py(t)+4, 10, "end", "#71717a", fmtTick(t)+"%")
	}
	for e := p.x0; e <= p.x1*1.0001; e *= 10 {
		d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e4e4e7"/>`, p.px(e), p.px(e), p.y, p.y+p.h)
		d.text(p.px(e), p.y+p.h+14, 10, "middle", "#71717a", fmtTick(e)+" ms")
	}
	for i, s := range all {
		color := palette[i%len(palette)]
		var pts strings.Builder
		fmt.Fprintf(&pts, "%.1f,%.1f ", p.x, p.py(0))
		for k, v := range s.frac {
			x0 := p.px(p.x0 * math.Pow(10, float64(k)/perDecade))
			x1 := p.px(p.x0 * math.Pow(10, float64(k+1)/perDecade))
			fmt.Fprintf(&pts, "%.1f,%.1f %.1f,%.1f ", x0, p.py(v), x1, p.py(v))
		}
		fmt.Fprintf(&pts, "%.1f,%.1f", p.x+p.w, p.py(0))
		d.f(`<polygon points="%s" fill="%s" fill-opacity="0.18" stroke="%s" stroke-width="1.5"/>`, pts.String(), color, color)
	}
	// Percentile markers of the first series.
	main := hs[0].s
	for j, q := range []struct {
		label string
		q     float64
	}{{"p50", 0.5}, {"p99", 0.99}, {"p99.9", 0.999}} {
		v := float64(main.Quantile(q.q)) / 1000
		x := p.px(math.Max(v, p.x0))
		d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#18181b" stroke-dasharray="3,3"/>`, x, x, p.y, p.y+p.h)
		anchor, dx := "start", 3.0
		if x > p.x+p.w*0.75 {
			anchor, dx = "end", -3
		}
		d.text(x+dx, p.y+12+float64(j)*12, 10, anchor, "#18181b", fmt.Sprintf("%s %s", q.label, fmtMS(v)))
	}
	r.legend(d, p.x+4, p.y+4, hs)
	d.text(p.x+p.w/2, p.y+p.h+30, 11, "middle", "#52525b", "latency (log scale) · share of samples")
}

// legend lists the series in a boxed column inside a panel, its top-left
// corner at (x, y).
func (r *Result) legend(d *svgDoc, x, y float64, hs []namedHist) {
	w := 0.0
	for _, h := range hs {
		w = math.Max(w, float64(len(fmt.Sprintf("%s (n=%s)", h.name, commas(int64(h.s.Count)))))*6.3+24)
	}
	d.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="white" fill-opacity="0.85" stroke="#e4e4e7"/>`, x, y, w, 8+14*float64(len(hs)))
	for i, h := range hs {
		color := palette[i%len(palette)]
		d.f(`<rect x="%.1f" y="%.1f" width="10" height="10" fill="%s"/>`, x+6, y+5+float64(i)*14, color)
		d.text(x+20, y+14+float64(i)*14, 11, "start", "#18181b", fmt.Sprintf("%s (n=%s)", h.name, commas(int64(h.s.Count))))
	}
}

func (r *Result) drawPercentiles(d *svgDoc, p *panel, hs []namedHist) {
	d.frame(p, "latency by percentile")
	if len(hs) == 0 {
		return
	}
	qs := []float64{0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1}
	p.logX, p.x0, p.x1 = true, 2, 1e5 // x = 1/(1-q)
	hi := 0.0
	for _, h := range hs {
		hi = math.Max(hi, float64(h.s.Max)/1000)
	}
	p.y0, p.y1 = 0, hi*1.08
	if p.y1 <= 0 {
		p.y1 = 1
	}
	for _, t := range niceTicks(0, p.y1, 4) {
		d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e4e4e7"/>`, p.x, p.x+p.w, p.py(t), p.py(t))
		d.text(p.x-6, p.py(t)+4, 10, "end", "#71717a", fmtTick(t)+" ms")
	}
	for _, l := range []struct {
		x float64
		s string
	}{{2, "50%"}, {10, "90%"}, {100, "99%"}, {1000, "99.9%"}, {10000, "99.99%"}, {1e5, "max"}} {
		d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e4e4e7"/>`, p.px(l.x), p.px(l.x), p.y, p.y+p.h)
		d.text(p.px(l.x), p.y+p.h+14, 10, "middle", "#71717a", l.s)
	}
	for i, h := range hs {
		color := palette[i%len(palette)]
		var pts strings.Builder
		for _, q := range qs {
			x := 1e5
			if q < 1 {
				x = 1 / (1 - q)
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", p.px(x), p.py(float64(h.s.Quantile(q))/1000))
		}
		d.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, pts.String(), color)
	}
	r.legend(d, p.x+4, p.y+4, hs)
	d.text(p.x+p.w/2, p.y+p.h+30, 11, "middle", "#52525b", "percentile (log of 1/(1-q))")
}

// phaseBands shades each phase on a timeline panel.
func (r *Result) phaseBands(d *svgDoc, p *panel) {
	for i, ph := range r.Phases {
		x0 := math.Max(p.x, p.px(ph.Start.Sub(r.Started).Seconds()))
		x1 := math.Min(p.x+p.w, p.px(ph.Start.Sub(r.Started).Seconds()+ph.Seconds))
		if x1 <= x0 {
			continue
		}
		fill := "#f4f4f5"
		if i%2 == 1 {
			fill = "#e4e4e7"
		}
		d.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.6"/>`, x0, p.y, x1-x0, p.h, fill)
		if x1-x0 > 30 {
			d.text((x0+x1)/2, p.y+p.h-4, 9, "middle", "#71717a", ph.Name)
		}
	}
}

func (r *Result) drawTimeline(d *svgDoc, p *panel) {
	d.frame(p, "timeline: throughput (left) and p99 per second (right, dashed)")
	rows := r.Timeline
	if len(rows) == 0 {
		return
	}
	p.x0, p.x1 = 0, math.Max(rows[len(rows)-1].T, 1)
	r.phaseBands(d, p)
	peak := 0.0
	for _, row := range rows {
		for _, c := range r.Picture.Rate {
			peak = math.Max(peak, float64(row.Counters[c]))
		}
	}
	p.y0, p.y1 = 0, math.Max(peak*1.1, 1)
	for _, t := range niceTicks(0, p.y1, 4) {
		d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e4e4e7"/>`, p.x, p.x+p.w, p.py(t), p.py(t))
		d.text(p.x-6, p.py(t)+4, 10, "end", "#71717a", fmtTick(t)+"/s")
	}
	for _, t := range niceTicks(0, p.x1, 10) {
		d.text(p.px(t), p.y+p.h+14, 10, "middle", "#71717a", fmtTick(t)+" s")
	}
	for i, c := range r.Picture.Rate {
		var pts strings.Builder
		for _, row := range rows {
			fmt.Fprintf(&pts, "%.1f,%.1f ", p.px(row.T), p.py(float64(row.Counters[c])))
		}
		color := palette[(i+3)%len(palette)]
		d.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"/>`, pts.String(), color)
		d.text(p.x+8, p.y+16+float64(i)*14, 11, "start", color, c+"/s")
	}
	// p99 per second of the pictured histograms, on a log right axis.
	q := panel{x: p.x, y: p.y, w: p.w, h: p.h, x0: p.x0, x1: p.x1, logY: true, y0: 0.1, y1: 10}
	for _, row := range rows {
		for _, v := range row.P99 {
			q.y1 = math.Max(q.y1, v*1.5)
		}
	}
	q.y1 = math.Pow(10, math.Ceil(math.Log10(q.y1)))
	for e := q.y0; e <= q.y1*1.0001; e *= 10 {
		d.text(p.x+p.w+6, q.py(e)+4, 10, "start", "#71717a", fmtTick(e)+" ms")
	}
	// The same colour per histogram as in the distribution panels.
	for i, n := range r.Picture.Hists {
		if n == "last" {
			continue
		}
		var pts strings.Builder
		cnt := 0
		for _, row := range rows {
			if v, ok := row.P99[n]; ok && v > 0 {
				fmt.Fprintf(&pts, "%.1f,%.1f ", q.px(row.T), q.py(math.Max(v, q.y0)))
				cnt++
			}
		}
		if cnt == 0 {
			continue
		}
		color := palette[i%len(palette)]
		d.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="1.3" stroke-dasharray="4,2"/>`, pts.String(), color)
		d.text(p.x+p.w-8, p.y+16+float64(i)*14, 11, "end", color, n+" p99")
	}
}

func (r *Result) drawServer(d *svgDoc, p *panel) {
	d.frame(p, "server CPU % of one core (orange), whole machine (grey), server RSS MB (right, dashed)")
	rows := r.Timeline
	if len(rows) == 0 || r.Server.PID == 0 {
		d.text(p.x+p.w/2, p.y+p.h/2, 12, "middle", "#a1a1aa", "server process not measured (no --server-pid)")
		return
	}
	p.x0, p.x1 = 0, math.Max(rows[len(rows)-1].T, 1)
	r.phaseBands(d, p)
	p.y0, p.y1 = 0, float64(100*r.Machine.CPUs)
	for _, t := range niceTicks(0, p.y1, 2) {
		d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e4e4e7"/>`, p.x, p.x+p.w, p.py(t), p.py(t))
		d.text(p.x-6, p.py(t)+4, 10, "end", "#71717a", fmtTick(t)+"%")
	}
	var cpu, rss, all strings.Builder
	maxRSS := 1.0
	for _, row := range rows {
		maxRSS = math.Max(maxRSS, row.RSSMB)
	}
	q := panel{x: p.x, y: p.y, w: p.w, h: p.h, x0: p.x0, x1: p.x1, y0: 0, y1: maxRSS * 1.1}
	for _, row := range rows {
		fmt.Fprintf(&cpu, "%.1f,%.1f ", p.px(row.T), p.py(math.Min(row.CPU, p.y1)))
		fmt.Fprintf(&all, "%.1f,%.1f ", p.px(row.T), p.py(math.Min(row.Machine, p.y1)))
		fmt.Fprintf(&rss, "%.1f,%.1f ", q.px(row.T), q.py(row.RSSMB))
	}
	for _, t := range niceTicks(0, q.y1, 2) {
		d.text(p.x+p.w+6, q.py(t)+4, 10, "start", "#71717a", fmtTick(t)+" MB")
	}
	d.f(`<polyline points="%s" fill="none" stroke="#a1a1aa" stroke-width="1.2"/>`, all.String())
	d.f(`<polyline points="%s" fill="none" stroke="#ea580c" stroke-width="1.5"/>`, cpu.String())
	d.f(`<polyline points="%s" fill="none" stroke="#0891b2" stroke-width="1.5" stroke-dasharray="4,2"/>`, rss.String())
}

// defaultPicture is what each scenario draws (for results read back from
// JSON written without one).
func defaultPicture(scenario string) Picture {
	switch scenario {
	case "idle":
		return Picture{Phase: "connect", Hists: []string{"connect"}, Rate: []string{"connected", "pongs"}}
	case "chat":
		return Picture{Phase: "steady", Hists: []string{"ack", "delivery"}, Rate: []string{"acked", "delivered"}}
	case "fanout":
		return Picture{Phase: "steady", Hists: []string{"last", "delivery", "ack"}, Rate: []string{"delivered"}}
	case "storm":
		return Picture{Phase: "storm", Hists: []string{"storm", "resync", "reconnect"}, Rate: []string{"connected", "synced"}}
	case "sync":
		return Picture{Phase: "steady", Hists: []string{"sync"}, Rate: []string{"synced"}}
	case "history":
		return Picture{Phase: "steady", Hists: []string{"page"}, Rate: []string{"pages"}}
	}
	return Picture{}
}
