package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reconcile/reconcile/internal/livesim"
)

// The simulator's one accepted key pair (test data, not a secret).
const (
	simKeyID     = "LTAIbenchAccessKeyId"
	simKeySecret = "benchSecret0123456789abcdef"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on every
// Linux this runs on).
const clockTicks = 100

// jobTimeout bounds one `reconcile run` (it is killed after that).
const jobTimeout = 10 * time.Minute

// bench is the state shared by the scenarios.
type bench struct {
	o       options
	sz      sizes
	modRoot string
	tmp     string
	bin     string
	admin   string // admin connection string actually used
}

func newBench(ctx context.Context, o options) (*bench, error) {
	b := &bench{o: o, sz: fullSizes}
	if o.quick {
		b.sz = quickSizes
	}
	if o.accountsSize != "" {
		var err error
		if b.sz.Accounts, b.sz.AccountRows, err = parseAccountsSize(o.accountsSize); err != nil {
			return nil, err
		}
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	b.modRoot = root
	if b.tmp, err = os.MkdirTemp("", "reconcile-bench-"); err != nil {
		return nil, err
	}
	if b.admin, err = b.adminURL(ctx); err != nil {
		b.close()
		return nil, err
	}
	if o.bin != "" {
		b.bin, err = filepath.Abs(o.bin)
		if err != nil {
			b.close()
			return nil, err
		}
		return b, nil
	}
	b.bin = filepath.Join(b.tmp, "reconcile")
	b.logf("building %s/cmd/reconcile -> %s", root, b.bin)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/reconcile")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		b.close()
		return nil, fmt.Errorf("go build ./cmd/reconcile: %w", err)
	}
	return b, nil
}

func (b *bench) close() {
	if b.tmp == "" {
		return
	}
	if b.o.keep {
		b.logf("kept %s", b.tmp)
		return
	}
	_ = os.RemoveAll(b.tmp)
}

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the benchmark from inside the reconcile module (go run ./bench)")
	}
	return filepath.Dir(gomod), nil
}

// childEnv is the environment of the child processes: the bench's own,
// without any variable that would change the job's configuration behind
// the flags the bench passes.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "RECONCILE_") || strings.HasPrefix(k, "ALIBABA_CLOUD_") || k == "DATABASE_URL" ||
			k == "GODEBUG" || k == "GOGC" || k == "GOMEMLIMIT" || k == "GOMAXPROCS" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// simSpec is how one simulator is started.
type simSpec struct {
	Limit         int           `json:"limit"`
	LatencyMedian time.Duration `json:"latency_median"`
	LatencyP99    time.Duration `json:"latency_p99"`
	RetryAfter    bool          `json:"retry_after_header"`
	// CountsRejected: throttled requests count in the limit's window too
	// (--throttle-counts-rejected).
	CountsRejected bool `json:"throttle_counts_rejected,omitempty"`
	// Fault probabilities per accepted request (livesim.Faults).
	ServerError float64 `json:"fault_server_error,omitempty"`
	Reset       float64 `json:"fault_reset,omitempty"`
	Hang        float64 `json:"fault_hang,omitempty"`
	LostAnswer  float64 `json:"fault_lost_answer,omitempty"`
	Seed        int64   `json:"seed"`
	// Accounts, when set, are written to an --accounts-file (see
	// simAccountsFile): the simulator's accounts besides "default".
	Accounts []simAccount `json:"accounts,omitempty"`
}

func (s simSpec) args() []string {
	a := []string{"--limit", strconv.Itoa(s.Limit), "--latency-median", s.LatencyMedian.String(),
		"--latency-p99", s.LatencyP99.String()}
	for _, f := range []struct {
		flag string
		p    float64
	}{{"--fault-server-error", s.ServerError}, {"--fault-reset", s.Reset}, {"--fault-hang", s.Hang}, {"--fault-lost-answer", s.LostAnswer}} {
		if f.p > 0 {
			a = append(a, f.flag, strconv.FormatFloat(f.p, 'g', -1, 64))
		}
	}
	a = append(a, "--seed", strconv.FormatInt(s.Seed, 10))
	if s.RetryAfter {
		a = append(a, "--retry-after-header")
	}
	if s.CountsRejected {
		a = append(a, "--throttle-counts-rejected")
	}
	return a
}

// faultShare is the probability that an accepted request meets a fault.
func (s simSpec) faultShare() float64 { return s.ServerError + s.Reset + s.Hang + s.LostAnswer }

// String is the flags as a reader would type them.
func (s simSpec) String() string {
	a := s.args()
	if len(s.Accounts) > 0 {
		a = append(a, "--accounts-file", "accounts.json")
	}
	return "reconcile simulate " + strings.Join(a, " ")
}

