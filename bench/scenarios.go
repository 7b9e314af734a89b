package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reconcile/reconcile/internal/livesim"
)

// result is everything one benchmark invocation measured; render turns it
// into BENCHMARKS.md (also from a --json file).
type result struct {
	Command   string            `json:"command"`
	Code      string            `json:"code"` // the commit built, and whether the tree had changes
	Machine   machine           `json:"machine"`
	Started   time.Time         `json:"started"`
	Total     time.Duration     `json:"total"`
	Quick     bool              `json:"quick"`
	Sizes     sizes             `json:"sizes"`
	Scenarios []*scenarioResult `json:"scenarios"`
	// Parts and MergedBy are set when the result was merged from several
	// invocations' --json files (--from-json a.json,b.json): each
	// invocation, and the merging command.
	Parts    []resultPart `json:"parts,omitempty"`
	MergedBy string       `json:"merged_by,omitempty"`
}

// resultPart is one invocation of a merged result.
type resultPart struct {
	Command    string        `json:"command"`
	Code       string        `json:"code"`
	Started    time.Time     `json:"started"`
	Total      time.Duration `json:"total"`
	Scenarios  []string      `json:"scenarios"`
	LoadBefore string        `json:"load_before"`
}

func (r *result) scenario(id string) *scenarioResult {
	for _, s := range r.Scenarios {
		if s.ID == id {
			return s
		}
	}
	return nil
}

type scenarioResult struct {
	ID       string             `json:"id"`
	Rows     int                `json:"rows"`
	Runs     []*runMeasure      `json:"runs"`
	Explain  []explainResult    `json:"explain,omitempty"`
	Baseline *baselineMeasure   `json:"baseline,omitempty"`
	Faults   *faultsMeasure     `json:"faults,omitempty"`
	Accounts []*accountsMeasure `json:"accounts,omitempty"`
	Timings  map[string]string  `json:"timings,omitempty"` // setup steps, for the notes
	Err      string             `json:"error,omitempty"`
	Elapsed  time.Duration      `json:"elapsed"`
}

func (s *scenarioResult) run(name string) *runMeasure {
	for _, r := range s.Runs {
		if r.Name == name {
			return r
		}
	}
	return nil
}

type explainResult struct {
	Title  string `json:"title"`
	Source string `json:"source"`
	SQL    string `json:"sql"`
	Params string `json:"params"`
	Plan   string `json:"plan"`
}

// runMeasure is one `reconcile run` against one simulator, as the
// simulator's log, the processes' resource usage and the database saw it.
type runMeasure struct {
	Name string  `json:"name"`
	Sim  simSpec `json:"sim"`
	Rows int     `json:"rows"` // pending rows before the run
	Job  *jobRun `json:"job"`
	// Procs are the job processes of a run of several at once (Job is then
	// their combination, see combineJobs).
	Procs []*jobRun `json:"procs,omitempty"`
	CPU   cpuUsage  `json:"cpu"` // Postgres and the machine during the job

	SimCPU   time.Duration `json:"sim_cpu"` // the simulator's CPU during the job (/proc)
	SimCPUOK bool          `json:"sim_cpu_ok"`
	// SimRusage is the simulator's own rusage after it exited (its start and
	// the serving of its log included).
	SimRusage time.Duration `json:"sim_rusage"`
	LoadAvg   string        `json:"load_avg"` // /proc/loadavg when the job started
	// Waited is how long the bench waited for a quieter machine before the
	// run, BusyBefore the machine's busy share in the last second of it.
	Waited     time.Duration `json:"waited"`
	BusyBefore float64       `json:"busy_before"`

	logFigures

	PendingAfter int64 `json:"pending_after"`
	DoneAfter    int64 `json:"done_after"`
}

// logFigures are what a simulator's request log says about some requests
// (a run's, or one account's of it): see analyse.
type logFigures struct {
	Requests  int            `json:"requests"`
	Accepted  int            `json:"accepted"` // not throttled
	Throttled int            `json:"throttled"`
	ByFault   map[string]int `json:"by_fault,omitempty"`
	ByStatus  map[int]int    `json:"by_status,omitempty"`
	// Rate is (requests-1)/(last arrival - first arrival), all requests;
	// RateAccepted the same over the accepted ones.
	Rate         float64       `json:"rate"`
	RateAccepted float64       `json:"rate_accepted"`
	Span         time.Duration `json:"span"` // first to last request
	// Per10s are the requests and throttled requests in each 10-second
	// slice from the first request.
	Per10s       [][2]int `json:"per_10s,omitempty"`
	MaxWindow    int      `json:"max_window"`
	MaxWindowAcc int      `json:"max_window_accepted"`
}

