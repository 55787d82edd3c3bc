package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Push holds the push pipeline's collectors. It implements push.Metrics.
type Push struct {
	RecordedTotal prometheus.Counter       // notifications recorded in the outbox
	DroppedTotal  prometheus.Counter       // hand-offs dropped because the notifier's queue was full
	QueuedTotal   prometheus.Counter       // jobs queued (one per subscription: alerts and clears)
	SendsTotal    *prometheus.CounterVec   // send attempts by platform and outcome
	SendSeconds   *prometheus.HistogramVec // send latency by platform
}

// NewPush registers the push collectors on reg.
func NewPush(reg prometheus.Registerer) *Push {
	m := &Push{
		RecordedTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_push_recorded_total",
			Help: "New messages recorded in the push outbox for users with no open socket."}),
		DroppedTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_push_dropped_total",
			Help: "Committed batches or receipts not handed to the push notifier because its queue was full."}),
		QueuedTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_push_queued_total",
			Help: "Push jobs queued, one per subscription (alerts and clears)."}),
		SendsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_push_sends_total",
			Help: "Push send attempts by platform and outcome (sent, retry, gone, failed, skipped)."}, []string{"platform", "outcome"}),
		SendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_push_send_seconds",
			Help: "Duration of one push request to a push service.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"platform"}),
	}
	reg.MustRegister(m.RecordedTotal, m.DroppedTotal, m.QueuedTotal, m.SendsTotal, m.SendSeconds)
	return m
}

// Recorded implements push.Metrics.
func (m *Push) Recorded(n int) { m.RecordedTotal.Add(float64(n)) }

// Dropped implements push.Metrics.
func (m *Push) Dropped(n int) { m.DroppedTotal.Add(float64(n)) }

// Queued implements push.Metrics.
func (m *Push) Queued(n int) { m.QueuedTotal.Add(float64(n)) }

// Sent implements push.Metrics.
func (m *Push) Sent(platform, outcome string, took time.Duration) {
	m.SendsTotal.WithLabelValues(platform, outcome).Inc()
	if took > 0 {
		m.SendSeconds.WithLabelValues(platform).Observe(took.Seconds())
	}
}