// simProc is a running `reconcile simulate`.
type simProc struct {
	cmd  *exec.Cmd
	url  string
	save string // where fetchLog keeps a copy of the request log
	logf *os.File
	done chan struct{}
	err  error
	// rusage is the simulator's own utime+stime once it exited (start, the
	// requests and serving its log included).
	rusage time.Duration
}

func (b *bench) startSim(ctx context.Context, name string, s simSpec) (*simProc, error) {
	addrFile := filepath.Join(b.tmp, name+"-sim.addr")
	_ = os.Remove(addrFile)
	logf, err := os.Create(filepath.Join(b.tmp, name+"-sim.log"))
	if err != nil {
		return nil, err
	}
	args := append([]string{"simulate", "--listen", "127.0.0.1:0", "--addr-file", addrFile,
		"--access-key-id", simKeyID, "--access-key-secret", simKeySecret, "--log-format", "json"}, s.args()...)
	if len(s.Accounts) > 0 {
		path := filepath.Join(b.tmp, name+"-accounts.json")
		if err := writeSimAccounts(path, s.Accounts); err != nil {
			logf.Close()
			return nil, err
		}
		args = append(args, "--accounts-file", path)
	}
	cmd := exec.Command(b.bin, args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = b.logWriter(logf), b.logWriter(logf)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting the simulator: %w", err)
	}
	p := &simProc{cmd: cmd, logf: logf, done: make(chan struct{}), save: filepath.Join(b.tmp, name+"-requests.ndjson")}
	go func() {
		p.err = cmd.Wait()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.rusage = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		close(p.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if data, err := os.ReadFile(addrFile); err == nil && bytes.HasSuffix(data, []byte("\n")) {
			p.url = strings.TrimSpace(string(data))
			return p, nil
		}
		select {
		case <-p.done:
			logf.Close()
			return nil, fmt.Errorf("the simulator exited at start: %v (log: %s)", p.err, logf.Name())
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, errors.New("the simulator did not write its --addr-file within 15s")
		}
	}
}

// cpu returns the simulator's CPU time so far (utime+stime from /proc).
func (p *simProc) cpu() (time.Duration, bool) {
	st, err := readStat(p.cmd.Process.Pid)
	if err != nil {
		return 0, false
	}
	return ticks(st.utime + st.stime), true
}

// fetchLog reads GET /_sim/log.
func (p *simProc) fetchLog(ctx context.Context) ([]livesim.Entry, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/_sim/log", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /_sim/log: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /_sim/log: %s", resp.Status)
	}
	var body io.Reader = resp.Body
	if p.save != "" {
		if f, err := os.Create(p.save); err == nil {
			defer f.Close()
			body = io.TeeReader(resp.Body, f)
		}
	}
	var out []livesim.Entry
	dec := json.NewDecoder(bufio.NewReaderSize(body, 1<<16))
	for {
		var e livesim.Entry
		if err := dec.Decode(&e); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("GET /_sim/log: %w", err)
		}
		out = append(out, e)
	}
}

// simState is the part of GET /_sim/state the bench reads.
type simState struct {
	Configs        map[string]json.RawMessage `json:"configs"`
	SuccessfulAdds map[string]int             `json:"successful_adds"`
}

// fetchState reads GET /_sim/state.
func (p *simProc) fetchState(ctx context.Context) (*simState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/_sim/state", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /_sim/state: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /_sim/state: %s", resp.Status)
	}
	var st simState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET /_sim/state: %w", err)
	}
	return &st, nil
}

// stop sends SIGTERM (the simulator shuts down cleanly) and waits; it kills
// the process after 10s.
func (p *simProc) stop() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	p.logf.Close()
}

// jobRun is what one `reconcile run` process did.
type jobRun struct {
	Args      []string       `json:"args"`
	Exit      int            `json:"exit"`
	Wall      time.Duration  `json:"wall"`
	UserCPU   time.Duration  `json:"user_cpu"`
	SysCPU    time.Duration  `json:"sys_cpu"`
	MaxRSSKiB int64          `json:"max_rss_kib"`
	Summary   map[string]any `json:"summary,omitempty"` // the job's final summary log line
	// RateLimits are the current_rate_limit values of the job's progress
	// lines (one per --progress-interval), in order.
	RateLimits []float64 `json:"rate_limits,omitempty"`
	// BreakerPauses counts the job's "circuit breaker" warnings (dispatch
	// paused after too many failed answers).
	BreakerPauses int `json:"breaker_pauses,omitempty"`
	// AccountSummaries are the job's "account summary" lines (one per
	// account of a run with several); AccountRateLimits the
	// current_rate_limit of its "account progress" lines (--log-level
	// debug), per account label, in order.
	AccountSummaries  []map[string]any     `json:"account_summaries,omitempty"`
	AccountRateLimits map[string][]float64 `json:"account_rate_limits,omitempty"`
}

