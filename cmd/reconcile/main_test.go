package main

// Helpers of the end-to-end tests (e2e_test.go): TestMain builds the real
// binary once, and each test gets its own database (testdb), its own
// in-process simulator of the Live API (livesim behind httptest) and runs
// the binary as a child process with a clean environment.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// binPath is the reconcile binary built by TestMain.
var binPath string

// binDirPrefix names the temporary directories holding the built binary:
// reconcile-e2e-<pid>-<random>.
const binDirPrefix = "reconcile-e2e-"

// Deadlines of the waits. They bound how long a broken job can hang a test;
// no assertion depends on them.
const (
	procDeadline = 2 * time.Minute  // one child process
	pollDeadline = 60 * time.Second // one observable condition
	pollEvery    = 20 * time.Millisecond
)

// Key pair of the simulators (tests that need other secrets say so).
const (
	testKeyID     = "LTAIe2eTestKeyId"
	testKeySecret = "e2eSecretNeverLogged0123456789"
)

// EnvBinary names a variable that, when set, gives a reconcile binary to
// test instead of building this package (a release build, or a mutant to
// check that the tests catch a broken job).
const EnvBinary = "RECONCILE_E2E_BINARY"

func TestMain(m *testing.M) {
	if b := os.Getenv(EnvBinary); b != "" {
		binPath = b
		testdb.Main(m)
	}
	dir, err := buildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	binPath = filepath.Join(dir, "reconcile")
	// testdb.Main exits the process, so the directory cannot be removed
	// after the tests; buildBinary removes the ones of earlier test
	// processes that are gone.
	testdb.Main(m)
}

