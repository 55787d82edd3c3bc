// Package loadgen is Parley's load generator: it speaks the wire protocol
// with raw WebSocket frames (github.com/coder/websocket, no SDK, so that one
// socket costs little), runs named scenarios against a server, spreads the
// sockets over worker processes (no process holds more than ~9,500 sockets,
// under the 20,000 open files a process may have here), and writes a JSON
// result plus an SVG picture. cmd/parley-bench is its command line.
//
// Latencies come from timestamps the generator embeds in what it sends (the
// message_id and the content of each send_message), read back by the
// receiving socket, which shares the clock with the sender. They are
// recorded in log-linear histograms (Histogram) that are mergeable across
// workers and report p50, p90, p99, p99.9 and max.
package loadgen

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
	"sync/atomic"
	"time"
)

// Histogram layout: values are microseconds. Values below 2^(subBits+1) have
// one bucket each (exact); above, every power of two is split into 2^subBits
// linear sub-buckets, so a bucket is at most 1/128 of its value wide and the
// midpoint reported for it is within 0.4% of any value it holds.
const (
	subBits    = 7
	subCount   = 1 << subBits // 128 sub-buckets per power of two
	linearTop  = 2 * subCount // values below this are exact
	maxShift   = 34           // up to 2^(34+8) µs: about 50 days
	numBuckets = linearTop + maxShift*subCount
)

// Histogram is a fixed-size (36 KB), lock-free, log-linear latency histogram
// in the manner of HdrHistogram: Record is safe from many goroutines at once,
// relative error is under 1%, and histograms merge by adding counts.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64 // µs
	max    atomic.Uint64 // µs, exact
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

func bucketOf(us uint64) int {
	if us < linearTop {
		return int(us)
	}
	shift := bits.Len64(us) - (subBits + 1)
	if shift > maxShift {
		return numBuckets - 1
	}
	return linearTop + (shift-1)*subCount + int(us>>uint(shift)) - subCount
}

// bucketRange returns the smallest and largest value held by bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < linearTop {
		return uint64(i), uint64(i)
	}
	shift := uint((i-linearTop)/subCount + 1)
	sub := uint64((i-linearTop)%subCount + subCount)
	lo = sub << shift
	return lo, lo + (1 << shift) - 1
}

// bucketValue is the value reported for bucket i: its midpoint.
func bucketValue(i int) uint64 {
	lo, hi := bucketRange(i)
	return lo + (hi-lo)/2
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < 0 {
		us = 0
	}
	h.RecordMicros(uint64(us))
}

// RecordMicros adds one value in microseconds.
func (h *Histogram) RecordMicros(us uint64) {
	h.counts[bucketOf(us)].Add(1)
	h.total.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Snapshot returns a compact, serializable copy of the histogram.
func (h *Histogram) Snapshot() *Snapshot {
	s := &Snapshot{Max: h.max.Load(), Sum: h.sum.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), c})
			s.Count += c
		}
	}
	return s
}

// Merge adds the counts of s.
func (h *Histogram) Merge(s *Snapshot) {
	if s == nil {
		return
	}
	for _, b := range s.Buckets {
		if b[0] < numBuckets {
			h.counts[b[0]].Add(b[1])
		}
	}
	h.total.Add(s.Count)
	h.sum.Add(s.Sum)
	for {
		m := h.max.Load()
		if s.Max <= m || h.max.CompareAndSwap(m, s.Max) {
			return
		}
	}
}

// Reset empties the histogram. Not atomic with concurrent Records: a value
// recorded meanwhile may be half counted.
func (h *Histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.total.Store(0)
	h.sum.Store(0)
	h.max.Store(0)
}

// Snapshot is a histogram as JSON: the non-empty buckets as [index, count]
// pairs, plus exact count, sum and max (µs). Snapshots from several workers
// merge exactly.
type Snapshot struct {
	Count   uint64      `json:"count"`
	Sum     uint64      `json:"sum_us"`
	Max     uint64      `json:"max_us"`
	Buckets [][2]uint64 `json:"buckets,omitempty"`
}

// MergeSnapshots adds snapshots into a new one.
func MergeSnapshots(ss ...*Snapshot) *Snapshot {
	var h Histogram
	for _, s := range ss {
		h.Merge(s)
	}
	return h.Snapshot()
}

// Quantile returns the value (µs) at quantile q (0..1): the smallest value
// such that at least q of all values are at most it; the max for q >= 1.
func (s *Snapshot) Quantile(q float64) uint64 {
	if s == nil || s.Count == 0 {
		return 0
	}
	if q >= 1 {
		return s.Max
	}
	rank := uint64(math.Ceil(q * float64(s.Count)))
	rank = max(rank, 1)
	var seen uint64
	for _, b := range s.Buckets {
		seen += b[1]
		if seen >= rank {
			return min(bucketValue(int(b[0])), s.Max)
		}
	}
	return s.Max
}

// Mean returns the mean in µs.
func (s *Snapshot) Mean() float64 {
	if s == nil || s.Count == 0 {
		return 0
	}
	return float64(s.Sum) / float64(s.Count)
}

// Summary is the figures reported for a histogram, in milliseconds.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize computes the reported percentiles.
func (s *Snapshot) Summarize() Summary {
	ms := func(us uint64) float64 { return math.Round(float64(us)) / 1000 }
	return Summary{
		Count: s.countOrZero(),
		Mean:  math.Round(s.Mean()) / 1000,
		P50:   ms(s.Quantile(0.5)),
		P90:   ms(s.Quantile(0.9)),
		P99:   ms(s.Quantile(0.99)),
		P999:  ms(s.Quantile(0.999)),
		Max:   ms(s.Quantile(1)),
	}
}

func (s *Snapshot) countOrZero() uint64 {
	if s == nil {
		return 0
	}
	return s.Count
}

// String formats the summary on one line.
func (m Summary) String() string {
	if m.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s p99.9=%s max=%s", m.Count,
		fmtMS(m.P50), fmtMS(m.P90), fmtMS(m.P99), fmtMS(m.P999), fmtMS(m.Max))
}

func fmtMS(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.0fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}

// sortBuckets orders a snapshot's buckets by index (after hand assembly).
func (s *Snapshot) sortBuckets() {
	sort.Slice(s.Buckets, func(i, j int) bool { return s.Buckets[i][0] < s.Buckets[j][0] })
}
