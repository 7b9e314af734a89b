package modeltest

// The world a sequence runs in: one database (testdb), the cloud's state
// carried from one run's simulator to the next, the job (in process through
// app.Run, or as a subprocess for the SIGKILL steps), and the invariants.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/app"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/logging"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

const (
	keyID     = "LTAImodelTestKeyId"
	keySecret = "modelSecretNeverLogged0123456789"

	// arrivalSkew: the simulator runs in this (race-instrumented) process
	// and stamps an arrival when its handler goroutine gets to run, up to
	// tens of milliseconds after the request arrived on a busy machine. The
	// rate invariant counts arrivals in windows shortened by this much (as
	// internal/app's TestFaultMatrix does); a limiter 10% too fast still
	// fails it whenever a run fills a window.
	arrivalSkew = 50 * time.Millisecond

	// Deadlines that bound how long a broken job can hang the test; no
	// assertion depends on them.
	procDeadline = 2 * time.Minute
	pollDeadline = 60 * time.Second
	pollEvery    = 10 * time.Millisecond

	// maxCleanRuns bounds the clean runs after the faults stop (invariant 5).
	maxCleanRuns = 3
)

// stats count what a sequence exercised (logged at its end).
type stats struct {
	kills, forbidden, requests int
	faults                     map[string]int
	exits                      map[int]int
	cleanRuns                  int
}

func (s stats) String() string {
	return fmt.Sprintf("%d SIGKILLs, %d runs with a Forbidden.RAM domain, exit codes %v; %d requests, faults %v",
		s.kills, s.forbidden, s.exits, s.requests, s.faults)
}

// world is one sequence's database, cloud state and history.
type world struct {
	t   *testing.T
	seq sequence
	db  *testdb.DB
	bin *binary

	desired map[string]vals           // what the desired table holds (the steps are the only writers)
	configs map[string]livesim.Config // the cloud, carried from run to run
	adds    map[string]int            // successful Adds, summed over the runs' simulators
	deletes map[string]int            // Deletes that removed a config

	// strictStops makes invariant 2's "every pending row gets an outcome"
	// hold for runs that stopped with exit 2 too (a domain-scoped 403 must
	// not stop the run; see TestModelRegressions/forbidden_one_domain).
	strictStops bool

	// keepGoing: report violations and go on to the end of the sequence
	// (each distinct violation once) instead of stopping at the first.
	keepGoing bool
	reported  map[string]bool

	stats stats

	trace       []string
	runs        int
	outcomeMark int64 // outcomes up to this id were checked by invariant 6
	lastJobLog  string
}