// buildBinary builds the package into a fresh temporary directory named
// after this process, after removing directories left by test processes that
// no longer exist.
func buildBinary() (string, error) {
	tmp := os.TempDir()
	old, _ := filepath.Glob(filepath.Join(tmp, binDirPrefix+"*"))
	for _, d := range old {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), binDirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
	dir, err := os.MkdirTemp(tmp, fmt.Sprintf("%s%d-", binDirPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "reconcile"), ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
}

// row is one desired_snapshot_callbacks row. Empty Key and Region are NULL.
type row struct {
	Domain  string
	URL     string
	ReqAuth bool
	Key     string
	Region  string
}

// genRows returns n valid rows with domains <prefix>NNNN.e2e.example.com;
// every third asks for auth with a per-row key, every fifth has a region.
func genRows(prefix string, n int) []row {
	rows := make([]row, n)
	for i := range rows {
		r := row{
			Domain: fmt.Sprintf("%s%04d.e2e.example.com", prefix, i),
			URL:    fmt.Sprintf("https://hooks.example.com/snapshot/%s/%d", prefix, i),
		}
		if i%3 == 0 {
			r.ReqAuth, r.Key = true, fmt.Sprintf("e2eKey%s%010d", prefix, i)
		}
		if i%5 == 0 {
			r.Region = "cn-beijing"
		}
		rows[i] = r
	}
	return rows
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// fixture is one test's database, simulator and child environment.
type fixture struct {
	t      *testing.T
	db     *testdb.DB
	sim    *livesim.Server
	simURL string
	keyID  string
	secret string // what the child is given
	home   string
}

// newFixture creates a database (migrated unless dbOpts say otherwise) and a
// simulator serving opts (the test key pair unless opts has one).
func newFixture(t *testing.T, opts livesim.Options, dbOpts ...testdb.Option) *fixture {
	t.Helper()
	if opts.AccessKeyID == "" {
		opts.AccessKeyID, opts.AccessKeySecret = testKeyID, testKeySecret
	}
	f := &fixture{t: t, db: testdb.New(t, dbOpts...), keyID: opts.AccessKeyID, secret: opts.AccessKeySecret,
		home: t.TempDir()}
	f.sim = livesim.New(opts)
	srv := httptest.NewServer(f.sim)
	t.Cleanup(srv.Close)
	t.Cleanup(f.sim.Close) // first: release hung handlers before srv.Close waits for them
	f.simURL = srv.URL
	return f
}

// insert loads rows with COPY.
func (f *fixture) insert(rows []row) {
	f.t.Helper()
	data := make([][]any, len(rows))
	for i, r := range rows {
		data[i] = []any{r.Domain, r.URL, r.ReqAuth, nullable(r.Key), nullable(r.Region)}
	}
	_, err := f.db.Pool.CopyFrom(context.Background(), pgx.Identifier{"desired_snapshot_callbacks"},
		[]string{"domain_name", "notify_url", "notify_req_auth", "notify_auth_key", "region_id"}, pgx.CopyFromRows(data))
	if err != nil {
		f.t.Fatalf("insert desired rows: %v", err)
	}
}

// exec runs one SQL statement.
func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.db.Pool.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// count runs a query returning one integer.
func (f *fixture) count(sql string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// env is the child's whole environment: nothing is inherited but PATH, HOME
// is an empty directory (no credentials file, no CLI profile), and the
// credentials are the fixture's. Each override is NAME=value (replacing the
// base) or NAME= (removing it).
func (f *fixture) env(overrides ...string) []string {
	m := map[string]string{
		"PATH":                            os.Getenv("PATH"),
		"HOME":                            f.home,
		"DATABASE_URL":                    f.db.URL,
		"RECONCILE_ENDPOINT":              f.simURL,
		"ALIBABA_CLOUD_ACCESS_KEY_ID":     f.keyID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET": f.secret,
		"RECONCILE_LOG_FORMAT":            "json",
	}
	for _, o := range overrides {
		k, v, _ := strings.Cut(o, "=")
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// lineLog collects a stream (a child's stderr) line by line and lets a
// test wait for a line as it comes.
type lineLog struct {
	mu      sync.Mutex
	all     bytes.Buffer
	lines   []string
	partial []byte
	changed chan struct{} // closed and replaced when a line is added
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(b)
	l.partial = append(l.partial, b...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(b), nil
}

// snapshot returns the complete lines so far and a channel closed when the
// next one arrives.
func (l *lineLog) snapshot() ([]string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...), l.changed
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// proc is one child process.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdout *testutil.Buffer
	stderr *lineLog
	done   chan struct{} // closed when the child exited and its output is read
	err    error         // of Wait, valid after done
}

// start runs the binary with args and the fixture's environment plus
// overrides. The child is killed when the test ends, if still running.
func (f *fixture) start(overrides []string, args ...string) *proc {
	f.t.Helper()
	p := &proc{t: f.t, name: strings.Join(args, " "), stdout: &testutil.Buffer{}, stderr: newLineLog(),
		done: make(chan struct{})}
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Env = f.env(overrides...)
	p.cmd.Dir = f.home
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		f.t.Fatalf("start reconcile %s: %v", p.name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	f.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// run starts the binary and waits for it to exit; it returns the exit code.
func (f *fixture) run(overrides []string, args ...string) (*proc, int) {
	f.t.Helper()
	p := f.start(overrides, args...)
	return p, p.wait()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the child to exit and returns its exit code (-1 when a
// signal ended it). It fails the test if the child is still running after
// procDeadline.
func (p *proc) wait() int {
	p.t.Helper()
	t := time.NewTimer(procDeadline)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("reconcile %s still running after %v; killed.\nstderr:\n%s", p.name, procDeadline, p.stderr.String())
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		p.t.Fatalf("reconcile %s: %v", p.name, p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// signal sends sig to the child.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to reconcile %s: %v", sig, p.name, err)
	}
}

// expectExit waits for the child and fails the test unless it exited with want.
func (p *proc) expectExit(want int) {
	p.t.Helper()
	if got := p.wait(); got != want {
		p.t.Fatalf("reconcile %s: exit code %d, want %d\nstderr:\n%s\nstdout:\n%s", p.name, got, want,
			p.stderr.String(), p.stdout.String())
	}
}

// logLine is one JSON log line of the child.
type logLine map[string]any

func (l logLine) msg() string   { s, _ := l["msg"].(string); return s }
func (l logLine) level() string { s, _ := l["level"].(string); return s }

// jsonLines parses the child's stderr lines; lines that are not JSON
// objects are returned separately.
func (p *proc) jsonLines() (logs []logLine, other []string) {
	lines, _ := p.stderr.snapshot()
	for _, s := range lines {
		var l logLine
		if json.Unmarshal([]byte(s), &l) != nil {
			other = append(other, s)
			continue
		}
		logs = append(logs, l)
	}
	return logs, other
}

// waitLog waits until the child logs a JSON line for which match is true and
// returns it. It fails the test when the child exits first or after
// pollDeadline.
func (p *proc) waitLog(what string, match func(logLine) bool) logLine {
	p.t.Helper()
	deadline := time.NewTimer(pollDeadline)
	defer deadline.Stop()
	seen := 0
	for {
		lines, changed := p.stderr.snapshot()
		for _, s := range lines[seen:] {
			var l logLine
			if json.Unmarshal([]byte(s), &l) == nil && match(l) {
				return l
			}
		}
		seen = len(lines)
		select {
		case <-changed:
		case <-p.done:
			// Read what came before the exit once more.
			lines, _ := p.stderr.snapshot()
			for _, s := range lines[seen:] {
				var l logLine
				if json.Unmarshal([]byte(s), &l) == nil && match(l) {
					return l
				}
			}
			p.t.Fatalf("reconcile %s exited (%v) before logging %s\nstderr:\n%s", p.name, p.err, what, p.stderr.String())
		case <-deadline.C:
			p.t.Fatalf("reconcile %s did not log %s within %v\nstderr:\n%s", p.name, what, pollDeadline, p.stderr.String())
		}
	}
}

// waitFor polls cond every pollEvery until it returns true. It fails the
// test after pollDeadline, or at once when the watched child (if any)
// exits while cond is still false.
func (f *fixture) waitFor(what string, watch *proc, cond func() bool) {
	f.t.Helper()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	deadline := time.NewTimer(pollDeadline)
	defer deadline.Stop()
	for {
		if cond() {
			return
		}
		if watch != nil && watch.exited() {
			if cond() {
				return
			}
			f.t.Fatalf("waiting for %s: reconcile %s exited (%v)\nstderr:\n%s", what, watch.name, watch.err, watch.stderr.String())
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			f.t.Fatalf("%s did not happen within %v", what, pollDeadline)
		}
	}
}

// runRow is the part of a reconcile_runs row the tests look at.
type runRow struct {
	ID                              int64
	Status                          string
	Finished                        bool
	Note                            string
	Applied, AlreadyExists, Updated int64
	Invalid, Failed, Requests       int64
}

func (f *fixture) runs() []runRow {
	f.t.Helper()
	rows, err := f.db.Pool.Query(context.Background(), `SELECT id, status, finished_at IS NOT NULL, coalesce(note, ''),
		applied, already_exists, updated, invalid, failed, requests FROM reconcile_runs ORDER BY id`)
	if err != nil {
		f.t.Fatalf("read runs: %v", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (runRow, error) {
		var x runRow
		err := r.Scan(&x.ID, &x.Status, &x.Finished, &x.Note, &x.Applied, &x.AlreadyExists, &x.Updated,
			&x.Invalid, &x.Failed, &x.Requests)
		return x, err
	})
	if err != nil {
		f.t.Fatalf("read runs: %v", err)
	}
	return out
}

// status is one snapshot_callback_status row.
type status struct {
	Outcome string // "" when never attempted
	RunID   int64
	Pending bool
}

func (f *fixture) statuses() map[string]status {
	f.t.Helper()
	rows, err := f.db.Pool.Query(context.Background(),
		`SELECT domain_name, coalesce(outcome, ''), coalesce(run_id, 0), pending FROM snapshot_callback_status`)
	if err != nil {
		f.t.Fatalf("read snapshot_callback_status: %v", err)
	}
	out := map[string]status{}
	var d string
	var s status
	if _, err := pgx.ForEachRow(rows, []any{&d, &s.Outcome, &s.RunID, &s.Pending}, func() error {
		out[d] = s
		return nil
	}); err != nil {
		f.t.Fatalf("read snapshot_callback_status: %v", err)
	}
	return out
}

// outcome is one reconcile_outcomes row.
type outcome struct {
	RunID     int64
	Domain    string
	Outcome   string
	Code      string
	RequestID string
}

func (f *fixture) outcomes() []outcome {
	f.t.Helper()
	rows, err := f.db.Pool.Query(context.Background(), `SELECT run_id, domain_name, outcome, coalesce(error_code, ''),
		coalesce(request_id, '') FROM reconcile_outcomes ORDER BY id`)
	if err != nil {
		f.t.Fatalf("read outcomes: %v", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (outcome, error) {
		var o outcome
		err := r.Scan(&o.RunID, &o.Domain, &o.Outcome, &o.Code, &o.RequestID)
		return o, err
	})
	if err != nil {
		f.t.Fatalf("read outcomes: %v", err)
	}
	return out
}

// isDone reports whether an outcome makes a row done.
func isDone(o string) bool { return o == "applied" || o == "already_exists" || o == "updated" }

// checkAllDone fails the test unless every row is done and not pending.
func (f *fixture) checkAllDone(rows []row) map[string]status {
	f.t.Helper()
	st := f.statuses()
	if len(st) != len(rows) {
		f.t.Errorf("snapshot_callback_status has %d rows, want %d", len(st), len(rows))
	}
	bad := 0
	for _, r := range rows {
		s, ok := st[r.Domain]
		if !ok || !isDone(s.Outcome) || s.Pending {
			if bad++; bad <= 10 {
				f.t.Errorf("%s: status %+v (present %v), want done and not pending", r.Domain, s, ok)
			}
		}
	}
	if bad > 10 {
		f.t.Errorf("... %d rows not done in all", bad)
	}
	return st
}

// checkSimConfigs fails the test unless the simulator holds exactly the
// desired configs, each created by at most one successful Add.
func (f *fixture) checkSimConfigs(rows []row) {
	f.t.Helper()
	cfgs := f.sim.Configs()
	if len(cfgs) != len(rows) {
		f.t.Errorf("simulator holds %d configs, want %d", len(cfgs), len(rows))
	}
	bad := 0
	for _, r := range rows {
		c, ok := cfgs[r.Domain]
		want := livesim.Config{DomainName: r.Domain, NotifyURL: r.URL, ReqAuth: r.ReqAuth, AuthKey: r.Key}
		if !ok || c != want {
			if bad++; bad <= 10 {
				f.t.Errorf("%s: simulator config %v (present %v), want %v", r.Domain, c, ok, want)
			}
		}
		if n := f.sim.SuccessfulAdds(r.Domain); n > 1 {
			f.t.Errorf("%s: %d successful Adds, want at most 1", r.Domain, n)
		}
	}
	if bad > 10 {
		f.t.Errorf("... %d configs wrong in all", bad)
	}
}

// rerunUntilDone runs the binary with args until it exits 0, at most n
// times; exit 1 (some rows failed) is allowed in between. It returns the
// processes.
func (f *fixture) rerunUntilDone(n int, overrides []string, args ...string) []*proc {
	f.t.Helper()
	var ps []*proc
	for i := 0; i < n; i++ {
		p, code := f.run(overrides, args...)
		ps = append(ps, p)
		switch code {
		case 0:
			return ps
		case 1:
			continue
		default:
			f.t.Fatalf("rerun %d: exit code %d, want 0 or 1\nstderr:\n%s", i+1, code, p.stderr.String())
		}
	}
	f.t.Fatalf("no exit 0 in %d runs; last stderr:\n%s", n, ps[len(ps)-1].stderr.String())
	return nil
}
