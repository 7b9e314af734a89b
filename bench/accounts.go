package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reconcile/reconcile/internal/accounts"
	"github.com/reconcile/reconcile/internal/app"
	"github.com/reconcile/reconcile/internal/livesim"
)

// Scenario 8: many accounts in one run (issue 12). Every named account
// has a reconcile_accounts row (credentials = 'profile') whose profile is a
// section of a shared credentials file the bench writes, and a key of its
// own in the simulator's --accounts-file, with the API's limit of 30
// calls/s. Three parts, a fresh database and simulator each:
//
//	accounts-a: one `reconcile run --rate 30` works every account;
//	accounts-b: the same, but one account's simulator limit is a hidden
//	            10 (the job still believes 30) and one account's key is
//	            refused (disabled in the accounts file);
//	accounts-c: part A's setup worked by accountsShards processes at once
//	            (--shard i/n), one database, one simulator.
const (
	accountPrefix       = "acct-"
	accountsRate        = 30 // the job's --rate, and each account's limit at the simulator
	accountsHiddenLimit = 10 // part B: one account's limit, which the job is not told
	accountsShards      = 4  // part C: processes
	accountsShare       = 0.97
	// maxBenchAccounts bounds --accounts-size (accountName has two digits).
	maxBenchAccounts = 99
)

// accountsPart is one run of the scenario.
type accountsPart struct {
	name string
	// hidden: the second-last account has a hidden limit and the last
	// account's key is refused.
	hidden bool
	shards int // 0: one process
}

var accountsParts = []accountsPart{
	{name: "accounts-a"},
	{name: "accounts-b", hidden: true},
	{name: "accounts-c", shards: accountsShards},
}

// accountName is the name of the bench's i-th account (from 0).
func accountName(i int) string { return fmt.Sprintf("%s%02d", accountPrefix, i+1) }

// simAccount is one account of the simulator's --accounts-file as the
// bench declares it. Its key and profile derive from its name (test data,
// not a secret).
type simAccount struct {
	Name     string `json:"name"`
	Limit    int    `json:"limit"`
	Disabled bool   `json:"disabled,omitempty"`
}

func (a simAccount) keyID() string   { return "LTAIbench" + strings.ReplaceAll(a.Name, "-", "") }
func (a simAccount) secret() string  { return "benchSecret-" + a.Name + "-0123456789abcdef" }
func (a simAccount) profile() string { return "p-" + a.Name }

// regular reports whether the account is one the job can work at its
// full rate: not refused, and its limit the one the job is told.
func (a simAccount) regular() bool { return !a.Disabled && a.Limit == accountsRate }

// accountsSim is the simulator of a part: n accounts at the API's limit
// and rateSim's latency; with hidden, the second-last account's limit is
// accountsHiddenLimit and the last one's key is refused.
func accountsSim(n int, hidden bool) simSpec {
	s := simSpec{Limit: accountsRate, LatencyMedian: rateSim.LatencyMedian, LatencyP99: rateSim.LatencyP99, Seed: 1}
	for i := range n {
		s.Accounts = append(s.Accounts, simAccount{Name: accountName(i), Limit: accountsRate})
	}
	if hidden && n >= 2 {
		s.Accounts[n-2].Limit = accountsHiddenLimit
		s.Accounts[n-1].Disabled = true
	}
	return s
}

// accountNames returns the names of accts.
func accountNames(accts []simAccount) []string {
	out := make([]string, len(accts))
	for i, a := range accts {
		out[i] = a.Name
	}
	return out
}

// writeSimAccounts writes accts as `reconcile simulate --accounts-file`.
func writeSimAccounts(path string, accts []simAccount) error {
	out := make([]app.SimAccount, len(accts))
	for i, a := range accts {
		out[i] = app.SimAccount{Name: a.Name, AccessKeyID: a.keyID(), AccessKeySecret: a.secret(), Limit: &a.Limit, Disabled: a.Disabled}
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o600)
}

// credentialsFile is the shared credentials file (ini) the job reads the
// accounts' profiles from: one access_key section per account.
func credentialsFile(accts []simAccount) string {
	var sb strings.Builder
	for _, a := range accts {
		fmt.Fprintf(&sb, "[%s]\ntype = access_key\naccess_key_id = %s\naccess_key_secret = %s\n\n", a.profile(), a.keyID(), a.secret())
	}
	return sb.String()
}