// RowsPerSecond is rows over the job process's wall time.
func (m *runMeasure) RowsPerSecond() float64 {
	if m.Job == nil || m.Job.Wall <= 0 {
		return 0
	}
	return float64(m.Rows) / m.Job.Wall.Seconds()
}

// measuredRun starts a simulator with spec, runs the job against d with
// args, and measures both.
func (b *bench) measuredRun(ctx context.Context, d *database, name string, spec simSpec, rows int, args []string, stdout io.Writer) (*runMeasure, error) {
	sim, err := b.startSim(ctx, name, spec)
	if err != nil {
		return nil, err
	}
	defer sim.stop()
	m, entries, err := b.jobOnSim(ctx, d, sim, name, spec, rows, args, stdout)
	if err != nil {
		return m, err
	}
	sim.stop()
	m.SimRusage = sim.rusage
	m.analyse(entries)
	if m.PendingAfter, m.DoneAfter, err = d.count(ctx); err != nil {
		return m, err
	}
	b.logf("   %d requests (%d throttled), %.2f req/s, max %d in 1 s, pending after: %d",
		m.Requests, m.Throttled, m.Rate, m.MaxWindow, m.PendingAfter)
	return m, nil
}

// jobOnSim runs the job once against d and a running simulator and
// measures the job, Postgres and the simulator's CPU; it returns the
// simulator's whole request log as it is after the job (for the caller to
// analyse: a simulator may serve several runs).
func (b *bench) jobOnSim(ctx context.Context, d *database, sim *simProc, name string, spec simSpec, rows int, args []string, stdout io.Writer) (*runMeasure, []livesim.Entry, error) {
	return b.jobsOnSim(ctx, d, sim, name, spec, rows, [][]string{args}, nil, stdout)
}

// jobsOnSim is jobOnSim for one job process per element of argsList, all
// started at once, each with env added to its environment. With more than
// one, the measure's Procs are the processes (named name-0, name-1, …) and
// its Job their combination (combineJobs); stdout must then be nil.
func (b *bench) jobsOnSim(ctx context.Context, d *database, sim *simProc, name string, spec simSpec, rows int, argsList [][]string, env []string, stdout io.Writer) (*runMeasure, []livesim.Entry, error) {
	m := &runMeasure{Name: name, Sim: spec, Rows: rows}
	if b.o.quietWait > 0 {
		m.Waited, m.BusyBefore = b.waitQuiet(ctx)
	}
	m.LoadAvg = loadAvg()
	simBefore, ok1 := sim.cpu()
	sampler := startSampler(d.name)
	jobs := make([]*jobRun, len(argsList))
	errs := make([]error, len(argsList))
	var wg sync.WaitGroup
	for i, args := range argsList {
		jname := name
		if len(argsList) > 1 {
			jname = fmt.Sprintf("%s-%d", name, i)
		}
		wg.Go(func() { jobs[i], errs[i] = b.runJob(ctx, jname, d.url, sim.url, args, env, stdout) })
	}
	wg.Wait()
	m.CPU = sampler.finish()
	simAfter, ok2 := sim.cpu()
	if len(jobs) == 1 {
		m.Job = jobs[0]
	} else {
		m.Procs = jobs
		m.Job = combineJobs(jobs)
	}
	if err := errors.Join(errs...); err != nil {
		return m, nil, err
	}
	m.SimCPU, m.SimCPUOK = simAfter-simBefore, ok1 && ok2
	entries, err := sim.fetchLog(ctx)
	return m, entries, err
}

// combineJobs sums up job processes that ran at once: wall time the
// longest, CPU the sum, peak RSS the largest, exit code the first non-zero
// (0 when all exited 0), the arguments and logs of the first; nil when one
// of them did not run.
func combineJobs(jobs []*jobRun) *jobRun {
	if len(jobs) == 0 || slices.Contains(jobs, nil) {
		return nil
	}
	c := &jobRun{Args: jobs[0].Args}
	for _, j := range jobs {
		c.Wall = max(c.Wall, j.Wall)
		c.UserCPU += j.UserCPU
		c.SysCPU += j.SysCPU
		c.MaxRSSKiB = max(c.MaxRSSKiB, j.MaxRSSKiB)
		c.BreakerPauses += j.BreakerPauses
		if c.Exit == 0 {
			c.Exit = j.Exit
		}
	}
	return c
}

