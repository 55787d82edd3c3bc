package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramAccuracy checks every reported quantile against the exact
// one, within 1% relative error, over several distributions and ranges.
func TestHistogramAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() uint64{
		"uniform-small": func() uint64 { return uint64(rng.IntN(300)) },
		"uniform-wide":  func() uint64 { return uint64(rng.IntN(10_000_000)) },
		"lognormal":     func() uint64 { return uint64(math.Exp(rng.NormFloat64()*1.5 + 7)) },
		"exponential":   func() uint64 { return uint64(rng.ExpFloat64() * 5000) },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			h := NewHistogram()
			vals := make([]uint64, 100_000)
			for i := range vals {
				vals[i] = gen()
				h.RecordMicros(vals[i])
			}
			slices.Sort(vals)
			s := h.Snapshot()
			if s.Count != uint64(len(vals)) || s.Max != vals[len(vals)-1] {
				t.Fatalf("count %d max %d, want %d and %d", s.Count, s.Max, len(vals), vals[len(vals)-1])
			}
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 0.9999} {
				exact := float64(vals[int(math.Ceil(q*float64(len(vals))))-1])
				got := float64(s.Quantile(q))
				if diff := math.Abs(got - exact); diff > 0.01*exact && diff > 0.5 {
					t.Errorf("q%.4f: got %.0f, exact %.0f (%.2f%% off)", q, got, exact, 100*diff/exact)
				}
			}
		})
	}
}

// TestHistogramBuckets checks that bucketOf and bucketRange agree and that
// no bucket is wider than 1/128 of its lower bound.
func TestHistogramBuckets(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 255, 256, 257, 511, 512, 1000, 65535, 1 << 20, 123456789, 1 << 40} {
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if lo > 0 && float64(hi-lo)/float64(lo) > 1.0/128 {
			t.Errorf("bucket %d = [%d, %d] is too wide", i, lo, hi)
		}
	}
	if got := bucketOf(math.MaxUint64); got != numBuckets-1 {
		t.Errorf("huge value in bucket %d, want the last", got)
	}
}

// TestHistogramMerge checks that merging the snapshots of parts gives the
// histogram of the whole, as workers' histograms are merged.
func TestHistogramMerge(t *testing.T) {
	whole := NewHistogram()
	parts := []*Histogram{NewHistogram(), NewHistogram(), NewHistogram()}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 30_000 {
		d := time.Duration(rng.ExpFloat64() * float64(3*time.Millisecond))
		whole.Record(d)
		parts[i%3].Record(d)
	}
	var snaps []*Snapshot
	for _, p := range parts {
		snaps = append(snaps, p.Snapshot())
	}
	merged, want := MergeSnapshots(snaps...), whole.Snapshot()
	if merged.Count != want.Count || merged.Sum != want.Sum || merged.Max != want.Max || !slices.Equal(merged.Buckets, want.Buckets) {
		t.Fatalf("merged histogram differs from the whole: %+v vs %+v", merged.Summarize(), want.Summarize())
	}
	if got := MergeSnapshots().Summarize(); got.Count != 0 || got.P99 != 0 {
		t.Errorf("empty merge: %+v", got)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	b.RunParallel(func(pb *testing.PB) {
		v := uint64(1)
		for pb.Next() {
			v = v*6364136223846793005 + 1442695040888963407
			h.RecordMicros(v >> 44)
		}
	})
}