func newWorld(t *testing.T, seq sequence, bin *binary) *world {
	t.Helper()
	w := &world{t: t, seq: seq, db: testdb.New(t), bin: bin, desired: map[string]vals{},
		configs: map[string]livesim.Config{}, adds: map[string]int{}, deletes: map[string]int{},
		keepGoing: os.Getenv(envKeepGoing) == "1", reported: map[string]bool{},
		stats: stats{faults: map[string]int{}, exits: map[int]int{}}}
	for _, d := range slices.Sorted(maps.Keys(seq.initial)) {
		w.insertRow(d, seq.initial[d])
		w.trace = append(w.trace, fmt.Sprintf("setup: insert %s [%v]", d, seq.initial[d]))
	}
	for _, d := range slices.Sorted(maps.Keys(seq.preExist)) {
		v := seq.preExist[d]
		w.configs[d] = livesim.Config{DomainName: d, NotifyURL: v.URL, ReqAuth: v.Auth, AuthKey: v.Key}
		w.trace = append(w.trace, fmt.Sprintf("setup: the cloud already holds %s [%v]", d, v))
	}
	return w
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (w *world) exec(sql string, args ...any) {
	w.t.Helper()
	if _, err := w.db.Pool.Exec(context.Background(), sql, args...); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

func (w *world) insertRow(d string, v vals) {
	w.exec(`INSERT INTO desired_snapshot_callbacks (domain_name, notify_url, notify_req_auth, notify_auth_key, region_id)
		VALUES ($1, $2, $3, $4, $5)`, d, v.URL, v.Auth, nullable(v.Key), nullable(v.Region))
	w.desired[d] = v
}

// runSequence runs seq to its end (or its first violation), then the clean
// runs of invariant 5.
func runSequence(t *testing.T, seq sequence, bin *binary) {
	t.Helper()
	w := newWorld(t, seq, bin)
	for _, st := range seq.steps {
		if !w.step(st) {
			return
		}
	}
	w.finish()
	t.Logf("seed %d: %d runs (%d clean runs to converge); %v", seq.seed, w.runs, w.stats.cleanRuns, w.stats)
}

// step applies one step; false when an invariant broke (reported).
func (w *world) step(st step) bool {
	w.t.Helper()
	w.trace = append(w.trace, st.String())
	switch st.kind {
	case stInsert:
		w.insertRow(st.domain, st.vals)
	case stEdit:
		w.exec(`UPDATE desired_snapshot_callbacks SET notify_url = $2, notify_req_auth = $3, notify_auth_key = $4,
			region_id = $5, updated_at = now() WHERE domain_name = $1`,
			st.domain, st.vals.URL, st.vals.Auth, nullable(st.vals.Key), nullable(st.vals.Region))
		w.desired[st.domain] = st.vals
	case stDelete:
		w.exec(`DELETE FROM desired_snapshot_callbacks WHERE domain_name = $1`, st.domain)
		delete(w.desired, st.domain)
	case stRun:
		rr := w.run(st.run)
		if w.violated(w.check(st.run, rr)) {
			return false
		}
	}
	return true
}

// finish: the faults stop. At most maxCleanRuns clean runs bring every valid
// desired row to done, and one more sends no request at all.
func (w *world) finish() {
	w.t.Helper()
	spec := w.seq.final
	for i := 1; ; i++ {
		w.trace = append(w.trace, fmt.Sprintf("run %s  (invariant 5: clean run %d of at most %d)", spec, i, maxCleanRuns))
		spec.simSeed++
		rr := w.run(spec)
		w.stats.cleanRuns = i
		if w.violated(w.check(spec, rr)) {
			return
		}
		notDone := w.validNotDone()
		if len(notDone) == 0 {
			break
		}
		if i == maxCleanRuns {
			w.violated([]string{fmt.Sprintf("invariant 5 (convergence): after %d clean runs these valid rows are not done: %s",
				maxCleanRuns, strings.Join(notDone, "; "))})
			return
		}
	}
	w.trace = append(w.trace, fmt.Sprintf("run %s  (invariant 5: must send nothing)", spec))
	spec.simSeed++
	rr := w.run(spec)
	if w.violated(w.check(spec, rr)) {
		return
	}
	if len(rr.log) > 0 {
		w.violated([]string{fmt.Sprintf("invariant 5 (convergence): the run after convergence sent %d requests, want 0: %s",
			len(rr.log), compactLog(rr.log, 20))})
	}
}

// runResult is what one run did.
type runResult struct {
	code          int // exit code (-1: killed)
	err           error
	killed        bool
	log           []livesim.Entry
	runID         int64 // its reconcile_runs row (0: none)
	pendingBefore []string
	forbidden     string // the domain answered Forbidden.RAM (forbidPending)
	killedAt      string // where the SIGKILL landed
}

func (w *world) maxRunID() int64 {
	var id int64
	if err := w.db.Pool.QueryRow(context.Background(), `SELECT coalesce(max(id), 0) FROM reconcile_runs`).Scan(&id); err != nil {
		w.t.Fatal(err)
	}
	return id
}

func (w *world) pendingNow() []string {
	rows, err := w.db.Pool.Query(context.Background(), `SELECT domain_name FROM snapshot_callback_status WHERE pending ORDER BY 1`)
	if err != nil {
		w.t.Fatal(err)
	}
	ds, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		w.t.Fatal(err)
	}
	return ds
}

// run runs the job once against a fresh simulator holding the cloud's state,
// then closes that simulator (a barrier: every handler returned, the log and
// the state are final) and carries its state on.
func (w *world) run(spec runSpec) runResult {
	w.t.Helper()
	w.runs++
	rr := runResult{pendingBefore: w.pendingNow()}
	before := w.maxRunID()
	force := spec.force
	if spec.forbidPending && len(rr.pendingBefore) > 0 {
		rr.forbidden = rr.pendingBefore[int(uint64(spec.simSeed)%uint64(len(rr.pendingBefore)))]
		force = map[string]livesim.ForcedError{rr.forbidden: {Status: 403, Code: "Forbidden.RAM",
			Message: "User not authorized to operate on the specified resource."}}
	}
	sim := livesim.New(livesim.Options{AccessKeyID: keyID, AccessKeySecret: keySecret, Limit: spec.limit,
		Latency: spec.latency, Faults: spec.faults, Seed: spec.simSeed, ForceErrors: force,
		DomainFaults: spec.domainFaults})
	for d, c := range w.configs {
		sim.PutConfig(d, c)
	}
	var h http.Handler = sim
	var ks *killSwitch
	if spec.kill != nil {
		ks = newKillSwitch(sim, *spec.kill)
		h = ks
	}
	srv := httptest.NewServer(h)
	if spec.kill == nil {
		rr.err = w.runInProcess(spec, srv.URL)
		rr.code = app.ExitCode(rr.err)
	} else {
		rr.code, rr.killed = w.runKilled(spec, srv.URL, ks)
		rr.killedAt = ks.where
	}
	sim.Close()
	srv.Close()

	rr.log = sim.Log()
	w.configs = sim.Configs()
	seen := map[string]bool{}
	for _, e := range rr.log {
		if !seen[e.Domain] {
			seen[e.Domain] = true
			w.adds[e.Domain] += sim.SuccessfulAdds(e.Domain)
		}
		if e.Action == livesim.ActionDelete && e.Applied {
			w.deletes[e.Domain]++
		}
	}
	if id := w.maxRunID(); id > before {
		rr.runID = id
	}
	w.stats.requests += len(rr.log)
	for _, e := range rr.log {
		if e.Fault != "" {
			w.stats.faults[e.Fault]++
		}
	}
	if rr.killed {
		w.stats.kills++
	} else {
		w.stats.exits[rr.code]++
	}
	if rr.forbidden != "" {
		w.stats.forbidden++
	}
	w.trace = append(w.trace, "    → "+w.describeRun(rr))
	return rr
}

// config is the in-process equivalent of the subprocess's flags.
func (w *world) config(spec runSpec, endpoint string) config.Run {
	c := config.DefaultRun()
	c.DatabaseURL = w.db.URL
	c.Endpoint = endpoint
	c.Rate = float64(spec.rate)
	c.AllowRateAboveLimit = true
	c.MaxAttempts = spec.maxAttempts
	c.RequestTimeout = spec.timeout
	c.Concurrency = spec.concurrency
	c.BackoffBase = 5 * time.Millisecond
	c.BackoffMax = 50 * time.Millisecond
	c.FlushInterval = 50 * time.Millisecond
	c.Grace = time.Second
	c.Prune = spec.prune
	c.VerifyExisting = spec.verify
	c.LogFormat = "json"
	c.LogLevel = "info"
	if err := c.Validate(); err != nil {
		w.t.Fatal(err)
	}
	return c
}

func (w *world) runInProcess(spec runSpec, endpoint string) error {
	w.t.Helper()
	buf := &testutil.Buffer{}
	red := logging.NewRedactor()
	env := app.Env{Stdout: buf, Stderr: buf, Redactor: red,
		Logger:      logging.New(buf, logging.Options{Format: "json", Level: "info", Redactor: red}),
		Credentials: live.StaticCredentials(keyID, keySecret, "")}
	ctx, cancel := context.WithTimeout(context.Background(), procDeadline)
	defer cancel()
	err := app.Run(ctx, w.config(spec, endpoint), env)
	w.lastJobLog = buf.String()
	if ctx.Err() != nil {
		w.t.Fatalf("the run did not end within %v\n%s", procDeadline, tail(w.lastJobLog, 4000))
	}
	return err
}

// runKilled runs the binary and lets ks SIGKILL it; it returns the exit
// code (-1 when killed) and whether the kill happened.
func (w *world) runKilled(spec runSpec, endpoint string, ks *killSwitch) (int, bool) {
	w.t.Helper()
	args := []string{"run", "--rate", strconv.Itoa(spec.rate), "--allow-rate-above-limit",
		"--max-attempts", strconv.Itoa(spec.maxAttempts), "--request-timeout", spec.timeout.String(),
		"--concurrency", strconv.Itoa(spec.concurrency), "--backoff-base", "5ms", "--backoff-max", "50ms",
		"--flush-interval", "50ms", "--grace", "1s", "--log-format", "json", "--log-level", "info"}
	if spec.prune {
		args = append(args, "--prune")
	}
	if spec.verify {
		args = append(args, "--verify-existing")
	}
	cmd := exec.Command(w.bin.get(w.t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.t.TempDir(), "DATABASE_URL=" + w.db.URL,
		"RECONCILE_ENDPOINT=" + endpoint, "ALIBABA_CLOUD_ACCESS_KEY_ID=" + keyID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + keySecret}
	var out testutil.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("start reconcile: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	ks.arm(cmd.Process, done)
	select {
	case <-done:
	case <-time.After(procDeadline):
		_ = cmd.Process.Kill()
		<-done
		w.t.Fatalf("the subprocess did not end within %v\n%s", procDeadline, tail(out.String(), 4000))
	}
	w.lastJobLog = out.String()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
	if killed && !ks.fired() {
		w.t.Fatalf("harness: the process was SIGKILLed, not by the kill switch (%v)\n%s", cmd.ProcessState, tail(w.lastJobLog, 3000))
	}
	// fired && !killed: the process ended on its own after the triggering
	// answer, before the signal (reported as its exit code).
	if killed {
		// The dead process's sessions end once Postgres notices; until
		// then its run lock is held and the next run would exit 3.
		// A killed run's claim expires on its own after db.RunLeaseTTL; the
		// test expires it at once instead of waiting.
		w.expireClaim()
	}
	return cmd.ProcessState.ExitCode(), killed
}

// waitFor polls cond (an observable condition) until it holds.
func (w *world) waitFor(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("waited %v for %s", pollDeadline, what)
		}
		time.Sleep(pollEvery)
	}
}

// expireClaim ends the run claim a killed process left behind, as its
// expiry would (the lease is a row; see db.AcquireRunLock).
func (w *world) expireClaim() {
	if _, err := w.db.Pool.Exec(context.Background(), `UPDATE reconcile_run_lease SET expires_at = now() WHERE expires_at > now()`); err != nil {
		w.t.Fatal(err)
	}
}

// killSwitch wraps the simulator and SIGKILLs the subprocess at one API
// request, synchronously: the handler does not go on until the process is
// gone, so the kill lands exactly at the chosen phase of that request.
type killSwitch struct {
	next  http.Handler
	spec  killSpec
	ready chan struct{} // closed by arm

	mu    sync.Mutex
	n     int
	hit   bool
	proc  *os.Process
	done  <-chan struct{}
	where string
}

func newKillSwitch(next http.Handler, spec killSpec) *killSwitch {
	return &killSwitch{next: next, spec: spec, ready: make(chan struct{})}
}

func (k *killSwitch) arm(p *os.Process, done <-chan struct{}) {
	k.mu.Lock()
	k.proc, k.done = p, done
	k.mu.Unlock()
	close(k.ready)
}

func (k *killSwitch) fired() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.hit
}

