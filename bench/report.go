package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/model"
)

// Targets of the benchmark.
const (
	rssLimitKiB    = 64 * 1024 // 64 MiB
	bigLimit       = 15 * time.Second
	overheadTarget = 5000.0 // rows/s
)

// check is one line of a scenario's table.
type check struct {
	Metric, Target, Measured string
	Pass                     *bool // nil: reported, no target
}

func (c check) result() string {
	switch {
	case c.Pass == nil:
		return ""
	case *c.Pass:
		return "PASS"
	}
	return "**FAIL**"
}

func info(metric, measured string) check { return check{Metric: metric, Measured: measured} }

func target(metric, tgt, measured string, ok bool) check {
	return check{Metric: metric, Target: tgt, Measured: measured, Pass: &ok}
}

// section is one scenario's part of the report.
type section struct {
	num           int
	title, anchor string
	setup         []string
	checks        []check
	notes         []string
	extra         string
}

func render(res *result) string {
	if res.Machine.NProc > 0 {
		nproc = res.Machine.NProc
	}
	var sections []*section
	for _, s := range res.Scenarios {
		var sec *section
		switch s.ID {
		case "rate":
			sec = renderRate(s)
		case "scale":
			sec = renderScale(s)
		case "shared":
			sec = renderShared(s)
		case "overhead":
			sec = renderOverhead(s, res.Machine)
		case "big":
			sec = renderBig(s)
		case "baseline":
			sec = renderBaseline(s, res.scenario("rate"))
		case "faults":
			sec = renderFaults(s)
		case "accounts":
			sec = renderAccounts(s)
		default:
			sec = newSection(99, "Scenario "+s.ID)
			sec.notes = []string{"This program does not know how to report this scenario."}
		}
		if s.Err != "" {
			sec.notes = append([]string{"**The scenario did not complete:** `" + s.Err + "`"}, sec.notes...)
		}
		sections = append(sections, sec)
	}
	sort.SliceStable(sections, func(i, j int) bool { return sections[i].num < sections[j].num })

	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	p("# Benchmarks\n\n")
	p("Measured by the benchmark program in [`bench/`](bench/): the real `reconcile run` binary, built once\n")
	p("with `go build -o`, runs as a separate process against the project's simulator (`reconcile simulate`, another\n")
	p("process) and a fresh Postgres database per scenario (`CREATE DATABASE bench_<scenario>_<random>`, `reconcile\n")
	p("migrate`, rows loaded with `generate_series`, dropped at the end). Figures come from the simulator's own request\n")
	p("log (`GET /_sim/log`) and from the processes' resource usage. This file is written by the program.\n\n")
	if res.Quick {
		p("> **This is a `--quick` smoke run with shrunken N: its figures are not the benchmark's.**\n\n")
	}
	p("## The command\n\n```sh\n%s\n```\n\n", res.Command)
	if len(res.Parts) > 1 {
		p("The figures below were measured by %d invocations and merged with `%s` (a later invocation's\n", len(res.Parts), res.MergedBy)
		p("scenario replaces an earlier one's); the command above measures all of them in one go:\n\n")
		for _, pt := range res.Parts {
			p("- `%s` (scenarios %s): started %s, took %s, load average %s at the start", pt.Command,
				strings.Join(pt.Scenarios, ", "), pt.Started.Format("2006-01-02 15:04 MST"), pt.Total.Round(time.Second), pt.LoadBefore)
			if res.Code == "" && pt.Code != "" {
				p("; code: %s", pt.Code)
			}
			p("\n")
		}
		p("\n")
	}
	p("On a fresh machine of this kind it needs only Go and the repository: when nothing answers at the default\n")
	p("`--database-url` (postgres://postgres@127.0.0.1:5432/postgres) it runs `scripts/pg-up.sh`, which installs\n")
	p("PostgreSQL with apt and starts it. `--quick` shrinks every N for a smoke run; `--scenario rate,scale,…` runs a\n")
	p("subset (one of %s); `--json FILE` saves the raw measurements and `--from-json FILE` re-renders this\n", "`"+strings.Join(allScenarios, "`, `")+"`")
	p("file from them (`--from-json a.json,b.json` merges the files of several invocations, a later file's scenario\n")
	p("replacing an earlier one's, and with `--json` saves the merged data); `-v` copies the job's and the simulator's logs to stderr; `--keep` keeps the temporary directory\n")
	p("(binaries, the job's and the simulator's logs, each run's request log as NDJSON); `--job-env GODEBUG=gctrace=1`\n")
	p("passes a variable to the job for a diagnosis; `--accounts-size 10x300` shrinks scenario 8 alone (accounts × rows\n")
	p("each). Before each measured run it waits up to `--quiet-wait` (45 s) for\n")
	p("other processes to use less than a quarter of the CPUs, since the machine may be shared. A full run takes about\n")
	p("29 minutes (the shared-budget sweep alone 17, the accounts scenario 6). `--notes FILE` puts a maintainer's markdown into the report's\n")
	p("\"Notes\" section (this file's comes from `bench/notes.md`). It is a `main` package; its tests (`go test ./bench`)\n")
	p("cover how the request logs are analysed, not the measurements.\n\n")

	m := res.Machine
	p("## Machine\n\n| | |\n| --- | --- |\n")
	p("| CPUs (nproc) | %d |\n| CPU model | %s |\n| memory | %s |\n| kernel | %s |\n", m.NProc, m.CPUModel, m.MemTotal, m.Kernel)
	p("| Go | %s |\n| PostgreSQL | %s |\n", m.GoVersion, m.PGVersion)
	if res.Code != "" {
		p("| code measured | %s |\n", res.Code)
	}
	if len(res.Parts) > 1 {
		if res.Code == "" {
			p("| code measured | per invocation, see \"The command\" |\n")
		}
		p("| date | %s (the first invocation; see \"The command\") |\n| load average at the start | %s |\n", res.Started.Format("2006-01-02 15:04 MST"), m.LoadBefore)
		p("| benchmark time | %s (the invocations together) |\n", res.Total.Round(time.Second))
	} else {
		p("| date | %s |\n| load average at the start | %s |\n", res.Started.Format("2006-01-02 15:04 MST"), m.LoadBefore)
		p("| benchmark time | %s |\n", res.Total.Round(time.Second))
	}
	faultsN := ""
	if res.Sizes.Faults > 0 {
		faultsN = fmt.Sprintf("; faults %d (the job rerun until it exits 0, at most %d runs)", res.Sizes.Faults, faultsMaxRuns)
	}
	if res.Sizes.Accounts > 0 {
		faultsN += fmt.Sprintf("; accounts %d × %d (×%d runs)", res.Sizes.Accounts, res.Sizes.AccountRows, len(accountsParts))
	}
	p("| N (rows) | rate %d, scale %d, shared %d s of the budget per run (×8), overhead %d (×2), big %d; baseline: %s budget%s |\n\n",
		res.Sizes.Rate, res.Sizes.Scale, res.Sizes.Shared, res.Sizes.Overhead, res.Sizes.Big, res.Sizes.BaselineFor, faultsN)

	p("## Results at a glance\n\n| scenario | metric | target | measured | result |\n| --- | --- | --- | --- | --- |\n")
	for _, s := range sections {
		for _, c := range s.checks {
			if c.Pass != nil {
				p("| [%d. %s](#%s) | %s | %s | %s | %s |\n", s.num, s.title, s.anchor, c.Metric, c.Target, c.Measured, c.result())
			}
		}
		if s.num == 6 {
			for _, c := range s.checks {
				if strings.HasPrefix(c.Metric, "speed-up") {
					p("| [%d. %s](#%s) | %s | (report) | %s | |\n", s.num, s.title, s.anchor, c.Metric, c.Measured)
				}
			}
		}
	}
	p("\n")

	p("## How it measures\n\n")
	for _, line := range []string{
		"**Requests, rate, window, throttling** come from the simulator's log (`GET /_sim/log`, one entry per request as it arrived, rejected ones included). *Achieved rate* is (requests − 1) / (last arrival − first arrival). *Max in 1 s* is `livesim.MaxInWindow(entries, 1s)`: the most requests in any half-open 1-second window, throttled ones included. *Throttled* counts entries with fault `throttled` (`Throttling.User`).",
		"**Wall time** is the `reconcile run` process from start to exit (connecting, counting, paging, requests, the last outcome batch committed, the run row closed). *Rows/s* is the scenario's pending rows over that wall time.",
		"**Job CPU and peak RSS** are the job process's own `rusage` from `wait4` (`ProcessState.SysUsage()`: utime+stime, `ru_maxrss`), compared with 64 MiB. The job is started through a tiny launcher (the bench binary re-executed with `__bench_launch`), which waits for it and hands its rusage back: Go starts children with `clone(CLONE_VM|CLONE_VFORK)`, and at `exec` Linux folds the peak RSS of the memory the child shared, the parent's, into the child's `ru_maxrss`, so a job started straight from the bench would report the bench's own peak (tens of MiB after it parsed a large request log) whenever that was larger. The launcher's peak (about 10 MiB) is below any job's.",
		"**Simulator CPU** is utime+stime of the `reconcile simulate` process from `/proc/<pid>/stat`, read just before the job starts and just after it exits (so it excludes the simulator's start and the serving of its log). Resolution 10 ms.",
		"**Postgres CPU, backends** is utime+stime of the Postgres backends serving the scenario's database, found by their process title (`postgres: … <user> <database> …`) in `/proc`, polled every 100 ms during the job; the bench's own connections are closed or excluded. A backend's CPU after its last poll (at most 100 ms of the job's final moments) is missed, so it is a slight underestimate. **Postgres CPU, server** is the difference, across the job, of the sum of utime+stime of every `postgres` process plus the postmaster's cutime+cstime (the exited backends it reaped): it adds the WAL writer, checkpointer, background writer and autovacuum, and also whatever *other* clients of the same server did meanwhile (other people's test runs on a shared machine), so read it as an upper bound.",
		"**Machine CPU** (in the notes) is the busy time of all CPUs from `/proc/stat` across the job, to show how much else ran.",
	} {
		p("- %s\n", line)
	}
	p("\n")

	for _, s := range sections {
		p("## %d. %s\n\n", s.num, s.title)
		for _, line := range s.setup {
			p("%s\n", line)
		}
		p("\n| metric | target | measured | result |\n| --- | --- | --- | --- |\n")
		for _, c := range s.checks {
			p("| %s | %s | %s | %s |\n", c.Metric, c.Target, c.Measured, c.result())
		}
		p("\n")
		if len(s.notes) > 0 {
			p("What limits the figures:\n\n")
			for _, n := range s.notes {
				p("- %s\n", n)
			}
			p("\n")
		}
		if s.extra != "" {
			p("%s\n", s.extra)
		}
	}
	return w.String()
}