// parseAccountsSize parses --accounts-size NxR: N accounts (2 to
// maxBenchAccounts; part B needs 3) of R rows each.
func parseAccountsSize(s string) (n, rows int, err error) {
	ns, rs, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	n, err1 := strconv.Atoi(ns)
	rows, err2 := strconv.Atoi(rs)
	if !ok || err1 != nil || err2 != nil || n < 3 || n > maxBenchAccounts || rows < 1 {
		return 0, 0, fmt.Errorf("--accounts-size %q: want ACCOUNTSxROWS with 3 to %d accounts and at least 1 row each, e.g. 50x1800", s, maxBenchAccounts)
	}
	return n, rows, nil
}

// accountsMeasure is what one part measured per account: from the
// simulator's log, the database after the run and reconcile_run_accounts.
type accountsMeasure struct {
	Run    string `json:"run"`              // the runMeasure's name
	Shards int    `json:"shards,omitempty"` // processes (--shard i/n); 0: one
	// Accounts are in the simulator's order (accountName).
	Accounts []accountFigures `json:"accounts"`
	// Steady is the aggregate over the regular accounts while all of them
	// were sending (see steadyOf).
	Steady steadyFigures `json:"steady"`
	// ProcRuns[i] is the run id of process i (from its summary line; 0:
	// unknown).
	ProcRuns    []int64         `json:"proc_runs,omitempty"`
	RunAccounts []runAccountRow `json:"run_accounts"`
}

// accountFigures is one account's part of a run.
type accountFigures struct {
	Name     string `json:"name"`
	Limit    int    `json:"limit"` // the simulator's
	Disabled bool   `json:"disabled,omitempty"`
	Rows     int    `json:"rows"` // desired rows
	// The account's requests in the simulator's log (its rate:
	// RateAccepted), and the error codes answered.
	logFigures
	Codes map[string]int `json:"codes,omitempty"`
	// First and Last are its first and last accepted arrivals, from the
	// run's first request (any account's).
	First time.Duration `json:"first"`
	Last  time.Duration `json:"last"`
	// OverAt are the starts of the 1-second windows in which the account
	// had more requests than its limit (from the run's first request; the
	// first of each run of overlapping windows).
	OverAt []time.Duration `json:"over_at,omitempty"`
	// Pending and Done are the account's desired rows after the run.
	Pending int64 `json:"pending"`
	Done    int64 `json:"done"`
}

// steadyFigures is the aggregate rate of some accounts over the time all
// of them were sending: from the latest of their first accepted arrivals
// to the earliest of their last ones (offsets from the run's first
// request).
type steadyFigures struct {
	Accounts  int           `json:"accounts"`
	From      time.Duration `json:"from"`
	To        time.Duration `json:"to"`
	Accepted  int           `json:"accepted"`  // arrivals in [From, To]
	Throttled int           `json:"throttled"` // throttled arrivals in [From, To]
	Rate      float64       `json:"rate"`      // (Accepted − 1) / (To − From)
}

// Span is the steady part's length.
func (s steadyFigures) Span() time.Duration { return s.To - s.From }

// runAccountRow is one row of reconcile_run_accounts.
type runAccountRow struct {
	RunID     int64   `json:"run_id" db:"run_id"`
	Account   string  `json:"account" db:"account"` // "" the default account
	Status    string  `json:"status" db:"status"`
	Reason    string  `json:"reason,omitempty" db:"reason"`
	ErrorCode string  `json:"error_code,omitempty" db:"error_code"`
	Pending   int64   `json:"pending" db:"pending"`
	Done      int64   `json:"done" db:"done"`
	NotDone   int64   `json:"not_done" db:"not_done"`
	Requests  int64   `json:"requests" db:"requests"`
	Throttled int64   `json:"throttled" db:"throttled"`
	Rate      float64 `json:"rate" db:"rate"`
}

// worked reports whether the run took the account up (not skipped).
func (r runAccountRow) worked() bool { return r.Status != "skipped" }

func (m *accountsMeasure) account(name string) *accountFigures {
	for i := range m.Accounts {
		if m.Accounts[i].Name == name {
			return &m.Accounts[i]
		}
	}
	return nil
}

