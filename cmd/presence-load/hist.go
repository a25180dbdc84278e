package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Hist is a log-linear histogram of durations in microseconds (values below 64 µs exact, above
// that 32 buckets per power of two, so every bucket is within about 3 % of its values). Thousands
// of reader goroutines add to one Hist with atomic increments, which costs far less than keeping a
// sample per delivery, and workers merge histograms by adding counts.
type Hist struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
	n      atomic.Uint64
}

const (
	histSub     = 32 // linear sub-buckets per power of two
	histBuckets = 64 + 40*histSub
)

func histIndex(us uint64) int {
	if us < 64 {
		return int(us)
	}
	shift := bits.Len64(us) - 6 // top is in [32, 64)
	top := us >> shift
	i := 64 + (shift-1)*histSub + int(top-32)
	return min(i, histBuckets-1)
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	shift := (i-64)/histSub + 1
	top := uint64((i-64)%histSub + 32)
	return top<<shift + (1<<shift)/2
}

// Add records one duration; negative ones count as zero.
func (h *Hist) Add(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[histIndex(uint64(us))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// HistSnap is a histogram in transferable form: sparse bucket counts and the exact maximum.
type HistSnap struct {
	Buckets map[int]uint64 `json:"buckets,omitempty"`
	MaxUS   int64          `json:"max_us"`
	N       uint64         `json:"n"`
}

// Snap copies the counts.
func (h *Hist) Snap() HistSnap {
	s := HistSnap{Buckets: map[int]uint64{}, MaxUS: h.max.Load(), N: h.n.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			s.Buckets[i] = c
		}
	}
	return s
}

// Merge adds o into s.
func (s *HistSnap) Merge(o HistSnap) {
	if s.Buckets == nil {
		s.Buckets = map[int]uint64{}
	}
	for i, c := range o.Buckets {
		s.Buckets[i] += c
	}
	s.N += o.N
	s.MaxUS = max(s.MaxUS, o.MaxUS)
}

// Quantile returns the q-quantile (0 < q ≤ 1) in milliseconds, 0 for an empty histogram.
func (s HistSnap) Quantile(q float64) float64 {
	var total uint64
	for _, c := range s.Buckets {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range histBuckets {
		seen += s.Buckets[i]
		if seen >= rank {
			return float64(min(int64(histValue(i)), s.MaxUS)) / 1000
		}
	}
	return float64(s.MaxUS) / 1000
}

// Latency is the summary of a histogram as reported.
type Latency struct {
	N     uint64  `json:"n"`
	P50ms float64 `json:"p50_ms"`
	P90ms float64 `json:"p90_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

// Summary computes the reported percentiles.
func (s HistSnap) Summary() Latency {
	return Latency{N: s.N, P50ms: s.Quantile(0.50), P90ms: s.Quantile(0.90), P99ms: s.Quantile(0.99),
		MaxMS: float64(s.MaxUS) / 1000}
}