// CPU is the job's utime+stime.
func (j *jobRun) CPU() time.Duration { return j.UserCPU + j.SysCPU }

// runJob runs `reconcile run --database-url url --endpoint endpoint args...`
// with env added to its environment, and waits for it. stdout nil discards
// the job's stdout (/dev/null).
//
// The job is started through a small launcher (this program re-executed,
// see launch) rather than directly: Go starts children with
// clone(CLONE_VM|CLONE_VFORK), and on exec Linux folds the high-water RSS
// of the memory the child shared, the bench's own, into the child's
// ru_maxrss. Started from the bench, a job would report the bench's peak
// RSS (tens of MiB after parsing a large request log) whenever that is
// larger than its own. The launcher's own peak is a few MiB, below any
// job's.
func (b *bench) runJob(ctx context.Context, name, url, endpoint string, args, env []string, stdout io.Writer) (*jobRun, error) {
	full := append([]string{"run", "--database-url", url, "--endpoint", endpoint, "--log-format", "json"}, args...)
	logPath := filepath.Join(b.tmp, name+"-job.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer resR.Close()
	ctx, cancel := context.WithTimeout(ctx, jobTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, append([]string{launchArg, b.bin}, full...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Env = childEnv(slices.Concat([]string{"ALIBABA_CLOUD_ACCESS_KEY_ID=" + simKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + simKeySecret},
		env, b.o.jobEnv)...)
	cmd.Stdout = stdout
	cmd.Stderr = b.logWriter(logf)
	cmd.ExtraFiles = []*os.File{resW}
	b.logf("   reconcile %s", strings.Join(redactArgs(full), " "))
	if err := cmd.Start(); err != nil {
		resW.Close()
		return nil, fmt.Errorf("starting reconcile run: %w", err)
	}
	resW.Close()
	resc := make(chan []byte, 1)
	go func() { data, _ := io.ReadAll(resR); resc <- data }()
	werr := cmd.Wait()
	var lr launchResult
	if err := json.Unmarshal(<-resc, &lr); err != nil {
		return nil, fmt.Errorf("reconcile run: no resource usage from the launcher (%v; wait: %v; log: %s)", err, werr, logPath)
	}
	if lr.Err != "" {
		return nil, fmt.Errorf("reconcile run: %s", lr.Err)
	}
	j := &jobRun{Args: redactArgs(full), Exit: lr.Exit, Wall: lr.Wall, UserCPU: lr.User, SysCPU: lr.Sys, MaxRSSKiB: lr.MaxRSSKiB}
	j.scanLog(logPath)
	if ctx.Err() != nil {
		return j, fmt.Errorf("reconcile run did not finish within %s (log: %s)", jobTimeout, logPath)
	}
	b.logf("   exit %d in %s, cpu %s, maxrss %.1f MiB", j.Exit, j.Wall.Round(time.Millisecond),
		j.CPU().Round(time.Millisecond), float64(j.MaxRSSKiB)/1024)
	return j, nil
}

// launchArg is the first argument that makes this program a launcher.
const launchArg = "__bench_launch"

// launchResult is what the launcher writes to fd 3.
type launchResult struct {
	Exit      int           `json:"exit"`
	Wall      time.Duration `json:"wall"`
	User      time.Duration `json:"user"`
	Sys       time.Duration `json:"sys"`
	MaxRSSKiB int64         `json:"max_rss_kib"`
	Err       string        `json:"err,omitempty"`
}

// launch runs args as a child with this process's stdio and environment,
// forwards SIGTERM and SIGINT to it, waits, writes the child's own
// resource usage (its wait4 rusage: utime, stime, ru_maxrss) and wall time
// as JSON to fd 3, and exits with the child's exit code.
func launch(args []string) int {
	out := os.NewFile(3, "launch-result")
	res := launchResult{Exit: 127}
	defer func() { _ = json.NewEncoder(out).Encode(res) }()
	if len(args) == 0 {
		res.Err = "launcher: no command"
		return res.Exit
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		res.Err = err.Error()
		return res.Exit
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	_ = cmd.Wait() // the exit status is in ProcessState
	res.Wall = time.Since(start)
	res.Exit = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Exit = 128 + int(ws.Signal())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.User = time.Duration(ru.Utime.Nano())
		res.Sys = time.Duration(ru.Stime.Nano())
		res.MaxRSSKiB = ru.Maxrss
	}
	return res.Exit
}

// runMigrate runs `reconcile migrate` on url.
func (b *bench) runMigrate(ctx context.Context, url string) error {
	cmd := exec.CommandContext(ctx, b.bin, "migrate", "--database-url", url, "--log-format", "json")
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("reconcile migrate: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func (b *bench) logWriter(f *os.File) io.Writer {
	if b.o.verbose {
		return io.MultiWriter(f, os.Stderr)
	}
	return f
}

// scanLog reads the job's stderr (JSON lines): its last "summary" (or "dry
// run summary") line, the current_rate_limit of its progress lines, how many
// times the circuit breaker paused dispatching, and its per-account
// summary and progress lines.
func (j *jobRun) scanLog(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte("summary")) && !bytes.Contains(line, []byte("current_rate_limit")) &&
			!bytes.Contains(line, []byte("circuit breaker")) {
			continue
		}
		var m map[string]any
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		limit, hasLimit := m["current_rate_limit"].(float64)
		msg, _ := m["msg"].(string)
		switch {
		case msg == "summary" || msg == "dry run summary":
			j.Summary = m
		case msg == "account summary":
			j.AccountSummaries = append(j.AccountSummaries, m)
		case msg == "account progress" && hasLimit:
			label, _ := m["account"].(string)
			if j.AccountRateLimits == nil {
				j.AccountRateLimits = map[string][]float64{}
			}
			j.AccountRateLimits[label] = append(j.AccountRateLimits[label], limit)
		case hasLimit:
			j.RateLimits = append(j.RateLimits, limit)
		case strings.HasPrefix(msg, "circuit breaker"):
			j.BreakerPauses++
		}
	}
}

func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if i > 0 && args[i-1] == "--database-url" {
			out[i] = redactURL(a)
		}
	}
	return out
}