// analyseAccounts computes each account's figures and the regular
// accounts' steady aggregate from the simulator's log.
func analyseAccounts(entries []livesim.Entry, spec []simAccount, rowsEach int) ([]accountFigures, steadyFigures) {
	byAcct := map[string][]livesim.Entry{}
	var t0 time.Time
	for _, e := range entries {
		byAcct[e.Account] = append(byAcct[e.Account], e)
		if t0.IsZero() || e.Time.Before(t0) {
			t0 = e.Time
		}
	}
	figs := make([]accountFigures, len(spec))
	var regular []*accountFigures
	for i, a := range spec {
		f := &figs[i]
		*f = accountFigures{Name: a.Name, Limit: a.Limit, Disabled: a.Disabled, Rows: rowsEach}
		f.analyse(byAcct[a.Name])
		n := 0
		for _, e := range byAcct[a.Name] {
			if e.Code != "" && e.Status != 0 {
				if f.Codes == nil {
					f.Codes = map[string]int{}
				}
				f.Codes[e.Code]++
			}
			if e.Fault == livesim.FaultThrottled {
				continue
			}
			if d := e.Time.Sub(t0); n == 0 || d < f.First {
				f.First = d
			}
			f.Last = max(f.Last, e.Time.Sub(t0))
			n++
		}
		if a.Limit > 0 {
			f.OverAt = windowsOver(byAcct[a.Name], t0, a.Limit)
		}
		if a.regular() {
			regular = append(regular, f)
		}
	}
	return figs, steadyOf(entries, t0, regular)
}

// windowsOver returns where the 1-second windows of entries that hold more
// than limit requests start, from t0, at most one a second: the first such
// window, then the first that starts a second or more after the last one
// listed.
func windowsOver(entries []livesim.Entry, t0 time.Time, limit int) []time.Duration {
	ts := make([]time.Duration, len(entries))
	for i, e := range entries {
		ts[i] = e.Time.Sub(t0)
	}
	slices.Sort(ts)
	var out []time.Duration
	end := 0 // ts[i:end] is the window that starts at ts[i]
	for i, start := range ts {
		for end < len(ts) && ts[end] < start+time.Second {
			end++
		}
		if end-i > limit && (len(out) == 0 || start >= out[len(out)-1]+time.Second) {
			out = append(out, start)
		}
	}
	return out
}

// steadyOf is the aggregate of accts (figures with First and Last set)
// over the time all of them were sending: accepted arrivals of those
// accounts between the latest first and the earliest last accepted
// arrival, (n − 1) over that span as rateOf does.
func steadyOf(entries []livesim.Entry, t0 time.Time, accts []*accountFigures) steadyFigures {
	s := steadyFigures{Accounts: len(accts)}
	if len(accts) == 0 {
		return s
	}
	in := map[string]bool{}
	from, to := time.Duration(0), time.Duration(1<<62)
	for _, f := range accts {
		if f.Accepted < 2 {
			return s // an account that never really sent: no steady part
		}
		in[f.Name] = true
		from, to = max(from, f.First), min(to, f.Last)
	}
	if to <= from {
		return s
	}
	s.From, s.To = from, to
	for _, e := range entries {
		d := e.Time.Sub(t0)
		if !in[e.Account] || d < from || d > to {
			continue
		}
		if e.Fault == livesim.FaultThrottled {
			s.Throttled++
		} else {
			s.Accepted++
		}
	}
	s.Rate = float64(s.Accepted-1) / (to - from).Seconds()
	return s
}

// shardReport says how the processes of a sharded part split the accounts
// (from reconcile_run_accounts): accounts worked by more than one run, by
// none, or by a process of another shard than its hash's.
type shardReport struct {
	Overlap, Unworked, Misplaced []string
	// PerProc[i] is how many accounts process i worked; Expected[i] how
	// many its shard holds.
	PerProc, Expected []int
}

// OK reports whether every account was worked by exactly the process of
// its shard.
func (r shardReport) OK() bool {
	return len(r.Overlap) == 0 && len(r.Unworked) == 0 && len(r.Misplaced) == 0 && slices.Equal(r.PerProc, r.Expected)
}

// checkShards compares the runs' accounts with the shards: process i ran
// --shard i/len(procRuns) as run procRuns[i].
func checkShards(names []string, procRuns []int64, rows []runAccountRow) shardReport {
	n := len(procRuns)
	r := shardReport{PerProc: make([]int, n), Expected: make([]int, n)}
	proc := map[int64]int{}
	for i, id := range procRuns {
		proc[id] = i
	}
	runs := map[string][]int64{}
	for _, row := range rows {
		if row.worked() {
			runs[row.Account] = append(runs[row.Account], row.RunID)
		}
	}
	for _, name := range names {
		want := -1
		for i := range n {
			if (accounts.Shard{Index: i, Count: n}).Has(name) {
				want = i
				r.Expected[i]++
			}
		}
		ids := runs[name]
		switch {
		case len(ids) == 0:
			r.Unworked = append(r.Unworked, name)
		case len(ids) > 1:
			r.Overlap = append(r.Overlap, name)
		}
		for _, id := range ids {
			i, ok := proc[id]
			if !ok || i != want {
				r.Misplaced = append(r.Misplaced, name)
				continue
			}
			r.PerProc[i]++
		}
	}
	return r
}