func (k *killSwitch) kill() {
	<-k.ready
	k.mu.Lock()
	p, done := k.proc, k.done
	k.mu.Unlock()
	_ = p.Signal(syscall.SIGKILL)
	<-done
}

// requestParams returns the Action and DomainName of an API request,
// leaving its body readable.
func requestParams(r *http.Request) (action, domain string) {
	q, _ := url.ParseQuery(r.URL.RawQuery)
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		if strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
			if f, err := url.ParseQuery(string(b)); err == nil {
				for key, vs := range f {
					q[key] = append(q[key], vs...)
				}
			}
		}
	}
	action = q.Get("Action")
	if action == "" {
		action = r.Header.Get("x-acs-action")
	}
	return action, q.Get("DomainName")
}

func (k *killSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		k.next.ServeHTTP(w, r)
		return
	}
	action, domain := requestParams(r)
	k.mu.Lock()
	k.n++
	trigger := !k.hit && (k.spec.domain == "" && k.n >= k.spec.at ||
		k.spec.domain != "" && k.spec.domain == domain && (k.spec.action == "" || k.spec.action == action))
	if trigger {
		k.hit = true
		k.where = fmt.Sprintf("request %d (%s %s)", k.n, strings.TrimSuffix(action, "LiveSnapshotNotifyConfig"), domain)
	}
	k.mu.Unlock()
	if !trigger {
		k.next.ServeHTTP(w, r)
		return
	}
	// The kill is deferred so that it happens even when the simulator
	// aborts the handler (panic(http.ErrAbortHandler)).
	switch k.spec.phase {
	case killBeforeSim:
		k.kill()
	case killAfterApply:
		hw := &hookWriter{ResponseWriter: w, before: k.kill}
		defer hw.fire()
		k.next.ServeHTTP(hw, r)
	default:
		defer k.kill()
		hw := &hookWriter{ResponseWriter: w, before: func() {}}
		k.next.ServeHTTP(hw, r)
		if f, ok := w.(http.Flusher); ok && !hw.hijacked {
			f.Flush()
		}
	}
}