// --- formatting ---

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func perRow(d time.Duration, rows int) string {
	if rows <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f µs", float64(d.Nanoseconds())/1e3/float64(rows))
}

func pct(a, b int) string {
	if b == 0 {
		return "0%"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(a)/float64(b))
}

// lognormalMean is the mean of the simulator's latency distribution.
func lognormalMean(median, p99 time.Duration) time.Duration {
	if median <= 0 {
		return 0
	}
	if p99 <= median {
		return median
	}
	sigma := math.Log(float64(p99)/float64(median)) / 2.3263478740408408
	return time.Duration(float64(median) * math.Exp(sigma*sigma/2))
}

func anchor(num int, title string) string {
	a := strings.ToLower(fmt.Sprintf("%d-%s", num, title))
	var b strings.Builder
	for _, r := range a {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func newSection(num int, title string) *section {
	return &section{num: num, title: title, anchor: anchor(num, title)}
}

func jobCmd(m *runMeasure) string {
	if m == nil || m.Job == nil {
		return "reconcile run …"
	}
	args := []string{}
	skip := false
	for i, a := range m.Job.Args {
		if skip {
			skip = false
			continue
		}
		if a == "--database-url" || a == "--endpoint" {
			skip = true
			continue
		}
		if i == 0 {
			continue
		}
		args = append(args, a)
	}
	return "reconcile run " + strings.Join(args, " ")
}

// runChecks are the figures every job run reports; the scenario adds its
// targets first.
func runChecks(m *runMeasure, label string) []check {
	if m == nil || m.Job == nil {
		return []check{info(label+"run", "did not run")}
	}
	j := m.Job
	cs := []check{
		info(label+"wall time (rows/s)", fmt.Sprintf("%s (%.1f rows/s)", secs(j.Wall), m.RowsPerSecond())),
		info(label+"exit code; rows pending after", fmt.Sprintf("%d; %d of %d", j.Exit, m.PendingAfter, m.Rows)),
		info(label+"requests (per row)", fmt.Sprintf("%d (%.3f)", m.Requests, float64(m.Requests)/float64(max(m.Rows, 1)))),
		info(label+"CPU per row: job / simulator / Postgres backends / Postgres server",
			fmt.Sprintf("%s / %s / %s / %s", perRow(j.CPU(), m.Rows), simCPU(m), pgCPU(m.CPU.PGBackends, m.CPU.Backends > 0, m.Rows),
				pgCPU(m.CPU.PGServer, m.CPU.PGOK, m.Rows))),
		info(label+"CPU total: job (user+sys) / simulator / PG backends / PG server",
			fmt.Sprintf("%s (%s+%s) / %s (own rusage at exit, log serving included: %s) / %s (%d backends) / %s", secs(j.CPU()),
				secs(j.UserCPU), secs(j.SysCPU), secs(m.SimCPU), secs(m.SimRusage), secs(m.CPU.PGBackends), m.CPU.Backends,
				secs(m.CPU.PGServer))),
		info(label+"machine: load average at the start; CPU of all other processes during the run",
			fmt.Sprintf("%s%s; %s (%.0f%% of %d cores)", m.LoadAvg, waitedNote(m), secs(m.Others()), othersShare(m), nproc)),
	}
	return cs
}

// nproc is the number of CPUs of the machine being reported (set by render).
var nproc = 2

// othersShare is the other processes' CPU as a share of the machine over the
// job's wall time.
func othersShare(m *runMeasure) float64 {
	if m.Job == nil || m.Job.Wall <= 0 {
		return 0
	}
	return 100 * m.Others().Seconds() / (m.Job.Wall.Seconds() * float64(nproc))
}

// busyNote says when other processes used a noticeable share of the
// machine during a run; paced runs (the job's rate within the simulator's
// limit) also get what that means for throttling.
func busyNote(m *runMeasure, paced bool) string {
	if m == nil || m.Job == nil || othersShare(m) < 20 {
		return ""
	}
	n := fmt.Sprintf("Other processes on this shared machine used %.0f%% of its %d cores during the %s run (load average %s at the start); the job, the simulator and Postgres competed with them for CPU.", othersShare(m), nproc, m.Name, m.LoadAvg)
	if paced && m.Throttled > 0 && m.Sim.Limit > 0 && m.MaxWindow > m.Sim.Limit {
		n += " Scheduling delays of that size can hold a released request back by more than the Gate's 15 ms margin while later ones go through, which is how the simulator can see more requests in one second than the Gate released."
	}
	return n
}

func simCPU(m *runMeasure) string {
	if !m.SimCPUOK {
		return "n/a"
	}
	return perRow(m.SimCPU, m.Rows)
}

func pgCPU(d time.Duration, ok bool, rows int) string {
	if !ok {
		return "n/a"
	}
	return perRow(d, rows)
}

func rssCheck(m *runMeasure, label string) check {
	if m == nil || m.Job == nil {
		return target(label+"peak RSS of the job", "≤ 64 MiB", "n/a", false)
	}
	return target(label+"peak RSS of the job", "≤ 64 MiB", mib(m.Job.MaxRSSKiB), m.Job.MaxRSSKiB <= rssLimitKiB)
}

func missing(sec *section) *section {
	sec.checks = append(sec.checks, target("run", "completes", "did not run", false))
	return sec
}

// --- scenarios ---

func renderRate(s *scenarioResult) *section {
	sec := newSection(1, "Rate fidelity")
	m := s.run("rate")
	sec.setup = []string{
		fmt.Sprintf("%d rows; simulator `%s`; job `%s` (default `--concurrency 32`).", s.Rows, rateSim, jobCmd(m)),
	}
	if m == nil || m.Job == nil {
		return missing(sec)
	}
	sec.checks = append(sec.checks,
		target("achieved request rate", "≥ 29.40/s (98% of 30)", fmt.Sprintf("%.2f/s", m.Rate), m.Rate >= 0.98*30),
		target("max requests in any 1-s window", "≤ 30", fmt.Sprint(m.MaxWindow), m.MaxWindow <= 30),
		target("throttled requests", "0", fmt.Sprint(m.Throttled), m.Throttled == 0),
		rssCheck(m, ""),
	)
	sec.checks = append(sec.checks, runChecks(m, "")...)
	mean := lognormalMean(rateSim.LatencyMedian, rateSim.LatencyP99)
	sec.notes = []string{
		fmt.Sprintf("The Gate, not latency: the mean simulated latency is %s, so 32 workers could sustain about %.0f requests/s; the token bucket (30/s, burst 1) spaces requests 33.3 ms apart.", mean.Round(time.Millisecond), 32/mean.Seconds()),
		fmt.Sprintf("The window guard keeps a request at least 1 s + %s after the one 30 sends before it, so the long-run ceiling is 30 / 1.015 s = 29.56/s (98.5%% of 30); timer and scheduling delays on a busy 2-core machine take a little more. Measured over %s from the first to the last request.", "15 ms", secs(m.Span)),
		fmt.Sprintf("Wall time adds, to the %d/30 s of pacing, the tail of the last requests (lognormal latency, p99 2 s), the final outcome batch and the start (connect, count pending).", s.Rows),
	}
	if n := busyNote(m, true); n != "" {
		sec.notes = append(sec.notes, n)
	}
	return sec
}

func renderScale(s *scenarioResult) *section {
	sec := newSection(2, "Scale of the limiter")
	m := s.run("scale")
	spec := simSpec{Limit: 1000, LatencyMedian: 50 * time.Millisecond, LatencyP99: 200 * time.Millisecond, Seed: 1}
	if m != nil {
		spec = m.Sim
	}
	mean := lognormalMean(spec.LatencyMedian, spec.LatencyP99)
	sec.setup = []string{
		fmt.Sprintf("%d rows; simulator `%s`; job `%s`.", s.Rows, spec, jobCmd(m)),
		fmt.Sprintf("Concurrency: at 1,000/s and a mean latency of %s about %.0f requests are in flight; rate × latency × 2 with the p99 (200 ms) is 400, and 256 is over 4× the mean need, so latency does not bound the rate.", mean.Round(time.Millisecond), 1000*mean.Seconds()),
	}
	if m == nil || m.Job == nil {
		return missing(sec)
	}
	sec.checks = append(sec.checks,
		target("achieved request rate", "≥ 970/s (97% of 1000)", fmt.Sprintf("%.1f/s", m.Rate), m.Rate >= 0.97*1000),
		target("max requests in any 1-s window", "≤ 1000", fmt.Sprint(m.MaxWindow), m.MaxWindow <= 1000),
		target("throttled requests", "0", fmt.Sprint(m.Throttled), m.Throttled == 0),
		rssCheck(m, ""),
	)
	sec.checks = append(sec.checks, runChecks(m, "")...)
	sec.notes = []string{
		"The window guard's margin caps the long-run rate at 1000 / 1.015 s = 985/s (98.5%); every request also takes the Gate's one mutex twice (Reserve, Commit), and at this rate the job's CPU (the SDK's request path, see scenario 4) and the simulator's share two cores.",
		fmt.Sprintf("CPU: the job spent %s per row (%.0f%% of one core over the run), the simulator %s.", perRow(m.Job.CPU(), m.Rows), 100*m.Job.CPU().Seconds()/m.Job.Wall.Seconds(), simCPU(m)),
	}
	if n := busyNote(m, true); n != "" {
		sec.notes = append(sec.notes, n)
	}
	return sec
}

func renderShared(s *scenarioResult) *section {
	sec := newSection(3, "Shared budget (adaptive rate)")
	seconds := 0
	for _, m := range s.Runs {
		if m.Sim.Limit > 0 {
			seconds = m.Rows / m.Sim.Limit
			break
		}
	}
	var job string
	if len(s.Runs) > 0 {
		job = jobCmd(s.Runs[0])
	}
	sec.setup = []string{
		fmt.Sprintf("Eight runs, a fresh database each: job `%s` (adaptive rate on, its default) against a simulator that grants it a hidden budget of 10, 15, 20 or 25 calls/s (`reconcile simulate --limit B --latency-median 100ms --latency-p99 500ms --seed 1`), each with rows for %d s of its budget (rows = %d × B). The limiter either counts only accepted requests in its sliding second (the simulator's default) or, with `--throttle-counts-rejected`, throttled ones too, so that a client that keeps exceeding the limit stays throttled: which of the two Live does is not documented. No retry hint. Whoever spends the rest of the account's 30/s is not simulated as traffic: the simulator simply grants only B.", job, seconds, seconds),
	}
	var rows []string
	rows = append(rows, "| limiter counts | budget | rows | exit; pending after | requests | throttled | accepted rate (budget used) | max in 1 s: all / accepted | wall time |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, countsRejected := range []bool{false, true} {
		for _, budget := range sharedBudgets {
			name := sharedRunName(budget, countsRejected)
			label := fmt.Sprintf("budget %d, %s: ", budget, countsLabel(countsRejected))
			m := s.run(name)
			if m == nil || m.Job == nil {
				sec.checks = append(sec.checks, target(label+"run", "completes", "did not run", false))
				continue
			}
			used := m.RateAccepted / float64(budget)
			allDone := m.Job.Exit == 0 && m.PendingAfter == 0
			sec.checks = append(sec.checks,
				target(label+"all rows done in one run", "yes (exit 0, 0 pending)", fmt.Sprintf("exit %d, %d pending", m.Job.Exit, m.PendingAfter), allDone),
				target(label+"throttled share of all requests", "≤ 5%", fmt.Sprintf("%s (%d of %d)", pct(m.Throttled, m.Requests), m.Throttled, m.Requests), m.Throttled*20 <= m.Requests),
				target(label+"budget used (accepted rate)", fmt.Sprintf("≥ 85%% (%.2f/s)", 0.85*float64(budget)), fmt.Sprintf("%.1f%% (%.2f/s; all requests %.2f/s)", 100*used, m.RateAccepted, m.Rate), used >= 0.85),
				rssCheck(m, label),
			)
			rows = append(rows, fmt.Sprintf("| %s | %d | %d | %d; %d | %d | %s | %.2f/s (%.1f%%) | %d / %d | %s |", countsLabel(countsRejected), budget, m.Rows,
				m.Job.Exit, m.PendingAfter, m.Requests, pct(m.Throttled, m.Requests), m.RateAccepted, 100*used, m.MaxWindow, m.MaxWindowAcc, m.Job.Wall.Round(100*time.Millisecond)))
		}
	}
	sec.extra = strings.Join(rows, "\n") + "\n"
	sec.notes = []string{
		"Design (`internal/apply/aimd.go`, the Gate's default policy): on a throttling episode the Gate sets its rate to the number of the job's requests in the second before the throttled one that were not throttled — the share of the budget the server granted, when the job was sending at 80% of its rate or more in that second (else ×0.9: a stall measures itself, not the budget) — refined by the episode's earlier throttled requests whose answers come later; throttled requests sent within a second of a cut are the old rate's and are ignored. The window guard then holds at most floor(rate) requests (throttled ones included) per 1.015 s, so a limiter that counts rejected requests sees the job below its limit at once. The rate then probes upwards slowly (0.1/s per second, doubling every 10 s without throttling, at most 0.5/s per second), so a probe costs a throttled request or two every several seconds.",
		"Budget used is the accepted rate ((accepted − 1) / the span of accepted arrivals) over the budget B. Throttled answers do not count against `--max-attempts` (a separate cap of 50 throttled answers per request bounds a row that stays throttled).",
	}
	for _, m := range s.Runs {
		if m == nil || m.Job == nil {
			continue
		}
		var per []string
		for _, p := range m.Per10s {
			per = append(per, fmt.Sprintf("%d/%d", p[1], p[0]))
		}
		var lim []string
		for _, l := range m.Job.RateLimits {
			lim = append(lim, fmt.Sprintf("%.1f", l))
		}
		sec.notes = append(sec.notes, fmt.Sprintf("Measured (%s): throttled/all requests per 10 s from the first request: %s; the job's current rate limit in its progress lines (every 10 s): %s.", m.Name, strings.Join(per, ", "), strings.Join(lim, ", ")))
	}
	for _, m := range s.Runs {
		if n := busyNote(m, false); n != "" {
			sec.notes = append(sec.notes, n)
		}
	}
	return sec
}

// countsLabel names the limiter's semantics.
func countsLabel(countsRejected bool) string {
	if countsRejected {
		return "accepted and rejected"
	}
	return "accepted only"
}

func renderOverhead(s *scenarioResult, mc machine) *section {
	sec := newSection(4, "Machinery overhead")
	a, b := s.run("overhead"), s.run("overhead-flush1000")
	sec.setup = []string{
		fmt.Sprintf("%d rows, a fresh database per run; simulator `reconcile simulate --limit 0 --latency-median 0s` (unlimited, no latency, no faults). First run: `%s`, the issue's example settings: `--concurrency 64` (enough requests in flight to keep both cores busy with no latency to hide) and `--flush-size 5000` (20 outcome batches per 100,000 rows instead of 100). Second run: the same with the default `--flush-size 1000`, to show what the batch size costs in memory. The page size stays at its default, 1,000.", s.Rows, jobCmd(a)),
	}
	for _, r := range []struct {
		m     *runMeasure
		label string
	}{{a, "flush 5000: "}, {b, "flush 1000: "}} {
		m := r.m
		if m == nil || m.Job == nil {
			sec.checks = append(sec.checks, target(r.label+"run", "completes", "did not run", false))
			continue
		}
		rps := m.RowsPerSecond()
		sec.checks = append(sec.checks,
			target(r.label+"rows per second end to end (job process wall time)", "≥ 5,000", fmt.Sprintf("%.0f (%d rows in %s)", rps, m.Rows, secs(m.Job.Wall)), rps >= overheadTarget),
			rssCheck(m, r.label),
			info(r.label+"CPU per row: job", perRow(m.Job.CPU(), m.Rows)),
			info(r.label+"CPU per row: simulator", simCPU(m)),
			info(r.label+"CPU per row: Postgres (backends of the database / whole server)", fmt.Sprintf("%s / %s", pgCPU(m.CPU.PGBackends, m.CPU.Backends > 0, m.Rows), pgCPU(m.CPU.PGServer, m.CPU.PGOK, m.Rows))),
			info(r.label+"achieved request rate; throttled", fmt.Sprintf("%.0f/s; %d", m.Rate, m.Throttled)),
		)
		for _, c := range runChecks(m, r.label) {
			if !strings.Contains(c.Metric, "CPU per row: job / simulator") {
				sec.checks = append(sec.checks, c)
			}
		}
	}
	if a == nil || a.Job == nil {
		return sec
	}
	m := a
	rps := m.RowsPerSecond()
	ours := m.Job.CPU() + m.SimCPU + m.CPU.PGBackends
	ceiling := float64(mc.NProc) / (ours.Seconds() / float64(m.Rows))
	sec.notes = []string{
		fmt.Sprintf("Everything shares %d cores. In the first run the job, the simulator and the database's Postgres backends took %s of CPU per row, so this machine can do at most about %.0f rows/s (%d cores ÷ CPU per row) whatever the job does; the measured %.0f rows/s is %.0f%% of that ceiling. The rest went to other processes (%.0f%% of the machine during the run, see the machine row; Postgres's WAL writer and checkpointer are among them) and to idle moments of the pipeline: one page query at a time, one outcome batch at a time, the start and the end of the run.", mc.NProc, perRow(ours, m.Rows), ceiling, mc.NProc, rps, 100*rps/ceiling, othersShare(m)),
		"Where the job's CPU goes (a CPU profile of `app.Run` with these settings, in-process against `livesim`, 100,000 rows): nearly all of it is the SDK's request path, `darabonba-openapi` `CallApiWithCtx`. In that path about 40% is the HTTP exchange (syscalls, `net/http`), about 23% is the SDK's nonce: `utils.GetNonce` calls `getGID`, which reads the goroutine id with `runtime.Stack` on every request, about 12% is the ACS3-HMAC-SHA256 signature (`GetAuthorization`), and about 10% JSON (the SDK marshals its request maps and decodes the answer with json-iterator). Reading pages, validation, the Gate and the outcome batches are a few per cent. The simulator's share is its HTTP server and its signature check; Postgres's is the page queries and one `unnest` upsert per outcome batch.",
	}
	for _, r := range []*runMeasure{a, b} {
		if r != nil && r.Job != nil && r.Job.MaxRSSKiB > rssLimitKiB*85/100 {
			other := "about 45 MiB with the default `--flush-size 1000`"
			if b != nil && b.Job != nil && r == a {
				other = fmt.Sprintf("%s with the default `--flush-size 1000` (the second run)", mib(b.Job.MaxRSSKiB))
			}
			sec.notes = append(sec.notes, fmt.Sprintf("Diagnosis of the peak RSS near or over 64 MiB with `--flush-size 5000` (the job's code as of this run; the figure varies from run to run): about 18 MiB is the floor of any run (the rerun of scenario 5, which sends nothing, peaks at 17.8 MiB: binary, runtime, connections); the rest is Go heap, and it scales with `--flush-size`, not with the table. With `GODEBUG=gctrace=1` on this run the live heap after each GC is 10–18 MB and the GC's goal 30–39 MB (GOGC=100 lets the heap reach twice the live size before collecting). What is live: the results channel (`4 × --flush-size` = 20,000 `model.Result`s buffered), the outcome batch of 5,000 rows and its nine parameter arrays encoded by pgx, the Gate's window ring (one timestamp per request of the last second: `floor(--rate)` = 100,000 entries, 2.4 MB), 64 pooled SDK clients with their connections, and the redactor's auth keys (scenario 5). Measured while preparing this file: the same run peaked at 59–68 MiB over several runs, at 54 MiB with `GOMEMLIMIT=40MiB` in the job's environment, and at %s. Fixes for the owner: size the results channel by `--concurrency` rather than by `4 × --flush-size`, flush large batches in chunks, a bucketed window guard instead of one timestamp per request at high `--rate`, the redactor fix of scenario 5, and a soft memory limit (`debug.SetMemoryLimit`).", other))
			break
		}
	}
	return sec
}

func renderBig(s *scenarioResult) *section {
	sec := newSection(5, "Big tables")
	dry, rerun := s.run("big-dry-run"), s.run("big-rerun")
	sec.setup = []string{
		fmt.Sprintf("%s desired rows loaded with `generate_series` (then `VACUUM ANALYZE`). First `%s` with every row pending (stdout to /dev/null); then every row is marked done with plain SQL (a synthetic run row, one `applied` outcome per row in `reconcile_outcomes`, and `reconcile_domain_state` with `done_fingerprint` set, then `VACUUM ANALYZE`), and `%s` reruns against a simulator (`--limit 30`).", commas(s.Rows), jobCmd(dry), jobCmd(rerun)),
	}
	for _, r := range []struct {
		m     *runMeasure
		label string
	}{{dry, "dry run: "}, {rerun, "rerun, all done: "}} {
		m := r.m
		if m == nil || m.Job == nil {
			sec.checks = append(sec.checks, target(r.label+"run", "completes", "did not run", false))
			continue
		}
		sec.checks = append(sec.checks,
			target(r.label+"wall time", "≤ 15 s", secs(m.Job.Wall), m.Job.Wall <= bigLimit),
			target(r.label+"requests", "0", fmt.Sprint(m.Requests), m.Requests == 0),
			rssCheck(m, r.label),
			info(r.label+"exit code", exitNote(m.Job.Exit, r.m == dry)),
			info(r.label+"CPU: job (per desired row) / PG backends / PG server", fmt.Sprintf("%s (%s) / %s / %s", secs(m.Job.CPU()), perRow(m.Job.CPU(), m.Rows), secs(m.CPU.PGBackends), secs(m.CPU.PGServer))),
		)
	}
	var keys []string
	for k := range s.Timings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var tl []string
	for _, k := range keys {
		tl = append(tl, k+": "+s.Timings[k])
	}
	sec.notes = []string{
		"The dry run reads the table once to count pending rows, once more for the invalid-and-unchanged count, then pages through all of it (keyset pages of 1,000), validates every row and prints a line per row; its time is Postgres reading pages plus the job's validation and formatting.",
		"The rerun's cost is the same counts and a single page query that finds nothing: the merge join over both primary keys (plan below) reads every desired row and its state once and returns no row. No request is sent, so the simulator's log is empty.",
		"Setup (not part of the targets): " + strings.Join(tl, "; ") + ". A third of the rows have `notify_req_auth` and an 18-character `notify_auth_key`.",
	}
	if dry != nil && dry.Job != nil && dry.Job.MaxRSSKiB > rssLimitKiB {
		sec.notes = append(sec.notes, fmt.Sprintf("Diagnosis of the dry run's peak RSS (the job's code as of this run): memory is not flat in the number of rows read. `internal/app/store.go` registers every `notify_auth_key` it reads (`register` → `logging.Redactor.Add`) in the redactor's set, which is never pruned; here %s keys stay live to the end. With `GODEBUG=gctrace=1` on the same 1,000,000-row dry run the live heap after each GC climbs steadily from 1 MB to 23 MB over the pass (heap goal 47 MB), and the same 1,000,000-row dry run on a table *without* auth keys peaks at 24.5 MiB. The rerun, which reads no row, stays near 18 MiB. A real run grows the same way (per row with a key sent). Fix: scrub a row's errors with that row's own key (it is already a `model.Secret`), or drop a key from the redactor once its row's outcome is written.", commas(s.Rows/3)))
	}
	var ex strings.Builder
	for i, e := range s.Explain {
		if i == 0 {
			fmt.Fprintf(&ex, "The pending-page query, from %s:\n\n```sql\n%s\n```\n\n", e.Source, strings.TrimSpace(e.SQL))
		}
		fmt.Fprintf(&ex, "`EXPLAIN (ANALYZE, BUFFERS)`, %s (%s), on %s rows:\n\n```\n%s\n```\n\n", e.Title, e.Params, commas(s.Rows), e.Plan)
	}
	sec.extra = ex.String()
	return sec
}

func renderBaseline(s *scenarioResult, rate *scenarioResult) *section {
	sec := newSection(6, "Baseline")
	bm := s.Baseline
	sec.setup = []string{
		fmt.Sprintf("A naive reference in `bench/baseline.go`, run in-process: one goroutine, every pending row read into memory with one query, then one row at a time: wait for a 30/s `time.Ticker`, one `live.Client.Add` (the job's own client library), one autocommitted statement inserting the outcome (and the domain's state). No retries, no concurrency. Same rows (%d) and simulator as scenario 1 (`%s`), a fresh database. It runs for %s (at its speed the whole table would take many minutes), so its rate is a steady-state figure.", s.Rows, rateSim, bmBudget(bm)),
	}
	if bm == nil {
		return missing(sec)
	}
	var reconcileRPS float64
	var rm *runMeasure
	if rate != nil {
		rm = rate.run("rate")
	}
	if rm != nil && rm.Job != nil {
		reconcileRPS = rm.RowsPerSecond()
	}
	speed := "n/a"
	if bm.RowsPerSecond > 0 && reconcileRPS > 0 {
		speed = fmt.Sprintf("%.1f× (%.2f ÷ %.2f rows/s)", reconcileRPS/bm.RowsPerSecond, reconcileRPS, bm.RowsPerSecond)
	}
	sec.checks = append(sec.checks,
		info("naive: rows done (failed) in its time budget", fmt.Sprintf("%d (%d) of %d in %s", bm.Rows, bm.Failed, bm.Available, secs(bm.Elapsed))),
		info("naive: rows/s", fmt.Sprintf("%.2f", bm.RowsPerSecond)),
		info("reconcile (scenario 1): rows/s, whole run", fmt.Sprintf("%.2f", reconcileRPS)),
		info("speed-up of reconcile over the naive reference", speed),
	)
	if bm.Run != nil {
		sec.checks = append(sec.checks,
			info("naive: requests, achieved rate, max in 1 s, throttled", fmt.Sprintf("%d, %.2f/s, %d, %d", bm.Run.Requests, bm.Run.Rate, bm.Run.MaxWindow, bm.Run.Throttled)),
			info("naive: CPU per row: simulator / PG backends", fmt.Sprintf("%s / %s", simCPU(bm.Run), pgCPU(bm.PG.PGBackends, bm.PG.Backends > 0, bm.Rows))),
		)
	}
	mean := lognormalMean(rateSim.LatencyMedian, rateSim.LatencyP99)
	sec.notes = []string{
		fmt.Sprintf("The naive loop is bound by latency, not by the rate: one request at a time takes the mean simulated latency (%s) plus one INSERT round trip, so it cannot exceed about %.2f rows/s; the ticker never makes it wait. reconcile keeps about rate × latency ≈ %.0f requests in flight and runs at the rate limit.", mean.Round(time.Millisecond), 1/mean.Seconds(), 30*mean.Seconds()),
		"reconcile's figure is conservative: its wall time includes process start, connecting, counting, the final batch and the run row, which the naive loop's timer does not.",
		"Per row, the naive loop costs Postgres far more than reconcile does (one autocommitted statement per outcome: a transaction and a WAL flush each, against one `unnest` statement per batch of up to 1,000).",
	}
	return sec
}

func renderFaults(s *scenarioResult) *section {
	sec := newSection(7, "Fault matrix")
	fm := s.Faults
	var first *runMeasure
	if len(s.Runs) > 0 {
		first = s.Runs[0]
	}
	spec := faultsSim
	if first != nil {
		spec = first.Sim
	}
	p := spec.faultShare()
	sec.setup = []string{
		fmt.Sprintf("%s desired rows (a quarter with `notify_req_auth` and an 18-character auth key), a fresh database; one simulator for every run, `%s`, which keeps its configs from run to run as the cloud would; then `%s`, again and again until it exits 0 (at most %d runs; `--concurrency` stays at its default, 32). The faults are drawn per accepted request: %.0f%% are answered 500 or 503 and %.0f%% have their connection reset (nothing applied), %.0f%% are never answered (nothing applied; the job's 200 ms request timeout ends the wait), and %.0f%% are applied but their answer is dropped (the job sees a transport error although the config was created), so %.0f%% of all attempts fail.",
			commas(s.Rows), spec, jobCmd(first), faultsMaxRuns, 100*spec.ServerError, 100*spec.Reset, 100*spec.Hang, 100*spec.LostAnswer, 100*p),
	}
	if fm == nil || first == nil || first.Job == nil {
		return missing(sec)
	}
	last := s.Runs[len(s.Runs)-1]
	lastExit := -1
	if last.Job != nil {
		lastExit = last.Job.Exit
	}
	var maxRSS int64
	var rss, walls, exits, per []string
	breaker := 0
	for i, m := range s.Runs {
		if m.Job == nil {
			continue
		}
		maxRSS = max(maxRSS, m.Job.MaxRSSKiB)
		rss = append(rss, mib(m.Job.MaxRSSKiB))
		walls = append(walls, secs(m.Job.Wall))
		exits = append(exits, fmt.Sprint(m.Job.Exit))
		breaker += m.Job.BreakerPauses
		per = append(per, fmt.Sprintf("run %d: %s requests, max %d in 1 s, %s → %s rows pending, exit %d", i+1, commas(m.Requests),
			m.MaxWindow, commas(m.Rows), commas(int(m.PendingAfter)), m.Job.Exit))
	}
	allDone := fm.PendingAfter == 0 && fm.DoneAfter == int64(s.Rows) && lastExit == 0
	doubles := fmt.Sprint(fm.DoubleAdds)
	if len(fm.DoubleAddSample) > 0 {
		doubles += " (e.g. " + strings.Join(fm.DoubleAddSample, ", ") + ")"
	}
	sec.checks = append(sec.checks,
		target("every row done at the end", fmt.Sprintf("%s of %s, the last run exits 0", commas(s.Rows), commas(s.Rows)),
			fmt.Sprintf("%s done, %d pending; the last run exits %d", commas(int(fm.DoneAfter)), fm.PendingAfter, lastExit), allDone),
		target("rows with two successful Adds (`GET /_sim/state` successful_adds ≥ 2)", "0", doubles, fm.DoubleAdds == 0),
		target("max requests in any 1-s window, all runs", fmt.Sprintf("≤ %d", faultsRate), fmt.Sprint(fm.MaxWindow), fm.MaxWindow <= faultsRate),
		target("throttled requests, all runs", "0", fmt.Sprint(fm.Throttled), fm.Throttled == 0),
		target("peak RSS of the job, the largest of the runs", "≤ 64 MiB", mib(maxRSS), maxRSS <= rssLimitKiB),
		info("runs until exit 0 (their exit codes)", fmt.Sprintf("%d (%s)", len(s.Runs), strings.Join(exits, ", "))),
		info("requests, all runs (per row)", fmt.Sprintf("%s (%.3f)", commas(fm.Requests), float64(fm.Requests)/float64(max(s.Rows, 1)))),
		info("per run", strings.Join(per, "; ")),
		info("faults, all runs (share of all requests)", countList(fm.ByFault, fm.Requests,
			livesim.FaultServerError, livesim.FaultReset, livesim.FaultHang, livesim.FaultLostAnswer, livesim.FaultClientGone, livesim.FaultThrottled)),
		info("error codes answered, all runs", countList(fm.ByCode, 0, "InternalError", "ServiceUnavailable", "ConfigAlreadyExists")),
		info("lost answers that came back as `already_exists`", fmt.Sprintf("%s of the %s rows whose Add created the config without its answer reaching the job (%s `lost_answer` faults in all: a retried Add lost again applies nothing)",
			commas(fm.LostExists), commas(fm.LostRows), commas(fm.LostAnswers))),
		info("latest outcome per row at the end", countList(fm.Outcomes, 0, string(model.OutcomeApplied), string(model.OutcomeAlreadyExists))),
		info("simulator at the end: configs; successful Adds", fmt.Sprintf("%s; %s", commas(fm.Configs), commas(fm.SuccessfulAdds))),
		info("wall time, all runs (per run)", fmt.Sprintf("%s (%s)", secs(fm.Wall), strings.Join(walls, ", "))),
		info("peak RSS per run", strings.Join(rss, ", ")),
		info("job CPU, all runs (per row)", fmt.Sprintf("%s (%s)", secs(fm.CPU), perRow(fm.CPU, s.Rows))),
		info("run 1: achieved request rate; circuit-breaker pauses, all runs", fmt.Sprintf("%.1f/s; %d", first.Rate, breaker)),
		info("machine, run 1: load average at the start; CPU of all other processes during it",
			fmt.Sprintf("%s%s; %s (%.0f%% of %d cores)", first.LoadAvg, waitedNote(first), secs(first.Others()), othersShare(first), nproc)),
	)
	// A row stays failed after a run when all its --max-attempts (3)
	// attempts fail; a run makes 1 + p + p² attempts per row on average.
	n := float64(s.Rows)
	attempts := 1 + p + p*p
	sec.notes = []string{
		fmt.Sprintf("What to expect: with %.0f%% of attempts failing and 3 attempts per row and run, a row is still pending after a run with probability p³ = %.2f%% (about %.0f of %s after run 1, %.0f after run 2), and a run makes 1 + p + p² = %.3f attempts per pending row; over all runs that is about N·(1 + p + p²)/(1 − p³) = %s requests (%.3f per row). A lost answer is a failed attempt whose retry is answered ConfigAlreadyExists, which the job records as `already_exists` (done).",
			100*p, 100*p*p*p, n*p*p*p, commas(s.Rows), n*p*p*p*p*p*p, attempts, commas(int(n*attempts/(1-p*p*p))), attempts/(1-p*p*p)),
		"Two successful Adds for one row would need its config deleted in between: the simulator answers ConfigAlreadyExists to an Add on an existing config. The check guards the other half of the claim: a retry after a lost answer, in the same run or a later one, is answered ConfigAlreadyExists and recorded `already_exists` (done), so the rows converge; `GET /_sim/state` successful_adds counts lost-answer Adds too.",
		fmt.Sprintf("Rate: retries go through the same Gate as first attempts, so faults do not add to the 1-second window; the window guard (1 s + 15 ms) caps a run at %d / 1.015 s = %.0f/s. A hung request holds one of the 32 workers for the 200 ms timeout. The circuit breaker pauses dispatching when half of the last 100 answers are 5xx, resets or timeouts; at %.0f%% failed attempts that takes a long streak of bad draws (pauses in these runs: %d).", faultsRate, float64(faultsRate)/1.015, 100*p, breaker),
		"Each run's figures come from its own slice of the one simulator's request log; the window and throttling targets are over the whole log, so a window spanning the end of one run and the start of the next counts too (the bench waits at least a second for a quiet machine before each run).",
	}
	if len(fm.LostOther) > 0 {
		var keys []string
		for k := range fm.LostOther {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %d", k, fm.LostOther[k]))
		}
		sec.notes = append(sec.notes, "Rows with an unanswered Add that did not end `already_exists` after a ConfigAlreadyExists answer, by latest outcome / the next answer the operation gave: "+strings.Join(parts, "; ")+".")
	}
	for _, m := range s.Runs {
		if note := busyNote(m, true); note != "" {
			sec.notes = append(sec.notes, note)
		}
	}
	return sec
}

// countList formats counts as "k1 n1 (x%), k2 n2 (y%), …": the keys in
// order first, then the others by name; shares of total when total > 0.
func countList(counts map[string]int, total int, order ...string) string {
	keys := slices.Clone(order)
	var rest []string
	for k := range counts {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	keys = append(keys, rest...)
	var out []string
	for _, k := range keys {
		n, ok := counts[k]
		if !ok {
			continue
		}
		if total > 0 {
			out = append(out, fmt.Sprintf("%s %s (%s)", k, commas(n), pct(n, total)))
		} else {
			out = append(out, fmt.Sprintf("%s %s", k, commas(n)))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func bmBudget(bm *baselineMeasure) string {
	if bm == nil {
		return "a fixed time budget"
	}
	return "at most " + bm.Budget.String()
}

func exitNote(code int, dry bool) string {
	switch {
	case dry && code == 5:
		return "5 (expected: a dry run that finds pending rows exits 5, as plan)"
	case !dry && code == 0:
		return "0 (expected: every row done)"
	}
	return fmt.Sprintf("%d (unexpected)", code)
}

func waitedNote(m *runMeasure) string {
	if m.Waited < 2*time.Second {
		return ""
	}
	return fmt.Sprintf(" (after waiting %s for a quieter machine; %.0f%% busy then)", m.Waited.Round(time.Second), 100*m.BusyBefore)
}

// commas formats n with thousands separators.
func commas(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// acctStats summarises some accounts of a part of scenario accounts.
type acctStats struct {
	n                         int
	minRate, medRate, maxRate float64
	slowest                   string
	maxWindow                 int    // the largest of the accounts' MaxWindow
	maxWindowAt               string // whose
	overLimit                 []string
	throttled                 int
	rows                      int
	pending                   int64
}

// statsOf summarises the accounts of figs that keep selects.
func statsOf(figs []accountFigures, keep func(accountFigures) bool) acctStats {
	var st acctStats
	var rates []float64
	for _, f := range figs {
		if !keep(f) {
			continue
		}
		st.n++
		rates = append(rates, f.RateAccepted)
		if st.n == 1 || f.RateAccepted < st.minRate {
			st.minRate, st.slowest = f.RateAccepted, f.Name
		}
		if f.MaxWindow > st.maxWindow || st.n == 1 {
			st.maxWindow, st.maxWindowAt = f.MaxWindow, f.Name
		}
		if f.Limit > 0 && f.MaxWindow > f.Limit {
			st.overLimit = append(st.overLimit, f.Name)
		}
		st.throttled += f.Throttled
		st.rows += f.Rows
		st.pending += f.Pending
	}
	if len(rates) > 0 {
		slices.Sort(rates)
		st.medRate, st.maxRate = rates[len(rates)/2], rates[len(rates)-1]
	}
	return st
}

func regularFig(f accountFigures) bool { return f.Limit == accountsRate && !f.Disabled }

func renderAccounts(s *scenarioResult) *section {
	sec := newSection(8, "Many accounts")
	var n, each int
	if len(s.Accounts) > 0 && len(s.Accounts[0].Accounts) > 0 {
		n, each = len(s.Accounts[0].Accounts), s.Accounts[0].Accounts[0].Rows
	}
	budget := float64(n * accountsRate)
	aggTarget := accountsShare * budget
	perTarget := accountsShare * accountsRate
	var first *runMeasure
	if len(s.Runs) > 0 {
		first = s.Runs[0]
	}
	spec := accountsSim(max(n, 3), false)
	if first != nil {
		spec = first.Sim
	}
	workers := min(32*n, 1024)
	slots := min(32, (workers+n-1)/max(n, 1))
	mean := lognormalMean(spec.LatencyMedian, spec.LatencyP99)
	sec.setup = []string{
		fmt.Sprintf("Three runs, a fresh database and simulator each. %d accounts `%s` … `%s`, each with %s desired rows (dealt out in turn; a third with an auth key), a `reconcile_accounts` row with `credentials = 'profile'` and no rate of its own, its profile a section of a shared credentials file (`ALIBABA_CLOUD_CREDENTIALS_FILE`, one `type = access_key` section per account), and its own AccessKey at the simulator, `%s`, whose accounts file gives each account its key and a limit of %d calls/s. The job: `%s` (`--rate` is per account; `--concurrency` (32 per account) and `--workers` at their defaults: %d shared workers, at most %d in flight per account; `--log-level debug` adds only an `account progress` line per account every 10 s, which shows each account's adaptive rate).",
			n, accountName(0), accountName(max(n-1, 0)), commas(each), spec, accountsRate, jobCmd(first), workers, slots),
		"",
		fmt.Sprintf("- **A**: one process works all %d accounts.", n),
		fmt.Sprintf("- **B**: the same, but at the simulator `%s` has a hidden limit of %d (its `reconcile_accounts` row, like every other, leaves it at `--rate %d`: the adaptive rate must find the limit) and `%s`'s key is refused (`disabled` in the accounts file: every request answered `InvalidAccessKeyId.Inactive`).",
			accountName(max(n-2, 0)), accountsHiddenLimit, accountsRate, accountName(max(n-1, 0))),
		fmt.Sprintf("- **C**: part A's setup worked by %d processes at once, `reconcile run … --shard i/%d` for i = 0 … %d, against the one database and the one simulator.", accountsShards, accountsShards, accountsShards-1),
		"",
		fmt.Sprintf("*Aggregate* is the accepted requests of the regular accounts (limit %d, key accepted) over the steady part of the run: from the moment the last of them sent its first request to the moment the first of them sent its last, (requests − 1) / that span. *An account's rate* is its accepted requests over its own first to last request, as in scenario 1. *Max in 1 s* is `livesim.MaxInWindow` over the account's own requests, throttled ones included.", accountsRate),
	}
	if len(s.Accounts) == 0 {
		return missing(sec)
	}
	for _, am := range s.Accounts {
		m := s.run(am.Run)
		if m == nil || m.Job == nil {
			sec.checks = append(sec.checks, target(am.Run+": run", "completes", "did not run", false))
			continue
		}
		switch am.Run {
		case "accounts-a":
			sec.checks = append(sec.checks, accountsPartChecks("A, one process: ", m, am, aggTarget, budget)...)
		case "accounts-b":
			sec.checks = append(sec.checks, accountsHiddenChecks("B, hidden limit and refused key: ", m, am, perTarget)...)
		case "accounts-c":
			sec.checks = append(sec.checks, accountsShardChecks(fmt.Sprintf("C, %d processes: ", len(am.ProcRuns)), m, am, aggTarget, budget)...)
		}
	}
	sec.notes = []string{
		fmt.Sprintf("The ceiling: the window guard keeps each account's requests at most %d per 1 s + 15 ms, so an account can do at most %d / 1.015 s = %.2f/s (98.5%%) and %d accounts %.0f/s; timer and scheduling delays on a busy 2-core machine take a little more. Latency does not bound it: at a mean latency of %s an account needs about %.1f requests in flight on average and may hold %d.",
			accountsRate, accountsRate, accountsRate/1.015, n, budget/1.015, mean.Round(time.Millisecond), accountsRate*mean.Seconds(), slots),
	}
	for _, am := range s.Accounts {
		m := s.run(am.Run)
		if m == nil || m.Job == nil {
			continue
		}
		ours := m.Job.CPU() + m.SimCPU + m.CPU.PGBackends
		note := fmt.Sprintf("CPU (%s, %.0f requests/s over the run): the job%s spent %s per row (%.0f%% of one core over its wall time), the simulator %s, the database's backends %s; the three together kept %.2f of the %d cores busy on average.",
			am.Run, m.Rate, procsWord(m), perRow(m.Job.CPU(), m.Rows), 100*m.Job.CPU().Seconds()/m.Job.Wall.Seconds(), simCPU(m),
			pgCPU(m.CPU.PGBackends, m.CPU.Backends > 0, m.Rows), ours.Seconds()/m.Job.Wall.Seconds(), nproc)
		if statsOf(am.Accounts, regularFig).n == len(am.Accounts) {
			note += fmt.Sprintf(" At that CPU per request the full budget of %.0f requests/s would take %.2f cores.", budget, ours.Seconds()/float64(max(m.Requests, 1))*budget)
		}
		sec.notes = append(sec.notes, note)
		if note := busyNote(m, true); note != "" {
			sec.notes = append(sec.notes, note)
		}
	}
	return sec
}

func procsWord(m *runMeasure) string {
	if len(m.Procs) > 1 {
		return fmt.Sprintf(" (%d processes together)", len(m.Procs))
	}
	return ""
}

// accountRateChecks are the checks of parts A and C: the aggregate while
// every account sends, each account's window and throttling, all rows done.
func accountRateChecks(label string, m *runMeasure, am *accountsMeasure, aggTarget, budget float64) []check {
	st := statsOf(am.Accounts, regularFig)
	sd := am.Steady
	return []check{
		target(label+"aggregate accepted rate while all accounts send", fmt.Sprintf("≥ %.0f/s (%.0f%% of %d × %d)", aggTarget, 100*accountsShare, st.n, accountsRate),
			fmt.Sprintf("%.1f/s (%.1f%%; %s requests over %s)", sd.Rate, 100*sd.Rate/budget, commas(sd.Accepted), secs(sd.Span())), sd.Rate >= aggTarget),
		windowCheck(label, st, "each account"),
		target(label+"throttled requests", "0", fmt.Sprint(m.Throttled), m.Throttled == 0),
		info(label+"accounts' rates: slowest / median / fastest", fmt.Sprintf("%.2f/s (%s) / %.2f/s / %.2f/s", st.minRate, st.slowest, st.medRate, st.maxRate)),
		overCheck(label, am.Accounts),
	}
}

// overCheck reports when the accounts' 1-second windows over their limit
// began: how many accounts had one starting in each second of the run.
func overCheck(label string, figs []accountFigures) check {
	bySecond := map[int]int{}
	for _, f := range figs {
		seen := map[int]bool{}
		for _, d := range f.OverAt {
			if sec := int(d / time.Second); !seen[sec] {
				seen[sec] = true
				bySecond[sec]++
			}
		}
	}
	var secsList []int
	for sec := range bySecond {
		secsList = append(secsList, sec)
	}
	slices.Sort(secsList)
	var parts []string
	for _, sec := range secsList {
		parts = append(parts, fmt.Sprintf("%d–%d s: %d", sec, sec+1, bySecond[sec]))
	}
	return info(label+"1-s windows over an account's limit: where they start (from the first request), accounts", listOrNone(parts))
}

// windowCheck: no account of st over its limit in any 1-second window.
func windowCheck(label string, st acctStats, who string) check {
	measured := fmt.Sprintf("largest %d (%s)", st.maxWindow, st.maxWindowAt)
	if over := st.overLimit; len(over) > 0 {
		measured += fmt.Sprintf("; %d of %d accounts over the limit", len(over), st.n)
		if len(over) > 6 {
			over = append(over[:6:6], "…")
		}
		measured += " (" + strings.Join(over, ", ") + ")"
	}
	return target(label+"most requests to one account in any 1-s window", fmt.Sprintf("≤ %d, %s", accountsRate, who), measured, len(st.overLimit) == 0)
}

func accountsPartChecks(label string, m *runMeasure, am *accountsMeasure, aggTarget, budget float64) []check {
	cs := accountRateChecks(label, m, am, aggTarget, budget)
	cs = append(cs,
		target(label+"all rows done", "yes (exit 0, 0 pending)", fmt.Sprintf("exit %d, %s pending", m.Job.Exit, commas(int(m.PendingAfter))), m.Job.Exit == 0 && m.PendingAfter == 0),
		rssInfo(m, label))
	return append(cs, runChecks(m, label)...)
}

func accountsHiddenChecks(label string, m *runMeasure, am *accountsMeasure, perTarget float64) []check {
	st := statsOf(am.Accounts, regularFig)
	working := statsOf(am.Accounts, func(f accountFigures) bool { return !f.Disabled })
	cs := []check{
		target(label+fmt.Sprintf("the %d regular accounts: rate of the slowest", st.n), fmt.Sprintf("≥ %.2f/s (%.0f%% of %d), each", perTarget, 100*accountsShare, accountsRate),
			fmt.Sprintf("%.2f/s (%s); median %.2f/s, fastest %.2f/s", st.minRate, st.slowest, st.medRate, st.maxRate), st.n > 0 && st.minRate >= perTarget),
		windowCheck(label+fmt.Sprintf("the %d regular accounts: ", st.n), st, "each"),
		target(label+fmt.Sprintf("the %d regular accounts: throttled requests", st.n), "0", fmt.Sprint(st.throttled), st.throttled == 0),
		overCheck(label+fmt.Sprintf("the %d regular accounts: ", st.n), slices.DeleteFunc(slices.Clone(am.Accounts), func(f accountFigures) bool { return !regularFig(f) })),
		target(label+fmt.Sprintf("the %d accounts with working keys: rows pending after", working.n), "0",
			fmt.Sprintf("%s of %s", commas(int(working.pending)), commas(working.rows)), working.pending == 0),
	}
	for _, f := range am.Accounts {
		switch {
		case f.Disabled:
			var status []string
			for _, r := range am.RunAccounts {
				if r.Account == f.Name {
					// The reason's head (it goes on to quote the answer).
					reason, _, _ := strings.Cut(r.Reason, ": ")
					status = append(status, fmt.Sprintf("`%s` (%s)", r.Status, strings.Join(slices.DeleteFunc([]string{r.ErrorCode, reason}, func(s string) bool { return s == "" }), ": ")))
				}
			}
			if len(status) == 0 {
				status = []string{"no reconcile_run_accounts row"}
			}
			cs = append(cs,
				target(label+f.Name+" (key refused): its rows stay pending", fmt.Sprintf("all %s", commas(f.Rows)),
					fmt.Sprintf("%s of %s pending; reconcile_run_accounts: %s", commas(int(f.Pending)), commas(f.Rows), strings.Join(status, ", ")), f.Pending == int64(f.Rows)),
				info(label+f.Name+" (key refused): requests sent to it (answers)", fmt.Sprintf("%d (%s)", f.Requests, countList(f.Codes, 0))))
		case f.Limit != accountsRate:
			used := f.RateAccepted / float64(f.Limit)
			var limits []string
			for _, l := range m.Job.AccountRateLimits[f.Name] {
				limits = append(limits, fmt.Sprintf("%.1f", l))
			}
			cs = append(cs,
				info(label+fmt.Sprintf("%s (hidden limit %d): accepted rate (budget used)", f.Name, f.Limit), fmt.Sprintf("%.2f/s (%.1f%%)", f.RateAccepted, 100*used)),
				info(label+f.Name+": throttled requests (share of its requests)", fmt.Sprintf("%d (%s of %s)", f.Throttled, pct(f.Throttled, f.Requests), commas(f.Requests))),
				info(label+f.Name+": most in any 1-s window, all / accepted", fmt.Sprintf("%d / %d", f.MaxWindow, f.MaxWindowAcc)),
				info(label+f.Name+": the job's rate limit for it every 10 s (its `account progress` lines)", listOrNone(limits)),
				info(label+f.Name+": first to last request; rows pending after", fmt.Sprintf("%s; %d", secs(f.Last-f.First), f.Pending)))
		}
	}
	cs = append(cs,
		target(label+"exit code", fmt.Sprintf("%d (some accounts failed)", 7), fmt.Sprint(m.Job.Exit), m.Job.Exit == 7),
		rssInfo(m, label),
		info(label+fmt.Sprintf("aggregate of the %d regular accounts while all send", st.n), fmt.Sprintf("%.1f/s over %s", am.Steady.Rate, secs(am.Steady.Span()))),
	)
	return append(cs, runChecks(m, label)...)
}

func accountsShardChecks(label string, m *runMeasure, am *accountsMeasure, aggTarget, budget float64) []check {
	cs := accountRateChecks(label, m, am, aggTarget, budget)
	names := make([]string, len(am.Accounts))
	for i, f := range am.Accounts {
		names[i] = f.Name
	}
	sh := checkShards(names, am.ProcRuns, am.RunAccounts)
	var per []string
	for i, k := range sh.PerProc {
		per = append(per, fmt.Sprintf("%d of %d", k, sh.Expected[i]))
	}
	measured := fmt.Sprintf("%d of %d accounts worked twice; process i worked its shard's accounts: %s", len(sh.Overlap), len(names), strings.Join(per, ", "))
	for _, l := range []struct {
		what string
		list []string
	}{{"worked twice", sh.Overlap}, {"worked by none", sh.Unworked}, {"worked by another shard", sh.Misplaced}} {
		if len(l.list) > 0 {
			measured += fmt.Sprintf("; %s: %s", l.what, strings.Join(l.list, ", "))
		}
	}
	allZero := true
	var exits, procs []string
	var maxRSS int64
	var rss []string
	for i, j := range m.Procs {
		if j == nil || i >= len(sh.PerProc) {
			continue
		}
		allZero = allZero && j.Exit == 0
		exits = append(exits, fmt.Sprint(j.Exit))
		maxRSS = max(maxRSS, j.MaxRSSKiB)
		rss = append(rss, mib(j.MaxRSSKiB))
		rows := sh.PerProc[i] * each(am)
		procs = append(procs, fmt.Sprintf("%d: %d accounts, %s rows, %s, exit %d, CPU %s (%s per row), peak RSS %s",
			i, sh.PerProc[i], commas(rows), secs(j.Wall), j.Exit, secs(j.CPU()), perRow(j.CPU(), rows), mib(j.MaxRSSKiB)))
	}
	mismatch := requestMismatches(am.Accounts, am.RunAccounts)
	cs = append(cs,
		target(label+"accounts worked by two processes (reconcile_run_accounts)", "0", measured, sh.OK()),
		target(label+"all rows done", "yes (every process exits 0, 0 pending)", fmt.Sprintf("exits %s; %s pending", strings.Join(exits, ", "), commas(int(m.PendingAfter))), allZero && len(exits) == len(am.ProcRuns) && m.PendingAfter == 0),
		info(label+"peak RSS of each process (the other scenarios hold one process to 64 MiB)", fmt.Sprintf("largest %s (%s)", mib(maxRSS), strings.Join(rss, ", "))),
		info(label+"per process (--shard i/n)", strings.Join(procs, "; ")),
		info(label+"accounts whose requests at the simulator differ from those reconcile_run_accounts recorded", listOrNone(mismatch)),
	)
	// The combined job (combineJobs): wall the longest, CPU the sum.
	for _, c := range runChecks(m, label) {
		c.Metric = strings.Replace(c.Metric, "CPU per row: job", fmt.Sprintf("CPU per row: the %d jobs together", len(m.Procs)), 1)
		c.Metric = strings.Replace(c.Metric, "CPU total: job", fmt.Sprintf("CPU total: the %d jobs together", len(m.Procs)), 1)
		c.Metric = strings.Replace(c.Metric, "wall time", "wall time of the longest process", 1)
		cs = append(cs, c)
	}
	return cs
}

// rssInfo reports the job's peak RSS: the issue asks for it reported (the
// other scenarios' 64 MiB is for one account).
func rssInfo(m *runMeasure, label string) check {
	return info(label+"peak RSS of the job (the other scenarios hold it to 64 MiB)", mib(m.Job.MaxRSSKiB))
}

// each is the rows per account of a part.
func each(am *accountsMeasure) int {
	if len(am.Accounts) == 0 {
		return 0
	}
	return am.Accounts[0].Rows
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