// redactURL drops a password from a postgres:// URL (best effort).
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.IndexByte(rest, '@'); at >= 0 {
			if c := strings.IndexByte(rest[:at], ':'); c >= 0 {
				return s[:i+3] + rest[:c] + ":xxx" + rest[at:]
			}
		}
	}
	return s
}

// --- /proc accounting ---

type procStat struct {
	comm                         string
	ppid                         int
	utime, stime, cutime, cstime uint64
	start                        uint64
}

func ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / clockTicks }

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	i, j := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if i < 0 || j < i || j+2 > len(data) {
		return procStat{}, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(data[j+2:])) // f[0] is field 3 (state)
	if len(f) < 20 {
		return procStat{}, errors.New("short /proc stat")
	}
	num := func(k int) uint64 { v, _ := strconv.ParseUint(f[k-3], 10, 64); return v }
	return procStat{comm: string(data[i+1 : j]), ppid: int(num(4)), utime: num(14), stime: num(15),
		cutime: num(16), cstime: num(17), start: num(22)}, nil
}

func listPids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	pids := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pgServerTicks sums utime+stime of every process named postgres, plus the
// postmaster's cutime+cstime (the CPU of the backends it has reaped), so a
// difference of two readings counts backends that exited in between.
func pgServerTicks() (uint64, bool) {
	stats := map[int]procStat{}
	for _, pid := range listPids() {
		if st, err := readStat(pid); err == nil && st.comm == "postgres" {
			stats[pid] = st
		}
	}
	var total uint64
	for _, st := range stats {
		total += st.utime + st.stime
		if _, parentIsPG := stats[st.ppid]; !parentIsPG {
			total += st.cutime + st.cstime // the postmaster
		}
	}
	return total, len(stats) > 0
}

// systemBusyTicks is the busy time of all CPUs (/proc/stat: everything but
// idle and iowait), for "what else ran on the machine".
func systemBusyTicks() uint64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	var busy uint64
	for i := 1; i < len(f) && i <= 8; i++ {
		if i == 4 || i == 5 { // idle, iowait
			continue
		}
		v, _ := strconv.ParseUint(f[i], 10, 64)
		busy += v
	}
	return busy
}

type procKey struct {
	pid   int
	start uint64
}

// cpuSampler measures, during a job run, the CPU of the Postgres backends
// serving one database (found by their process title, "postgres: … <user>
// <db> <host> …", polled every 100 ms; a backend's CPU between its last
// poll and its exit is missed), the whole Postgres server (see
// pgServerTicks) and the whole machine.
type cpuSampler struct {
	db      string
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	exclude map[procKey]bool   // backends of the database before the start (the bench's own)
	ours    map[procKey]uint64 // last utime+stime seen
	notOurs map[procKey]bool   // postgres processes of other databases, or not backends
	other   map[int]bool       // pids that are not postgres processes

	serverBefore, sysBefore uint64
	serverOK                bool
}