// hookWriter calls before (once) when the handler starts its answer or
// takes the connection over: after the simulator executed the operation,
// before any byte of the answer left.
type hookWriter struct {
	http.ResponseWriter
	before   func()
	once     sync.Once
	hijacked bool
}

func (h *hookWriter) fire() { h.once.Do(h.before) }

func (h *hookWriter) WriteHeader(code int) {
	h.fire()
	h.ResponseWriter.WriteHeader(code)
}

func (h *hookWriter) Write(b []byte) (int, error) {
	h.fire()
	return h.ResponseWriter.Write(b)
}

func (h *hookWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h.fire()
	h.hijacked = true
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	return hj.Hijack()
}

// statusRow is one row of snapshot_callback_status with its desired values.
type statusRow struct {
	domain        string
	done, pending bool
	outcome       string
	v             vals
}

func (w *world) status() []statusRow {
	w.t.Helper()
	rows, err := w.db.Pool.Query(context.Background(), `SELECT s.domain_name, s.done, s.pending, coalesce(s.outcome, ''),
		d.notify_url, d.notify_req_auth, coalesce(d.notify_auth_key, ''), coalesce(d.region_id, '')
		FROM snapshot_callback_status s JOIN desired_snapshot_callbacks d USING (domain_name) ORDER BY 1`)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []statusRow
	var r statusRow
	if _, err := pgx.ForEachRow(rows, []any{&r.domain, &r.done, &r.pending, &r.outcome, &r.v.URL, &r.v.Auth, &r.v.Key, &r.v.Region},
		func() error { out = append(out, r); return nil }); err != nil {
		w.t.Fatal(err)
	}
	return out
}

