package loadgen

// The orchestrator and its workers talk in JSON lines: the worker reads a Job
// and then Commands on stdin and writes Messages on stdout. In-process
// workers (small runs, tests) speak the same over pipes.

// Job is the first line a worker reads.
type Job struct {
	Worker int    `json:"worker"`
	URL    string `json:"url"` // http://host:port of the server (the first node)
	// URLs are every node of a cluster under test; a socket opens its
	// WebSocket at URLs[SockSpec.Node]. Empty means URL alone.
	URLs    []string   `json:"urls,omitempty"`
	Sockets []SockSpec `json:"sockets"`
	// Proto is the server's client protocol: ProtoParley ("" too) or
	// ProtoCentrifugo (the peer the pairs scenario compares against).
	Proto string `json:"proto,omitempty"`
}

// Client protocols a worker speaks.
const (
	ProtoParley     = "parley"
	ProtoCentrifugo = "centrifugo"
)

// SockSpec is one socket a worker opens: the device it logs in as, and what
// it does in the scenario.
type SockSpec struct {
	Token string `json:"t"`
	User  string `json:"u"`
	// Node is the index in Job.URLs of the node this socket connects to
	// (assigned round robin by the orchestrator).
	Node int `json:"n,omitempty"`
	// Convs are the conversations this socket posts to, in turn; empty means
	// the socket only receives.
	Convs []string `json:"c,omitempty"`
	// For Centrifugo, Token is a connection JWT, User the socket's own
	// channel (subscribed at connect) and Convs the receivers' channels.
	// Cursors are sent with sync requests (conversation id -> last seq seen).
	Cursors map[string]int64 `json:"k,omitempty"`
}

// Command operations.
const (
	OpConnect = "connect" // open every socket, wait for ready
	OpChat    = "chat"    // send at a rate to Convs; record ack and delivery latency
	OpBurst   = "burst"   // each sending socket posts Count messages per conversation, pipelined
	OpIdle    = "idle"    // hold the sockets (heartbeat pings continue)
	OpStorm   = "storm"   // drop every socket at At, reconnect with jitter, sync
	OpSync    = "sync"    // open-loop syncs at a rate over the sockets
	OpHistory = "history" // open-loop REST history pages at a rate
	OpLearn   = "learn"   // sync once to learn cursors: last_seq - Count per conversation
	OpQuit    = "quit"    // close everything and exit
)

// Command is one step of a scenario, sent to every worker.
type Command struct {
	Op         string  `json:"op"`
	Phase      string  `json:"phase"`          // name of the phase its progress belongs to
	Rate       float64 `json:"rate,omitempty"` // per second, for this worker
	DurationMS int64   `json:"duration_ms,omitempty"`
	DrainMS    int64   `json:"drain_ms,omitempty"` // wait for stragglers after the last send
	Count      int     `json:"count,omitempty"`
	Window     int     `json:"window,omitempty"`     // sends in flight per socket (burst)
	Concurrent int     `json:"concurrent,omitempty"` // dials or requests in flight
	At         int64   `json:"at,omitempty"`         // unix nanoseconds (storm)
	JitterMS   int64   `json:"jitter_ms,omitempty"`  // storm reconnect spread
	TrackLast  bool    `json:"track_last,omitempty"` // record per-message last-recipient times
	Expect     int     `json:"expect,omitempty"`     // deliveries expected per message (track_last)
	SyncLimit  int     `json:"sync_limit,omitempty"` // limit of each sync request
	Conv       string  `json:"conv,omitempty"`       // history: conversation
	MaxSeq     int64   `json:"max_seq,omitempty"`    // history: cursors drawn from [PageSize+1, MaxSeq+1]
	PageSize   int     `json:"page_size,omitempty"`  // history: limit
	TimeoutMS  int64   `json:"timeout_ms,omitempty"` // bound on the whole command
	// Scheduled stamps each message with its scheduled send time instead of
	// the time it left, so that latency counts the wait of a send held up
	// by a stalled server (no coordinated omission).
	Scheduled bool `json:"scheduled,omitempty"`
	Bytes     int  `json:"bytes,omitempty"` // message content size (0: a chat line of about 120 bytes)
}

// Message kinds a worker writes.
const (
	MsgProgress = "progress"
	MsgDone     = "done"
	MsgLog      = "log"
	MsgFatal    = "fatal"
)

// Message is one line from a worker.
type Message struct {
	Kind   string `json:"kind"`
	Worker int    `json:"worker"`
	Phase  string `json:"phase,omitempty"`
	// Progress: one interval (about a second) of counters and histograms.
	Progress *Interval `json:"progress,omitempty"`
	// Done: the command finished.
	Done *Done  `json:"done,omitempty"`
	Text string `json:"text,omitempty"` // log, fatal
}

// Interval is what a worker saw during one progress interval.
type Interval struct {
	End      int64                `json:"end"` // unix nanoseconds
	Open     int                  `json:"open"`
	Counters map[string]uint64    `json:"counters,omitempty"`
	Hists    map[string]*Snapshot `json:"hists,omitempty"`
}

// Done closes a command: its outcome on this worker.
type Done struct {
	Counters map[string]uint64    `json:"counters,omitempty"`
	Hists    map[string]*Snapshot `json:"hists,omitempty"`
	Errors   []string             `json:"errors,omitempty"` // the first few distinct errors
	// Last holds, per message (client message id), the latest delivery (µs
	// after the send) and how many deliveries this worker saw (track_last).
	Last map[string][2]uint32 `json:"last,omitempty"`
}