// cpuUsage is what a sampler measured.
type cpuUsage struct {
	PGBackends time.Duration `json:"pg_backends"`
	PGServer   time.Duration `json:"pg_server"`
	PGOK       bool          `json:"pg_ok"`
	Backends   int           `json:"backends"`
	System     time.Duration `json:"system"` // all CPUs' busy time
}

func startSampler(db string) *cpuSampler {
	s := &cpuSampler{db: db, stop: make(chan struct{}), done: make(chan struct{}),
		exclude: map[procKey]bool{}, ours: map[procKey]uint64{}, notOurs: map[procKey]bool{}, other: map[int]bool{}}
	s.scan(true)
	s.serverBefore, s.serverOK = pgServerTicks()
	s.sysBefore = systemBusyTicks()
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.scan(false)
			}
		}
	}()
	return s
}

func (s *cpuSampler) scan(initial bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pid := range listPids() {
		if s.other[pid] {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		if st.comm != "postgres" {
			s.other[pid] = true
			continue
		}
		k := procKey{pid, st.start}
		if s.exclude[k] {
			continue
		}
		if _, ok := s.ours[k]; !ok {
			if s.notOurs[k] {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if err != nil {
				continue
			}
			if !bytes.Contains(cmdline, []byte(" "+s.db+" ")) {
				// A backend's title names its database from its start on;
				// a process still showing the postmaster's command line
				// (just forked) is looked at again next time.
				if bytes.HasPrefix(cmdline, []byte("postgres: ")) {
					s.notOurs[k] = true
				}
				continue
			}
			if initial {
				s.exclude[k] = true
				continue
			}
		}
		s.ours[k] = st.utime + st.stime
	}
}

func (s *cpuSampler) finish() cpuUsage {
	close(s.stop)
	<-s.done
	s.scan(false)
	var u cpuUsage
	s.mu.Lock()
	for _, t := range s.ours {
		u.PGBackends += ticks(t)
	}
	u.Backends = len(s.ours)
	s.mu.Unlock()
	if after, ok := pgServerTicks(); ok && s.serverOK && after >= s.serverBefore {
		u.PGServer = ticks(after - s.serverBefore)
		u.PGOK = true
	}
	if sys := systemBusyTicks(); sys >= s.sysBefore {
		u.System = ticks(sys - s.sysBefore)
	}
	return u
}

// waitQuiet waits, up to --quiet-wait, until other processes use less than
// a quarter of the machine's CPUs (sampled over one second), so that a
// shared machine's other work disturbs the figures less. It returns how
// long it waited and the busy share of the last sample.
func (b *bench) waitQuiet(ctx context.Context) (time.Duration, float64) {
	start := time.Now()
	cores := float64(runtime.NumCPU())
	var share float64
	for {
		before := systemBusyTicks()
		select {
		case <-ctx.Done():
			return time.Since(start), share
		case <-time.After(time.Second):
		}
		share = float64(systemBusyTicks()-before) / (clockTicks * cores)
		if share < 0.25 || time.Since(start) >= b.o.quietWait {
			break
		}
	}
	if waited := time.Since(start); waited > 2*time.Second {
		b.logf("   waited %s for a quieter machine (busy %.0f%%)", waited.Round(time.Second), 100*share)
	}
	return time.Since(start), share
}

// codeVersion describes the source the job was built from: the commit and
// the files that differed from it (the tree may hold others' work in
// progress).
func (b *bench) codeVersion(ctx context.Context) string {
	head, err := exec.CommandContext(ctx, "git", "-C", b.modRoot, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	v := "commit " + strings.TrimSpace(string(head))
	if b.o.bin != "" {
		return v + " (the job binary was given with --reconcile-bin)"
	}
	st, err := exec.CommandContext(ctx, "git", "-C", b.modRoot, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench", ":!BENCHMARKS.md").Output()
	if err == nil && len(bytes.TrimSpace(st)) > 0 {
		var files []string
		for _, line := range strings.Split(strings.TrimSpace(string(st)), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				files = append(files, "`"+f[len(f)-1]+"`")
			}
		}
		v += fmt.Sprintf(" plus uncommitted changes to %d tracked files (%s) and any untracked packages, as built at the start", len(files), strings.Join(files, ", "))
	}
	return v
}