func (m *logFigures) analyse(entries []livesim.Entry) {
	m.Requests = len(entries)
	m.ByFault, m.ByStatus = map[string]int{}, map[int]int{}
	accepted := make([]livesim.Entry, 0, len(entries))
	for _, e := range entries {
		m.ByStatus[e.Status]++
		if e.Fault != "" {
			m.ByFault[e.Fault]++
		}
		if e.Fault == livesim.FaultThrottled {
			m.Throttled++
		} else {
			accepted = append(accepted, e)
		}
	}
	m.Accepted = len(accepted)
	m.Rate, m.Span = rateOf(entries)
	m.RateAccepted, _ = rateOf(accepted)
	if len(entries) > 0 {
		first := entries[0].Time
		for _, e := range entries {
			if e.Time.Before(first) {
				first = e.Time
			}
		}
		for _, e := range entries {
			k := int(e.Time.Sub(first) / (10 * time.Second))
			for len(m.Per10s) <= k {
				m.Per10s = append(m.Per10s, [2]int{})
			}
			m.Per10s[k][0]++
			if e.Fault == livesim.FaultThrottled {
				m.Per10s[k][1]++
			}
		}
	}
	m.MaxWindow = livesim.MaxInWindow(entries, time.Second)
	m.MaxWindowAcc = livesim.MaxInWindow(accepted, time.Second)
}

// rateOf is (n-1)/(last-first) over the entries' arrival times.
func rateOf(entries []livesim.Entry) (float64, time.Duration) {
	if len(entries) < 2 {
		return 0, 0
	}
	first, last := entries[0].Time, entries[0].Time
	for _, e := range entries {
		if e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
	}
	span := last.Sub(first)
	if span <= 0 {
		return 0, span
	}
	return float64(len(entries)-1) / span.Seconds(), span
}

