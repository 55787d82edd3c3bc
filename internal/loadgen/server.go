package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (100 on every Linux this runs on).
const clockTicks = 100

// ProcSample is a reading of a process's CPU time and memory.
type ProcSample struct {
	At      time.Time
	CPU     float64 // seconds of user + system time since the process started
	RSS     int64   // bytes resident
	Threads int
}

// SampleProc reads /proc/<pid>/stat and /proc/<pid>/status.
func SampleProc(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold spaces; fields start after its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	s.CPU = (ut + st) / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmRSS":
			kb, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
			s.RSS = kb << 10
		case "Threads":
			s.Threads, _ = strconv.Atoi(v)
		}
	}
	return s, nil
}

// SampleProcs sums SampleProc over several processes (the nodes of a
// cluster): CPU seconds, RSS and threads add up.
func SampleProcs(pids []int) (ProcSample, error) {
	sum := ProcSample{At: time.Now()}
	for _, pid := range pids {
		s, err := SampleProc(pid)
		if err != nil {
			return sum, err
		}
		sum.CPU += s.CPU
		sum.RSS += s.RSS
		sum.Threads += s.Threads
	}
	return sum, nil
}

// ScrapeAll sums ScrapeMetrics over every node.
func ScrapeAll(ctx context.Context, urls []string) (ServerMetrics, error) {
	var sum ServerMetrics
	for _, u := range urls {
		m, err := ScrapeMetrics(ctx, u)
		if err != nil {
			return sum, err
		}
		sum.Goroutines += m.Goroutines
		sum.HeapInuse += m.HeapInuse
		sum.StackInuse += m.StackInuse
		sum.Connections += m.Connections
	}
	return sum, nil
}

// ServerMetrics are a few gauges from the server's /metrics.
type ServerMetrics struct {
	Goroutines  float64 `json:"goroutines"`
	HeapInuse   float64 `json:"heap_inuse_bytes"`
	StackInuse  float64 `json:"stack_inuse_bytes"`
	Connections float64 `json:"connections"`
}

// ScrapeMetrics reads the gauges from url/metrics.
func ScrapeMetrics(ctx context.Context, url string) (ServerMetrics, error) {
	var m ServerMetrics
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			m.Goroutines = v
		case "go_memstats_heap_inuse_bytes":
			m.HeapInuse = v
		case "go_memstats_stack_inuse_bytes":
			m.StackInuse = v
		case "parley_connections":
			m.Connections = v
		}
	}
	return m, sc.Err()
}

// ServerProc is a server the generator started (--start-server): parleyd,
// or Centrifugo for the pairs scenario's comparison.
type ServerProc struct {
	URL       string
	PprofAddr string
	DataDir   string
	Args      []string
	Secret    string // Centrifugo: the HMAC key of its connection tokens
	cmd       *exec.Cmd
	done      chan error
	log       *os.File
}

// ServerOptions say how to start parleyd.
type ServerOptions struct {
	Binary  string   // path to parleyd
	DataDir string   // its --data-dir
	CPUs    string   // taskset -c list ("" = no pinning)
	Pprof   bool     // serve --pprof-addr on a free loopback port
	Extra   []string // more flags
	// DefaultFlags runs parleyd with its own defaults (bcrypt cost, rate
	// limits) instead of BenchServerFlags: what a deployment would run.
	DefaultFlags bool
	LogPath      string // server output
}

// BenchServerFlags are the flags benchmarks run parleyd with: cheap bcrypt
// (setup creates thousands of accounts), no per-user message rate limit (a
// generator user sends far more than a person), many sockets per user.
var BenchServerFlags = []string{"--bcrypt-cost", "4", "--message-rate", "0", "--frame-rate", "0", "--max-sockets-per-user", "1000", "--registration-rate", "0", "--login-failures-ip", "0", "--media-quota", "0", "--max-pending-uploads", "0", "--conversation-rate", "0", "--log-level", "warn"}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// FindParleyd returns bin if set, else a parleyd next to this executable or
// on PATH.
func FindParleyd(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "parleyd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("parleyd"); err == nil {
		return p, nil
	}
	return "", errors.New("no parleyd binary: build it (go build -o bin/ ./cmd/parleyd ./cmd/parley-bench) or pass --parleyd")
}

// StartServer starts parleyd on a free loopback port and waits for /readyz.
func StartServer(ctx context.Context, o ServerOptions) (*ServerProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	sp := &ServerProc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), DataDir: o.DataDir, done: make(chan error, 1)}
	args := []string{"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", o.DataDir}
	if o.DefaultFlags {
		args = append(args, "--log-level", "warn")
	} else {
		args = append(args, BenchServerFlags...)
	}
	if o.Pprof {
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		sp.PprofAddr = fmt.Sprintf("127.0.0.1:%d", pp)
		args = append(args, "--pprof-addr", sp.PprofAddr)
	}
	args = append(args, o.Extra...)
	sp.Args = append([]string{o.Binary}, args...)
	if err := sp.launch(ctx, o.CPUs, o.LogPath, sp.URL+"/readyz"); err != nil {
		return nil, fmt.Errorf("parleyd: %w", err)
	}
	return sp, nil
}

// launch starts sp.Args (under taskset when cpus is set), its output to
// logPath, and waits up to 60 s until readyURL answers 200.
func (sp *ServerProc) launch(ctx context.Context, cpus, logPath, readyURL string) error {
	var cmd *exec.Cmd
	if cpus != "" {
		cmd = exec.Command("taskset", append([]string{"-c", cpus}, sp.Args...)...)
	} else {
		cmd = exec.Command(sp.Args[0], sp.Args[1:]...)
	}
	var out io.Writer = io.Discard
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return err
		}
		sp.log, out = f, f
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting: %w", err)
	}
	sp.cmd = cmd
	go func() { sp.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-sp.done:
			return fmt.Errorf("exited at start (%v); see %s", err, logPath)
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			sp.Stop()
			return ctx.Err()
		}
		resp, err := http.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	sp.Stop()
	return errors.New("not ready after 60 s")
}

// PID is the server's process id (taskset execs it, so it is the same).
func (sp *ServerProc) PID() int { return sp.cmd.Process.Pid }

// Stop ends the server gracefully (SIGTERM), killing it after 20 s.
func (sp *ServerProc) Stop() {
	if sp == nil || sp.cmd == nil || sp.cmd.Process == nil {
		return
	}
	_ = sp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sp.done:
	case <-time.After(20 * time.Second):
		_ = sp.cmd.Process.Kill()
		<-sp.done
	}
	if sp.log != nil {
		_ = sp.log.Close()
	}
	sp.cmd = nil
}

// fetchProfile saves a pprof profile from the server's pprof endpoint.
func fetchProfile(ctx context.Context, addr, name, query, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/"+name+query, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: HTTP %d", name, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// machineBusy reads the busy and total jiffies of all CPUs from /proc/stat.
func machineBusy() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		total += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy, total
}

// loadAvg returns /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// listenDrops reads the kernel's count of connection attempts dropped
// because a listen queue overflowed (TcpExtListenDrops, all sockets).
func listenDrops() float64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := range keys {
			if keys[j] == "ListenDrops" && j < len(vals) {
				v, _ := strconv.ParseFloat(vals[j], 64)
				return v
			}
		}
	}
	return 0
}
