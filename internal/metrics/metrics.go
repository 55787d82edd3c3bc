// Package metrics defines Parley's Prometheus collectors in one place, on a
// registry that is injected (never the global one). It implements
// chat.Metrics for the service's hot path and is used by the gateway.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector.
type Metrics struct {
	Connections      prometheus.Gauge
	ConnectionsTotal prometheus.Counter
	FramesIn         *prometheus.CounterVec // by frame type
	FramesOut        prometheus.Counter
	MessagesIn       prometheus.Counter // send_message accepted and stored (not duplicates)
	Duplicates       prometheus.Counter
	MessagesOut      prometheus.Counter     // new_message frames queued to sockets
	Errors           *prometheus.CounterVec // error frames by status
	AckLatency       prometheus.Histogram
	CommitLatency    prometheus.Histogram
	CommitBatchSize  prometheus.Histogram
	CommitFailures   prometheus.Counter
	BusPublished     prometheus.Counter
	BusFailures      prometheus.Counter
	RegistryErrors   prometheus.Counter     // session registry writes that failed (cluster)
	Reorder          *prometheus.CounterVec // live messages put back in seq order, by outcome (cluster)
	UploadsForwarded prometheus.Counter     // resumable-upload requests forwarded to the node holding the upload
	FanoutPublishes  *prometheus.CounterVec // bus publishes that delivered events, by route (direct, channel)
	FanoutMessages   *prometheus.CounterVec // new messages delivered, by route
	ChannelEvents    prometheus.Counter     // fan-out-on-read events this node forwarded
	ChannelLoads     prometheus.Counter     // member sets this node loaded from the store
	ChannelDropped   prometheus.Counter     // fan-out-on-read events this node could not forward
	SlowClosed       prometheus.Counter
	HTTPRequests     *prometheus.CounterVec // by status class
}

// New registers the collectors on reg (and Go/process collectors).
func New(reg prometheus.Registerer) *Metrics {
	latency := prometheus.ExponentialBuckets(0.0001, 2, 16) // 0.1 ms .. 3.3 s
	m := &Metrics{
		Connections:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_connections", Help: "Open WebSocket connections."}),
		ConnectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_connections_total", Help: "WebSocket connections accepted."}),
		FramesIn:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_frames_in_total", Help: "Client frames received, by type."}, []string{"type"}),
		FramesOut:        prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_frames_out_total", Help: "Frames written to sockets."}),
		MessagesIn:       prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_messages_in_total", Help: "Messages stored and acked (duplicates excluded)."}),
		Duplicates:       prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_messages_duplicate_total", Help: "Repeated client message ids answered with the original ack."}),
		MessagesOut:      prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_messages_out_total", Help: "new_message frames queued to devices (live and sync)."}),
		Errors:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_error_frames_total", Help: "error frames sent, by status."}, []string{"status"}),
		AckLatency:       prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_ack_latency_seconds", Help: "send_message received to ack queued.", Buckets: latency}),
		CommitLatency:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_store_commit_seconds", Help: "Duration of one group commit.", Buckets: latency}),
		CommitBatchSize:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_store_commit_batch_size", Help: "Messages per group commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		CommitFailures:   prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_store_commit_failures_total", Help: "Group commits that failed (messages not acked)."}),
		BusPublished:     prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_bus_published_total", Help: "Events published on the bus."}),
		BusFailures:      prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_bus_publish_failures_total", Help: "Bus publishes that failed."}),
		UploadsForwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_uploads_forwarded_total", Help: "Resumable-upload requests forwarded to the node holding the upload."}),
		Reorder: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_reorder_messages_total",
			Help: "Live messages from other nodes put back in seq order: held (overtook a missing seq), filled (the missing seq read from the store after the hold), released (handed on with a seq still missing; sync repairs it)."}, []string{"outcome"}),
		RegistryErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_session_registry_errors_total", Help: "Writes to the cluster's session registry that failed (repaired by the next refresh or the TTL)."}),
		FanoutPublishes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_fanout_publishes_total",
			Help: "Bus publishes that delivered events to members, by route: direct (one per member, on user topics) or channel (one per event, fan-out-on-read)."}, []string{"route"}),
		FanoutMessages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_fanout_messages_total",
			Help: "New messages delivered, by route (direct or channel)."}, []string{"route"}),
		ChannelEvents: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_channel_events_total",
			Help: "Fan-out-on-read events received by this node for its sockets."}),
		ChannelLoads: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_channel_member_loads_total",
			Help: "Member sets of fan-out-on-read conversations loaded from the store by this node (first use, or a changed membership it had not heard of)."}),
		ChannelDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_channel_dropped_total",
			Help: "Fan-out-on-read events this node did not forward (queue full or store unavailable); devices repair with sync."}),
		SlowClosed:   prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_slow_sockets_closed_total", Help: "Sockets closed (4008) because their send queue overflowed."}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_http_requests_total", Help: "REST requests by status code."}, []string{"code"}),
	}
	reg.MustRegister(m.Connections, m.ConnectionsTotal, m.FramesIn, m.FramesOut, m.MessagesIn, m.Duplicates,
		m.MessagesOut, m.Errors, m.AckLatency, m.CommitLatency, m.CommitBatchSize, m.CommitFailures,
		m.BusPublished, m.BusFailures, m.RegistryErrors, m.Reorder, m.UploadsForwarded, m.FanoutPublishes, m.FanoutMessages, m.ChannelEvents, m.ChannelLoads, m.ChannelDropped,
		m.SlowClosed, m.HTTPRequests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// CommitBatch implements chat.Metrics.
func (m *Metrics) CommitBatch(size int, took time.Duration, err error) {
	m.CommitLatency.Observe(took.Seconds())
	m.CommitBatchSize.Observe(float64(size))
	if err != nil {
		m.CommitFailures.Inc()
	}
}

// Published implements chat.Metrics.
func (m *Metrics) Published(events, failures int) {
	m.BusPublished.Add(float64(events))
	m.BusFailures.Add(float64(failures))
}

// Fanout implements chat.Metrics.
func (m *Metrics) Fanout(route string, message bool, publishes int) {
	m.FanoutPublishes.WithLabelValues(route).Add(float64(publishes))
	if message {
		m.FanoutMessages.WithLabelValues(route).Inc()
	}
}