// Others is the CPU time of everything else on the machine during the job:
// all CPUs' busy time minus the job, the simulator and the database's
// backends (the bench's own sampling is in it, and is small).
func (m *runMeasure) Others() time.Duration {
	if m.Job == nil {
		return 0
	}
	return max(0, m.CPU.System-m.Job.CPU()-m.SimCPU-m.CPU.PGBackends)
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// freshDB creates a database for the scenario and loads n rows, a third of
// them with an auth key.
func (b *bench) freshDB(ctx context.Context, sr *scenarioResult, id string, n int) (*database, error) {
	return b.freshDBKeys(ctx, sr, id, n, 3)
}

// freshDBKeys is freshDB with every authEvery-th row carrying an auth key.
func (b *bench) freshDBKeys(ctx context.Context, sr *scenarioResult, id string, n, authEvery int) (*database, error) {
	return b.freshDBAccounts(ctx, sr, id, n, authEvery, nil)
}

// freshDBAccounts is freshDBKeys with the rows dealt out to accounts in
// turn (none: every row of the default account; see loadRows).
func (b *bench) freshDBAccounts(ctx context.Context, sr *scenarioResult, id string, n, authEvery int, accounts []string) (*database, error) {
	d, err := b.createDB(ctx, id)
	if err != nil {
		return nil, err
	}
	took, err := d.loadRows(ctx, n, authEvery, accounts)
	if err != nil {
		d.drop()
		return nil, err
	}
	b.logf("   database %s: %d rows loaded in %s", d.name, n, took.Round(time.Millisecond))
	if sr.Timings == nil {
		sr.Timings = map[string]string{}
	}
	sr.Timings["load "+d.name] = took.Round(time.Millisecond).String()
	return d, nil
}

// Scenario 1: rate fidelity at the API's 30 calls/s.
var rateSim = simSpec{Limit: 30, LatencyMedian: 300 * time.Millisecond, LatencyP99: 2 * time.Second, Seed: 1}

func (b *bench) scenarioRate(ctx context.Context, sr *scenarioResult) error {
	sr.Rows = b.sz.Rate
	d, err := b.freshDB(ctx, sr, "rate", sr.Rows)
	if err != nil {
		return err
	}
	defer d.drop()
	m, err := b.measuredRun(ctx, d, "rate", rateSim, sr.Rows, []string{"--rate", "30"}, nil)
	if m != nil {
		sr.Runs = append(sr.Runs, m)
	}
	return err
}

// Scenario 2: the limiter at 1,000 calls/s.
func (b *bench) scenarioScale(ctx context.Context, sr *scenarioResult) error {
	sr.Rows = b.sz.Scale
	d, err := b.freshDB(ctx, sr, "scale", sr.Rows)
	if err != nil {
		return err
	}
	defer d.drop()
	spec := simSpec{Limit: 1000, LatencyMedian: 50 * time.Millisecond, LatencyP99: 200 * time.Millisecond, Seed: 1}
	m, err := b.measuredRun(ctx, d, "scale", spec, sr.Rows,
		[]string{"--rate", "1000", "--allow-rate-above-limit", "--concurrency", "256"}, nil)
	if m != nil {
		sr.Runs = append(sr.Runs, m)
	}
	return err
}

// Scenario 3: a budget shared with someone else. The job runs at --rate 30;
// the simulator grants it only a hidden budget of 10, 15, 20 or 25 calls/s,
// counting either only accepted requests or rejected ones too (which of the
// two Live does is not documented). Each run has rows for b.sz.Shared
// seconds of its budget.
var sharedBudgets = []int{10, 15, 20, 25}

// sharedRunName names the run of one budget and semantics.
func sharedRunName(budget int, countsRejected bool) string {
	if countsRejected {
		return fmt.Sprintf("shared-%d-counts-rejected", budget)
	}
	return fmt.Sprintf("shared-%d", budget)
}

func (b *bench) scenarioShared(ctx context.Context, sr *scenarioResult) error {
	sr.Rows = b.sz.Shared * sharedBudgets[len(sharedBudgets)-1]
	for _, countsRejected := range []bool{false, true} {
		for _, budget := range sharedBudgets {
			name := sharedRunName(budget, countsRejected)
			rows := b.sz.Shared * budget
			d, err := b.freshDB(ctx, sr, "shared", rows)
			if err != nil {
				return err
			}
			spec := simSpec{Limit: budget, LatencyMedian: 100 * time.Millisecond, LatencyP99: 500 * time.Millisecond,
				CountsRejected: countsRejected, Seed: 1}
			m, err := b.measuredRun(ctx, d, name, spec, rows, []string{"--rate", "30"}, nil)
			d.drop()
			if m != nil {
				sr.Runs = append(sr.Runs, m)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// Scenario 4: the machinery without latency or limit, with the issue's
// example settings (--concurrency 64 --flush-size 5000) and, as a second
// run, the default --flush-size (1000).
var overheadRuns = []struct {
	name string
	args []string
}{
	{"overhead", []string{"--rate", "100000", "--allow-rate-above-limit", "--concurrency", "64", "--flush-size", "5000"}},
	{"overhead-flush1000", []string{"--rate", "100000", "--allow-rate-above-limit", "--concurrency", "64"}},
}

func (b *bench) scenarioOverhead(ctx context.Context, sr *scenarioResult) error {
	sr.Rows = b.sz.Overhead
	for _, r := range overheadRuns {
		d, err := b.freshDB(ctx, sr, "overhead", sr.Rows)
		if err != nil {
			return err
		}
		m, err := b.measuredRun(ctx, d, r.name, simSpec{Seed: 1}, sr.Rows, r.args, nil)
		d.drop()
		if m != nil {
			sr.Runs = append(sr.Runs, m)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Scenario 5: a big table: dry run with every row pending, rerun with every
// row done, and the plans of the pending-page query in both states.
func (b *bench) scenarioBig(ctx context.Context, sr *scenarioResult) error {
	sr.Rows = b.sz.Big
	d, err := b.freshDB(ctx, sr, "big", sr.Rows)
	if err != nil {
		return err
	}
	defer d.drop()
	sql, source := b.pendingSQL()
	plan, err := d.explain(ctx, sql, "", 1000, false)
	if err != nil {
		return fmt.Errorf("EXPLAIN: %w", err)
	}
	sr.Explain = append(sr.Explain, explainResult{Title: "every row pending: the first page", Source: source,
		SQL: sql, Params: "$1 = '', $2 = 1000", Plan: plan})

	spec := simSpec{Limit: 30, Seed: 1}
	m, err := b.measuredRun(ctx, d, "big-dry-run", spec, sr.Rows, []string{"--dry-run"}, nil)
	if m != nil {
		sr.Runs = append(sr.Runs, m)
	}
	if err != nil {
		return err
	}
	took, err := d.markDone(ctx)
	if err != nil {
		return err
	}
	sr.Timings["mark done (SQL) + VACUUM ANALYZE"] = took.Round(time.Millisecond).String()
	b.logf("   every row marked done with SQL in %s", took.Round(time.Millisecond))
	for _, generic := range []bool{false, true} {
		plan, err := d.explain(ctx, sql, "", 1000, generic)
		if err != nil {
			return fmt.Errorf("EXPLAIN: %w", err)
		}
		title := "every row done: the one page of a rerun (custom plan)"
		if generic {
			title = "every row done: the same, generic plan (plan_cache_mode = force_generic_plan)"
		}
		sr.Explain = append(sr.Explain, explainResult{Title: title, Source: source, SQL: sql,
			Params: "$1 = '', $2 = 1000", Plan: plan})
	}
	m, err = b.measuredRun(ctx, d, "big-rerun", spec, sr.Rows, nil, nil)
	if m != nil {
		sr.Runs = append(sr.Runs, m)
	}
	return err
}
