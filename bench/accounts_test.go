package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/reconcile/reconcile/internal/accounts"
	"github.com/reconcile/reconcile/internal/app"
	"github.com/reconcile/reconcile/internal/livesim"
)

func TestParseAccountsSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]int{"50x1800": {50, 1800}, " 3X1 ": {3, 1}, "99x10": {99, 10}} {
		if n, rows, err := parseAccountsSize(in); err != nil || n != want[0] || rows != want[1] {
			t.Errorf("parseAccountsSize(%q) = %d, %d, %v; want %v", in, n, rows, err, want)
		}
	}
	// Part B needs a slow, a refused and a regular account; names have two
	// digits.
	for _, in := range []string{"2x10", "100x10", "10x0", "10", "x10"} {
		if _, _, err := parseAccountsSize(in); err == nil {
			t.Errorf("parseAccountsSize(%q): no error", in)
		}
	}
}

func TestAccountsSim(t *testing.T) {
	t.Parallel()
	s := accountsSim(4, true)
	want := []simAccount{{Name: "acct-01", Limit: 30}, {Name: "acct-02", Limit: 30}, {Name: "acct-03", Limit: 10}, {Name: "acct-04", Limit: 30, Disabled: true}}
	if !slices.Equal(s.Accounts, want) {
		t.Fatalf("accountsSim(4, true).Accounts = %+v, want %+v", s.Accounts, want)
	}
	var regular []string
	for _, a := range s.Accounts {
		if a.regular() {
			regular = append(regular, a.Name)
		}
	}
	if !slices.Equal(regular, []string{"acct-01", "acct-02"}) {
		t.Errorf("regular accounts = %v", regular)
	}
	if got := s.String(); !strings.Contains(got, "--latency-median 300ms") || !strings.HasSuffix(got, "--accounts-file accounts.json") {
		t.Errorf("String() = %q", got)
	}
	for _, a := range accountsSim(3, false).Accounts {
		if !a.regular() {
			t.Errorf("accountsSim(3, false): %+v is not regular", a)
		}
	}
}