func (w *world) validNotDone() []string {
	var out []string
	for _, r := range w.status() {
		if r.v.valid() && !r.done {
			out = append(out, fmt.Sprintf("%s (outcome %q, pending %v)", r.domain, r.outcome, r.pending))
		}
	}
	return out
}

// check verifies the invariants after a run and returns the violations.
func (w *world) check(spec runSpec, rr runResult) []string {
	w.t.Helper()
	ctx := context.Background()
	var v []string
	st := w.status()
	if len(st) != len(w.desired) {
		w.t.Fatalf("harness: the status view has %d rows, the model %d", len(st), len(w.desired))
	}
	for _, r := range st {
		if m, ok := w.desired[r.domain]; !ok || m != r.v {
			w.t.Fatalf("harness: %s is [%v] in the database, [%v] in the model", r.domain, r.v, m)
		}
		// 1. Done is true.
		if r.done {
			cfg, ok := w.configs[r.domain]
			switch {
			case !ok:
				v = append(v, fmt.Sprintf("invariant 1 (done is true): %s is done (outcome %s) at [%v], but the cloud has no config for it",
					r.domain, r.outcome, r.v))
			case cfg.NotifyURL != r.v.URL || cfg.ReqAuth != r.v.Auth || r.v.Auth && cfg.AuthKey != r.v.Key:
				v = append(v, fmt.Sprintf("invariant 1 (done is true): %s is done (outcome %s) at [%v], but the cloud holds [%v]",
					r.domain, r.outcome, r.v, vals{URL: cfg.NotifyURL, Auth: cfg.ReqAuth, Key: cfg.AuthKey}))
			}
		}
		// 2. No row silently lost.
		switch {
		case r.v.valid() && !r.done && !r.pending:
			v = append(v, fmt.Sprintf("invariant 2 (no row lost): %s is valid, neither done nor pending (outcome %q)", r.domain, r.outcome))
		case !r.v.valid() && r.done:
			v = append(v, fmt.Sprintf("invariant 2 (no row lost): %s is invalid [%v] but done", r.domain, r.v))
		case !r.v.valid() && !r.pending && r.outcome != "invalid":
			v = append(v, fmt.Sprintf("invariant 2 (no row lost): %s is invalid, not pending, and its outcome is %q, not invalid", r.domain, r.outcome))
		}
		if !rr.killed && rr.code == 0 && !r.done {
			v = append(v, fmt.Sprintf("invariant 2 (no row lost): the run exited 0 but %s is not done (outcome %q)", r.domain, r.outcome))
		}
	}
	finished := !rr.killed && (rr.code == 0 || rr.code == 1 || w.strictStops && rr.code == 2)
	if finished && len(rr.pendingBefore) > 0 {
		got := map[string]bool{}
		if rr.runID != 0 {
			rows, err := w.db.Pool.Query(ctx, `SELECT domain_name FROM reconcile_outcomes WHERE run_id = $1`, rr.runID)
			if err != nil {
				w.t.Fatal(err)
			}
			ds, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				w.t.Fatal(err)
			}
			for _, d := range ds {
				got[d] = true
			}
		}
		var missing []string
		for _, d := range rr.pendingBefore {
			if _, desired := w.desired[d]; desired && !got[d] {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			v = append(v, fmt.Sprintf("invariant 2 (no row lost): the run finished (exit %d) without an outcome for the pending rows %s",
				rr.code, strings.Join(missing, ", ")))
		}
	}
	// 6. A failed outcome says why: the code of the answer that failed it
	// (InternalError.Reconcile is the job's guard for a failure without one).
	rows, err := w.db.Pool.Query(ctx, `SELECT id, run_id, domain_name, attempts, coalesce(error_message, '')
		FROM reconcile_outcomes WHERE id > $1 AND outcome = 'failed'
		  AND coalesce(error_code, '') IN ('', 'InternalError.Reconcile') ORDER BY id`, w.outcomeMark)
	if err != nil {
		w.t.Fatal(err)
	}
	var id, runID int64
	var d, msg string
	var attempts int
	if _, err := pgx.ForEachRow(rows, []any{&id, &runID, &d, &attempts, &msg}, func() error {
		v = append(v, fmt.Sprintf("invariant 6 (a failure says why): %s recorded failed by run %d after %d attempts with no answer's error_code (message %q)",
			d, runID, attempts, msg))
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
	if err := w.db.Pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM reconcile_outcomes`).Scan(&w.outcomeMark); err != nil {
		w.t.Fatal(err)
	}
	// 3. No domain is added twice (unless its config was deleted between).
	for _, d := range slices.Sorted(maps.Keys(w.adds)) {
		if w.adds[d] > 1+w.deletes[d] {
			v = append(v, fmt.Sprintf("invariant 3 (one Add): %s got %d successful Adds and %d successful Deletes", d, w.adds[d], w.deletes[d]))
		}
	}
	// 3 (continued). Requests go only to rows that were pending when the
	// run began, and (--prune) to domains no longer desired: a done row is
	// not called again.
	pending := map[string]bool{}
	for _, d := range rr.pendingBefore {
		pending[d] = true
	}
	sentDone := map[string]bool{}
	for _, e := range rr.log {
		if _, desired := w.desired[e.Domain]; desired && !pending[e.Domain] && !sentDone[e.Domain] {
			sentDone[e.Domain] = true
			v = append(v, fmt.Sprintf("invariant 3 (done rows are left alone): the run sent %s for %s, which was not pending when it began",
				e.Action, e.Domain))
		}
	}
	// 4. The rate bound.
	if m := livesim.MaxInWindow(rr.log, time.Second-arrivalSkew); m > spec.rate {
		v = append(v, fmt.Sprintf("invariant 4 (rate): the simulator saw %d requests within %v, --rate is %d",
			m, time.Second-arrivalSkew, spec.rate))
	}
	return v
}

// describeRun summarises a run for the trace: exit code, requests, and the
// outcomes it recorded.
func (w *world) describeRun(rr runResult) string {
	s := fmt.Sprintf("exit %d", rr.code)
	if rr.killed {
		s = "SIGKILLed at " + rr.killedAt
	}
	if rr.forbidden != "" {
		s = "Forbidden.RAM for " + short(rr.forbidden) + "; " + s
	}
	if rr.err != nil && rr.code > 1 {
		s += fmt.Sprintf(" (%s)", firstLine(rr.err.Error()))
	}
	s += fmt.Sprintf("; %d requests: %s", len(rr.log), compactLog(rr.log, 40))
	if rr.runID != 0 {
		rows, err := w.db.Pool.Query(context.Background(), `SELECT domain_name, outcome, coalesce(error_code, ''), attempts
			FROM reconcile_outcomes WHERE run_id = $1 ORDER BY domain_name`, rr.runID)
		if err != nil {
			w.t.Fatal(err)
		}
		var outs []string
		var d, o, code string
		var a int
		if _, err := pgx.ForEachRow(rows, []any{&d, &o, &code, &a}, func() error {
			x := short(d) + "=" + o
			if code != "" {
				x += "/" + code
			}
			outs = append(outs, x)
			return nil
		}); err != nil {
			w.t.Fatal(err)
		}
		s += fmt.Sprintf("; outcomes of run %d: %s", rr.runID, strings.Join(outs, " "))
	}
	return s
}

func short(d string) string { return strings.TrimSuffix(d, ".model.example.com") }

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// compactLog renders requests as "Add m03 200" / "Update m01 lost_answer
// (applied)", at most n of them.
func compactLog(log []livesim.Entry, n int) string {
	var parts []string
	for i, e := range log {
		if i == n {
			parts = append(parts, fmt.Sprintf("… %d more", len(log)-n))
			break
		}
		p := strings.TrimSuffix(e.Action, "LiveSnapshotNotifyConfig") + " " + short(e.Domain)
		switch {
		case e.Fault != "":
			p += " " + e.Fault
		case e.Code != "":
			p += " " + e.Code
		default:
			p += " " + strconv.Itoa(e.Status)
		}
		if e.Applied && e.Status != http.StatusOK {
			p += " (applied)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// violated reports the violations not reported before and says whether the
// sequence must stop (some were found, and keepGoing is off).
func (w *world) violated(v []string) bool {
	w.t.Helper()
	var fresh []string
	for _, x := range v {
		if !w.reported[x] {
			w.reported[x] = true
			fresh = append(fresh, x)
		}
	}
	if len(fresh) > 0 {
		w.report(fresh)
	}
	return len(v) > 0 && !w.keepGoing
}

// report fails the test with the violations, the seed and the trace.
func (w *world) report(violations []string) {
	w.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d violation(s) after run %d:\n", w.seq.seed, len(violations), w.runs)
	for _, v := range violations {
		b.WriteString("  ✗ " + v + "\n")
	}
	b.WriteString("steps:\n")
	for i, s := range w.trace {
		fmt.Fprintf(&b, "  %3d  %s\n", i+1, s)
	}
	fmt.Fprintf(&b, "the last run's job log (tail):\n%s\n", tail(w.lastJobLog, 3000))
	if w.seq.seed != 0 {
		fmt.Fprintf(&b, "replay: RECONCILE_MODEL_SEED=%d go test -race -run 'TestModelRandomized' ./internal/modeltest/\n", w.seq.seed)
	}
	w.t.Error(b.String())
}