// requestMismatches lists the accounts whose requests at the simulator
// differ from the requests reconcile_run_accounts recorded for them (all
// runs), as "name sim/recorded".
func requestMismatches(figs []accountFigures, rows []runAccountRow) []string {
	recorded := map[string]int64{}
	for _, row := range rows {
		recorded[row.Account] += row.Requests
	}
	var out []string
	for _, f := range figs {
		if int64(f.Requests) != recorded[f.Name] {
			out = append(out, fmt.Sprintf("%s %d/%d", f.Name, f.Requests, recorded[f.Name]))
		}
	}
	return out
}

// runID reads the run id from a job's summary line (0: none).
func runID(j *jobRun) int64 {
	if j == nil {
		return 0
	}
	v, _ := j.Summary["run_id"].(float64)
	return int64(v)
}

func (b *bench) scenarioAccounts(ctx context.Context, sr *scenarioResult) error {
	sr.Rows = b.sz.Accounts * b.sz.AccountRows
	for _, part := range accountsParts {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := b.accountsRun(ctx, sr, part); err != nil {
			return fmt.Errorf("%s: %w", part.name, err)
		}
	}
	return nil
}

// accountsRun measures one part: a fresh database with the accounts and
// their rows, a simulator with their keys, and the job (one process, or
// one per shard at once).
func (b *bench) accountsRun(ctx context.Context, sr *scenarioResult, part accountsPart) error {
	n, each := b.sz.Accounts, b.sz.AccountRows
	spec := accountsSim(n, part.hidden)
	names := accountNames(spec.Accounts)
	d, err := b.freshDBAccounts(ctx, sr, "accounts", n*each, 3, names)
	if err != nil {
		return err
	}
	defer d.drop()
	if err := d.addProfileAccounts(ctx, spec.Accounts); err != nil {
		return err
	}
	creds := filepath.Join(b.tmp, part.name+"-credentials")
	if err := os.WriteFile(creds, []byte(credentialsFile(spec.Accounts)), 0o600); err != nil {
		return err
	}
	sim, err := b.startSim(ctx, part.name, spec)
	if err != nil {
		return err
	}
	defer sim.stop()
	// Debug level adds one "account progress" line per account and
	// --progress-interval: each account's adaptive rate over the run.
	args := []string{"--rate", strconv.Itoa(accountsRate), "--log-level", "debug"}
	argsList := [][]string{args}
	if part.shards > 0 {
		argsList = nil
		for i := range part.shards {
			argsList = append(argsList, append(slices.Clone(args), "--shard", fmt.Sprintf("%d/%d", i, part.shards)))
		}
	}
	m, entries, err := b.jobsOnSim(ctx, d, sim, part.name, spec, n*each, argsList, []string{"ALIBABA_CLOUD_CREDENTIALS_FILE=" + creds}, nil)
	if m != nil {
		sr.Runs = append(sr.Runs, m)
		if part.shards > 0 && m.Job != nil {
			// The processes' arguments differ in --shard's value, the last.
			m.Job.Args = append(slices.Clone(m.Job.Args[:len(m.Job.Args)-1]), fmt.Sprintf("i/%d", part.shards))
		}
	}
	if err != nil {
		return err
	}
	sim.stop()
	m.SimRusage = sim.rusage
	m.analyse(entries)
	if m.PendingAfter, m.DoneAfter, err = d.count(ctx); err != nil {
		return err
	}
	am := &accountsMeasure{Run: part.name, Shards: part.shards}
	am.Accounts, am.Steady = analyseAccounts(entries, spec.Accounts, each)
	counts, err := d.accountCounts(ctx)
	if err != nil {
		return err
	}
	for i := range am.Accounts {
		c := counts[am.Accounts[i].Name]
		am.Accounts[i].Pending, am.Accounts[i].Done = c[0], c[1]
	}
	if am.RunAccounts, err = d.runAccounts(ctx); err != nil {
		return err
	}
	for _, j := range m.Procs {
		am.ProcRuns = append(am.ProcRuns, runID(j))
	}
	sr.Accounts = append(sr.Accounts, am)
	b.logf("   %d accounts: %d requests (%d throttled), steady %.1f calls/s over %s (%d accounts), max %d in 1 s, exit %d, pending after: %d",
		n, m.Requests, m.Throttled, am.Steady.Rate, am.Steady.Span().Round(100*time.Millisecond), am.Steady.Accounts,
		m.MaxWindow, m.Job.Exit, m.PendingAfter)
	if len(entries) == 0 {
		return errors.New("the simulator logged no request")
	}
	return nil
}