// TestAccountsFiles: the simulator's accounts file is what `reconcile
// simulate --accounts-file` reads, and every account's profile in the
// credentials file gives the job that account's key.
func TestAccountsFiles(t *testing.T) {
	dir := t.TempDir()
	spec := accountsSim(3, true)
	path := filepath.Join(dir, "accounts.json")
	if err := writeSimAccounts(path, spec.Accounts); err != nil {
		t.Fatal(err)
	}
	got, err := app.ReadSimAccounts(path, 99, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("ReadSimAccounts: %d accounts, want 3", len(got))
	}
	for i, a := range spec.Accounts {
		g := got[i]
		if g.Name != a.Name || g.Limit != a.Limit || g.Disabled != a.Disabled || len(g.Keys) != 1 ||
			g.Keys[0].ID != a.keyID() || g.Keys[0].Secret != a.secret() {
			t.Errorf("account %d: read %+v, wrote %+v", i, g, a)
		}
	}

	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte(credentialsFile(spec.Accounts)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", creds)
	t.Setenv("ALIBABA_CLOUD_PROFILE", "")
	for _, a := range spec.Accounts {
		p, err := providers.NewProfileCredentialsProviderBuilder().WithProfileName(a.profile()).Build()
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.GetCredentials()
		if err != nil {
			t.Fatalf("profile %s: %v", a.profile(), err)
		}
		if c.AccessKeyId != a.keyID() || c.AccessKeySecret != a.secret() {
			t.Errorf("profile %s: key %s, want %s", a.profile(), c.AccessKeyId, a.keyID())
		}
	}
}

// paced returns n entries of account acct, one every gap from start.
func paced(acct string, start time.Time, offset, gap time.Duration, n int) []livesim.Entry {
	out := make([]livesim.Entry, n)
	for i := range out {
		out[i] = livesim.Entry{Account: acct, Time: start.Add(offset + time.Duration(i)*gap), Status: 200, Action: livesim.ActionAdd}
	}
	return out
}

func TestAnalyseAccounts(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	spec := accountsSim(4, true) // 01, 02 regular; 03 hidden limit 10; 04 refused
	var entries []livesim.Entry
	// acct-01: 25/s, 51 requests from 0 s to 2 s.
	entries = append(entries, paced("acct-01", t0, 0, 40*time.Millisecond, 51)...)
	// acct-02: 25/s, 51 requests from 0.5 s to 2.5 s; its second throttled.
	a2 := paced("acct-02", t0, 500*time.Millisecond, 40*time.Millisecond, 51)
	a2[1].Fault, a2[1].Status, a2[1].Code = livesim.FaultThrottled, 400, "Throttling.User"
	entries = append(entries, a2...)
	// acct-03: 10/s.
	entries = append(entries, paced("acct-03", t0, 100*time.Millisecond, 100*time.Millisecond, 20)...)
	// acct-04: refused twice.
	for i := range 2 {
		entries = append(entries, livesim.Entry{Account: "acct-04", Time: t0.Add(time.Duration(i) * time.Millisecond), Status: 400, Code: "InvalidAccessKeyId.Inactive"})
	}
	figs, steady := analyseAccounts(entries, spec.Accounts, 100)

	a1, a2f, a3, a4 := figs[0], figs[1], figs[2], figs[3]
	if a1.Requests != 51 || a1.Accepted != 51 || a1.MaxWindow != 25 || a1.Rows != 100 || a1.RateAccepted != 25 {
		t.Errorf("acct-01: %+v", a1)
	}
	if a2f.Throttled != 1 || a2f.Accepted != 50 || a2f.Codes["Throttling.User"] != 1 || a2f.First != 500*time.Millisecond {
		t.Errorf("acct-02: %+v", a2f)
	}
	if a3.MaxWindow != 10 || a3.Limit != 10 {
		t.Errorf("acct-03: %+v", a3)
	}
	if a4.Requests != 2 || a4.Codes["InvalidAccessKeyId.Inactive"] != 2 || !a4.Disabled {
		t.Errorf("acct-04: %+v", a4)
	}
	// Regular accounts 01 and 02 both send from 0.5 s (02's first) to
	// 2 s (01's last).
	if steady.Accounts != 2 || steady.From != 500*time.Millisecond || steady.To != 2*time.Second {
		t.Fatalf("steady = %+v", steady)
	}
	// acct-01: 0.52 s … 2 s, requests 13 … 50 (38); acct-02: 0.5 s …
	// 1.98 s, requests 0 … 37 (38), one of them throttled.
	if steady.Accepted != 75 || steady.Throttled != 1 {
		t.Errorf("steady accepted %d, throttled %d; want 75, 1", steady.Accepted, steady.Throttled)
	}
	if want := 74 / 1.5; steady.Rate < want-0.01 || steady.Rate > want+0.01 {
		t.Errorf("steady rate %.2f, want %.2f", steady.Rate, want)
	}

	st := statsOf(figs, regularFig)
	if st.n != 2 || st.maxWindow != 25 || len(st.overLimit) != 0 || st.throttled != 1 {
		t.Errorf("statsOf = %+v", st)
	}
	// Six requests more in acct-01's first second put it over its limit.
	entries = append(entries, paced("acct-01", t0, time.Millisecond, time.Millisecond, 6)...)
	figs, _ = analyseAccounts(entries, spec.Accounts, 100)
	if st := statsOf(figs, regularFig); !slices.Equal(st.overLimit, []string{"acct-01"}) || st.maxWindow != 31 {
		t.Errorf("with 31 in one second: statsOf = %+v", st)
	}
	if !slices.Equal(figs[0].OverAt, []time.Duration{0}) || figs[1].OverAt != nil {
		t.Errorf("windows over the limit at %v and %v, want [0s] and none", figs[0].OverAt, figs[1].OverAt)
	}
}

func TestWindowsOver(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	// 4/s for 5 s, with two extra requests at 1.5 s and one at 3.9 s.
	entries := paced("a", t0, 0, 250*time.Millisecond, 20)
	entries = append(entries, paced("a", t0, 1500*time.Millisecond+time.Millisecond, time.Millisecond, 2)...)
	entries = append(entries, paced("a", t0, 3900*time.Millisecond, 0, 1)...)
	got := windowsOver(entries, t0, 4)
	// Windows of 5 or more start from 0.75 s to 1.5 s, and from 3 s to
	// 3.75 s: the first of each run.
	if want := []time.Duration{750 * time.Millisecond, 3 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("windowsOver = %v, want %v", got, want)
	}
	if got := windowsOver(entries, t0, 6); got != nil {
		t.Errorf("limit 6: %v, want none", got)
	}
}

func TestSteadyNoOverlap(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	spec := accountsSim(3, false)
	entries := append(paced("acct-01", t0, 0, 100*time.Millisecond, 5), paced("acct-02", t0, time.Second, 100*time.Millisecond, 5)...)
	entries = append(entries, paced("acct-03", t0, 0, 100*time.Millisecond, 20)...)
	if _, s := analyseAccounts(entries, spec.Accounts, 10); s.Rate != 0 || s.Span() != 0 {
		t.Errorf("accounts that never send at the same time: steady = %+v", s)
	}
}

func TestCheckShards(t *testing.T) {
	t.Parallel()
	var names []string
	for i := range 20 {
		names = append(names, accountName(i))
	}
	procRuns := []int64{11, 12, 13, 14}
	var rows []runAccountRow
	for _, name := range names {
		for i := range procRuns {
			if (accounts.Shard{Index: i, Count: 4}).Has(name) {
				rows = append(rows, runAccountRow{RunID: procRuns[i], Account: name, Status: "succeeded"})
			}
		}
	}
	r := checkShards(names, procRuns, rows)
	if !r.OK() || len(r.PerProc) != 4 {
		t.Fatalf("disjoint shards: %+v", r)
	}
	total := 0
	for i, k := range r.PerProc {
		total += k
		if k != r.Expected[i] {
			t.Errorf("process %d worked %d accounts, its shard holds %d", i, k, r.Expected[i])
		}
	}
	if total != len(names) {
		t.Errorf("%d accounts worked, want %d", total, len(names))
	}

	// A skipped row (another process held the account) is not working it.
	other := procRuns[(rows[0].RunID-11+1)%4] // not rows[0]'s process
	skipped := append(slices.Clone(rows), runAccountRow{RunID: other, Account: rows[0].Account, Status: "skipped"})
	if r := checkShards(names, procRuns, skipped); !r.OK() {
		t.Errorf("with a skipped row: %+v", r)
	}
	// The same account worked by a second process.
	twice := append(slices.Clone(rows), runAccountRow{RunID: other, Account: rows[0].Account, Status: "succeeded"})
	if r := checkShards(names, procRuns, twice); r.OK() || !slices.Equal(r.Overlap, []string{rows[0].Account}) ||
		!slices.Equal(r.Misplaced, []string{rows[0].Account}) {
		t.Errorf("an account worked twice: %+v", r)
	}
	// An account nobody worked.
	if r := checkShards(names, procRuns, rows[1:]); r.OK() || !slices.Equal(r.Unworked, []string{rows[0].Account}) {
		t.Errorf("an account not worked: %+v", r)
	}
	// A run the bench does not know (no process's summary named it).
	unknown := slices.Clone(rows)
	unknown[0].RunID = 99
	if r := checkShards(names, procRuns, unknown); r.OK() || !slices.Equal(r.Misplaced, []string{rows[0].Account}) {
		t.Errorf("a run of no process: %+v", r)
	}
}

func TestRequestMismatches(t *testing.T) {
	t.Parallel()
	figs := []accountFigures{{Name: "acct-01", logFigures: logFigures{Requests: 10}}, {Name: "acct-02", logFigures: logFigures{Requests: 5}}, {Name: "acct-03"}}
	rows := []runAccountRow{{RunID: 1, Account: "acct-01", Requests: 6}, {RunID: 2, Account: "acct-01", Requests: 4}, {RunID: 1, Account: "acct-02", Requests: 4}}
	if got := requestMismatches(figs, rows); !slices.Equal(got, []string{"acct-02 5/4"}) {
		t.Errorf("requestMismatches = %q", got)
	}
}

func TestCombineJobs(t *testing.T) {
	t.Parallel()
	jobs := []*jobRun{
		{Args: []string{"run", "--shard", "0/2"}, Exit: 0, Wall: 3 * time.Second, UserCPU: time.Second, SysCPU: time.Second, MaxRSSKiB: 100},
		{Args: []string{"run", "--shard", "1/2"}, Exit: 7, Wall: 5 * time.Second, UserCPU: 2 * time.Second, MaxRSSKiB: 300, BreakerPauses: 1},
	}
	c := combineJobs(jobs)
	if c.Wall != 5*time.Second || c.CPU() != 4*time.Second || c.MaxRSSKiB != 300 || c.Exit != 7 || c.BreakerPauses != 1 || c.Args[2] != "0/2" {
		t.Errorf("combineJobs = %+v", c)
	}
	if combineJobs([]*jobRun{jobs[0], nil}) != nil {
		t.Error("combineJobs with a process that did not run: want nil")
	}
}

func TestScanLogAccounts(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "job.log")
	log := `{"msg":"accounts selected","accounts":["acct-01","acct-02"]}
{"msg":"account progress","account":"acct-01","current_rate_limit":30}
{"msg":"account progress","account":"acct-02","current_rate_limit":30}
{"msg":"progress","current_rate_limit":60}
{"msg":"account progress","account":"acct-02","current_rate_limit":10.2}
{"msg":"circuit breaker: dispatch paused"}
{"msg":"summary","run_id":7,"status":"succeeded"}
{"msg":"account summary","run_id":7,"account":"acct-01","requests":3}
{"msg":"account summary","run_id":7,"account":"acct-02","requests":4}
`
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	var j jobRun
	j.scanLog(path)
	if j.Summary["msg"] != "summary" || runID(&j) != 7 {
		t.Errorf("summary = %v", j.Summary)
	}
	if !slices.Equal(j.RateLimits, []float64{60}) || j.BreakerPauses != 1 {
		t.Errorf("rate limits %v, breaker pauses %d", j.RateLimits, j.BreakerPauses)
	}
	if len(j.AccountSummaries) != 2 || j.AccountSummaries[1]["account"] != "acct-02" {
		t.Errorf("account summaries %v", j.AccountSummaries)
	}
	if !slices.Equal(j.AccountRateLimits["acct-02"], []float64{30, 10.2}) || len(j.AccountRateLimits) != 2 {
		t.Errorf("account rate limits %v", j.AccountRateLimits)
	}
}

// TestRenderAccounts renders a made-up scenario (after a JSON round trip,
// as --from-json does) and reads its verdicts.
func TestRenderAccounts(t *testing.T) {
	t.Parallel()
	n, each := 6, 100
	job := func(exit int) *jobRun {
		return &jobRun{Args: []string{"run", "--database-url", "x", "--endpoint", "y", "--log-format", "json", "--rate", "30"},
			Exit: exit, Wall: 5 * time.Second, UserCPU: time.Second, MaxRSSKiB: 30 * 1024}
	}
	figs := func(spec simSpec, rate float64, window int) []accountFigures {
		var out []accountFigures
		for _, a := range spec.Accounts {
			f := accountFigures{Name: a.Name, Limit: a.Limit, Disabled: a.Disabled, Rows: each, Done: int64(each),
				logFigures: logFigures{Requests: each, Accepted: each, RateAccepted: rate, MaxWindow: window, MaxWindowAcc: window}}
			switch {
			case a.Disabled:
				f = accountFigures{Name: a.Name, Limit: a.Limit, Disabled: true, Rows: each, Pending: int64(each),
					logFigures: logFigures{Requests: 1}, Codes: map[string]int{"InvalidAccessKeyId.Inactive": 1}}
			case a.Limit != accountsRate:
				f.RateAccepted, f.MaxWindow, f.MaxWindowAcc, f.Throttled = 9.5, 14, 10, 12
			}
			out = append(out, f)
		}
		return out
	}
	specA, specB := accountsSim(n, false), accountsSim(n, true)
	steady := steadyFigures{Accounts: n, From: time.Second, To: 4 * time.Second, Accepted: 530, Rate: 176.3}
	var names []string
	for i := range n {
		names = append(names, accountName(i))
	}
	var shardRows []runAccountRow
	for _, name := range names {
		for i := range 4 {
			if (accounts.Shard{Index: i, Count: 4}).Has(name) {
				shardRows = append(shardRows, runAccountRow{RunID: int64(10 + i), Account: name, Status: "succeeded", Requests: int64(each)})
			}
		}
	}
	sr := &scenarioResult{ID: "accounts", Rows: n * each,
		Runs: []*runMeasure{
			{Name: "accounts-a", Sim: specA, Rows: n * each, Job: job(0)},
			{Name: "accounts-b", Sim: specB, Rows: n * each, Job: job(7), logFigures: logFigures{Throttled: 12}},
			{Name: "accounts-c", Sim: specA, Rows: n * each, Job: job(0), Procs: []*jobRun{job(0), job(0), job(0), job(0)}},
		},
		Accounts: []*accountsMeasure{
			{Run: "accounts-a", Accounts: figs(specA, 29.5, 30), Steady: steady},
			{Run: "accounts-b", Accounts: figs(specB, 29.5, 31), Steady: steadyFigures{Accounts: n - 2, Rate: 117},
				RunAccounts: []runAccountRow{{RunID: 1, Account: accountName(n - 2), Status: "succeeded", Rate: 10.2},
					{RunID: 1, Account: accountName(n - 1), Status: "failed", ErrorCode: "InvalidAccessKeyId.Inactive", Reason: "credentials refused"}}},
			{Run: "accounts-c", Shards: 4, Accounts: figs(specA, 29.5, 30), Steady: steady, ProcRuns: []int64{10, 11, 12, 13}, RunAccounts: shardRows},
		},
	}
	res := &result{Machine: machine{NProc: 2}, Sizes: sizes{Accounts: n, AccountRows: each}, Scenarios: []*scenarioResult{sr}}
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back result
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	md := render(&back)
	for _, want := range []string{
		"## 8. Many accounts",
		"| A, one process: aggregate accepted rate while all accounts send | ≥ 175/s (97% of 6 × 30) | 176.3/s (97.9%; 530 requests over 3.00 s) | PASS |",
		"| A, one process: most requests to one account in any 1-s window | ≤ 30, each account | largest 30 (acct-01) | PASS |",
		"| A, one process: all rows done | yes (exit 0, 0 pending) | exit 0, 0 pending | PASS |",
		// B: the regular accounts went over 30 in one second.
		"| B, hidden limit and refused key: the 4 regular accounts: most requests to one account in any 1-s window | ≤ 30, each | largest 31 (acct-01); 4 of 4 accounts over the limit (acct-01, acct-02, acct-03, acct-04) | **FAIL** |",
		"| B, hidden limit and refused key: the 4 regular accounts: rate of the slowest | ≥ 29.10/s (97% of 30), each | 29.50/s (acct-01); median 29.50/s, fastest 29.50/s | PASS |",
		"| B, hidden limit and refused key: acct-06 (key refused): its rows stay pending | all 100 | 100 of 100 pending; reconcile_run_accounts: `failed` (InvalidAccessKeyId.Inactive: credentials refused) | PASS |",
		"| B, hidden limit and refused key: acct-05 (hidden limit 10): accepted rate (budget used) |  | 9.50/s (95.0%) |  |",
		"| B, hidden limit and refused key: exit code | 7 (some accounts failed) | 7 | PASS |",
		"| C, 4 processes: accounts worked by two processes (reconcile_run_accounts) | 0 | 0 of 6 accounts worked twice",
		"| C, 4 processes: peak RSS of each process (the other scenarios hold one process to 64 MiB) |  | largest 30.0 MiB (30.0 MiB, 30.0 MiB, 30.0 MiB, 30.0 MiB) |  |",
		"| A, one process: peak RSS of the job (the other scenarios hold it to 64 MiB) |  | 30.0 MiB |  |",
		"accounts 6 × 100 (×3 runs)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		start := strings.Index(md, "## 8.")
		t.Logf("section 8:\n%s", md[max(start, 0):])
	}
}
