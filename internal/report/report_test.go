package report_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/report"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// addRun records a run started 60 s ago with results finished one second
// apart, and finishes it with status (a running run stays running).
func addRun(t *testing.T, pool *pgxpool.Pool, status string, rs []model.Result, c db.RunCounters) int64 {
	t.Helper()
	ctx := testutil.Context(t)
	start := db.RunRunning
	if status == db.RunDryRun {
		start = db.RunDryRun
	}
	id, err := db.BeginRun(ctx, pool, db.RunStart{Status: start, Rate: 25, Concurrency: 32, HostName: "job-7", Version: "v2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	var started time.Time
	if err := pool.QueryRow(ctx, `UPDATE reconcile_runs SET started_at = now() - interval '60 seconds' WHERE id = $1 RETURNING started_at`, id).Scan(&started); err != nil {
		t.Fatal(err)
	}
	for i := range rs {
		rs[i].Fingerprint = "fp"
		rs[i].FinishedAt = started.Add(time.Duration(i+1) * time.Second)
	}
	if _, err := db.WriteOutcomes(ctx, pool, id, rs, c); err != nil {
		t.Fatal(err)
	}
	if status != db.RunRunning {
		if err := db.FinishRun(ctx, pool, id, status, "", 0); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func results() []model.Result {
	rs := []model.Result{
		{Domain: "a.example.com", Outcome: model.OutcomeApplied, Attempts: 1},
		{Domain: "b.example.com", Outcome: model.OutcomeApplied, Attempts: 3},
		{Domain: "c.example.com", Outcome: model.OutcomeAlreadyExists, ErrorCode: "ConfigAlreadyExists", Attempts: 1},
		{Domain: "v.example.com", Outcome: model.OutcomeInvalid, ErrorCode: "Invalid.notify_url",
			ErrorMessage: "row \"v.example.com\": notify_url: is empty"},
	}
	for i := range 6 {
		rs = append(rs, model.Result{Domain: fmt.Sprintf("t%d.example.com", i), Outcome: model.OutcomeFailed,
			ErrorCode: "Throttling.User", ErrorMessage: "Request was denied\ndue to throttling.", HTTPStatus: 429, Attempts: 5})
	}
	return rs
}

func TestBuild(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	pool := tdb.Pool
	ctx := testutil.Context(t)
	if _, err := report.Build(ctx, pool, 0); !errors.Is(err, db.ErrRunNotFound) {
		t.Fatalf("Build with no run = %v, want ErrRunNotFound", err)
	}
	old := addRun(t, pool, db.RunSucceeded, []model.Result{{Domain: "a.example.com", Outcome: model.OutcomeApplied, Attempts: 1}}, db.RunCounters{Requests: 1})
	main := addRun(t, pool, db.RunSucceeded, results(), db.RunCounters{Requests: 40, Throttled: 9, InvalidUnchanged: 2})
	dry := addRun(t, pool, db.RunDryRun, nil, db.RunCounters{})

	for _, tc := range []struct {
		name    string
		id      int64
		wantID  int64
		wantErr error
	}{
		{"latest non-dry run", 0, main, nil},
		{"by id", old, old, nil},
		{"a dry run by id", dry, dry, nil},
		{"unknown id", 999, 0, db.ErrRunNotFound},
		{"negative id", -1, 0, db.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := report.Build(ctx, pool, tc.id)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Build(%d) = %v, want %v", tc.id, err, tc.wantErr)
				}
				return
			}
			if err != nil || r.Run.ID != tc.wantID {
				t.Fatalf("Build(%d) = run %d, %v; want run %d", tc.id, r.Run.ID, err, tc.wantID)
			}
		})
	}

	r, err := report.Build(ctx, pool, main)
	if err != nil {
		t.Fatal(err)
	}
	if r.Run.Kind != "run" || r.Run.Status != "succeeded" || r.Run.FinishedAt == nil || r.Run.DurationSeconds < 59 ||
		r.Run.HostName != "job-7" || r.Run.Version != "v2.0.0" || r.Run.Rate != 25 || r.Run.Concurrency != 32 {
		t.Errorf("run = %+v", r.Run)
	}
	if r.Done != 3 || r.NotDone != 7 || r.InvalidUnchanged != 2 || r.Requests != 40 || r.Throttled != 9 ||
		r.RequestsPerSecond <= 0 || r.RequestsPerSecond > 1 {
		t.Errorf("totals = done %d not done %d invalid_unchanged %d requests %d throttled %d rps %v",
			r.Done, r.NotDone, r.InvalidUnchanged, r.Requests, r.Throttled, r.RequestsPerSecond)
	}
	f := func(v float64) *float64 { return &v }
	wantOutcomes := []report.Outcome{
		{Outcome: "applied", Count: 2, Attempts: 4, MaxAttempts: 3, FirstSeconds: f(1), LastSeconds: f(2)},
		{Outcome: "already_exists", Count: 1, Attempts: 1, MaxAttempts: 1, FirstSeconds: f(3), LastSeconds: f(3)},
		{Outcome: "updated"},
		{Outcome: "invalid", Count: 1, FirstSeconds: f(4), LastSeconds: f(4)},
		{Outcome: "failed", Count: 6, Attempts: 30, MaxAttempts: 5, FirstSeconds: f(5), LastSeconds: f(10)},
	}
	if !reflect.DeepEqual(r.Outcomes, wantOutcomes) {
		t.Errorf("outcomes = %s\nwant %s", jsonOf(r.Outcomes), jsonOf(wantOutcomes))
	}
	wantFailures := []report.Failure{
		{Outcome: "failed", ErrorCode: "Throttling.User", Count: 6,
			SampleDomains: []string{"t0.example.com", "t1.example.com", "t2.example.com", "t3.example.com", "t4.example.com"},
			SampleMessage: "Request was denied\ndue to throttling.", Account: "default"},
		{Outcome: "invalid", ErrorCode: "Invalid.notify_url", Count: 1, SampleDomains: []string{"v.example.com"},
			SampleMessage: "row \"v.example.com\": notify_url: is empty", Account: "default"},
	}
	if !reflect.DeepEqual(r.Failures, wantFailures) {
		t.Errorf("failures = %s\nwant %s", jsonOf(r.Failures), jsonOf(wantFailures))
	}

	// A verify run lists its own outcomes.
	verify := addRun(t, pool, db.RunSucceeded, []model.Result{
		{Domain: "a.example.com", Outcome: model.OutcomeInSync, Attempts: 1},
		{Domain: "b.example.com", Outcome: model.OutcomeDrifted, ErrorCode: "Drifted", ErrorMessage: "notify_url differs", Attempts: 1},
	}, db.RunCounters{Requests: 2})
	r, err = report.Build(ctx, pool, verify)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range r.Outcomes {
		names = append(names, o.Outcome)
	}
	if got := strings.Join(names, " "); got != "applied already_exists updated invalid failed drifted in_sync" {
		t.Errorf("verify run outcomes: %s", got)
	}
	if len(r.Failures) != 1 || r.Failures[0].Outcome != "drifted" || r.Done != 1 || r.NotDone != 1 {
		t.Errorf("verify run: failures %+v, done %d, not done %d", r.Failures, r.Done, r.NotDone)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestWrite(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	id := addRun(t, tdb.Pool, db.RunSucceeded, results(), db.RunCounters{Requests: 40, Throttled: 9, InvalidUnchanged: 2})
	running := addRun(t, tdb.Pool, db.RunRunning, nil, db.RunCounters{})
	r, err := report.Build(testutil.Context(t), tdb.Pool, id)
	if err != nil {
		t.Fatal(err)
	}

	var table bytes.Buffer
	if err := r.Write(&table, report.FormatTable); err != nil {
		t.Fatal(err)
	}
	out := table.String()
	for _, want := range []string{
		fmt.Sprintf("Run %d (run): succeeded\n", id),
		"  requests  40 (9 throttled)",
		"--rate 25, --concurrency 32",
		"  host      job-7, reconcile v2.0.0",
		"  applied                2         4             3    +1s   +2s\n",
		"  invalid_unchanged      2\n",
		"done 3, not done 7",
		"FAILURES BY ERROR CODE",
		"failed   Throttling.User     6      t0.example.com t1.example.com t2.example.com t3.example.com t4.example.com …",
		`e.g. "Request was denied due to throttling."`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for i, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("line %d ends with spaces: %q", i+1, l)
		}
	}

	var js bytes.Buffer
	if err := r.Write(&js, report.FormatJSON); err != nil {
		t.Fatal(err)
	}
	var back report.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON: %v\n%s", err, js.String())
	}
	if back.Run.ID != id || len(back.Outcomes) != len(r.Outcomes) || len(back.Failures) != 2 || back.Requests != 40 {
		t.Errorf("JSON round trip: %+v", back)
	}

	var c bytes.Buffer
	if err := r.Write(&c, report.FormatCSV); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&c).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v", err)
	}
	if strings.Join(recs[0], ",") != report.CSVHeader {
		t.Errorf("CSV header %v", recs[0])
	}
	values := map[string]string{}
	for _, rec := range recs[1:] {
		if len(rec) != 4 {
			t.Fatalf("CSV record %v", rec)
		}
		values[rec[0]+"|"+rec[1]+"|"+rec[2]] = rec[3]
	}
	for k, want := range map[string]string{
		"run||status":                                       "succeeded",
		"run||requests":                                     "40",
		"outcome|failed|count":                              "6",
		"outcome|failed|last_seconds":                       "10",
		"failure|failed/Throttling.User|count":              "6",
		"failure|invalid/Invalid.notify_url|sample_domains": "v.example.com",
		"failure|failed/Throttling.User|sample_message":     "Request was denied\ndue to throttling.",
	} {
		if values[k] != want {
			t.Errorf("CSV %s = %q, want %q", k, values[k], want)
		}
	}

	if err := r.Write(&c, "xml"); err == nil {
		t.Error("Write in an unknown format succeeded")
	}

	// A running run without outcomes.
	r, err = report.Build(testutil.Context(t), tdb.Pool, running)
	if err != nil {
		t.Fatal(err)
	}
	table.Reset()
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(run): running", "finished  not yet", "No failures."} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("running run's table lacks %q:\n%s", want, table.String())
		}
	}
}

// setOutcomeAccounts stores each result's account on its outcome of run id
// (whatever WriteOutcomes did with it).
func setOutcomeAccounts(t *testing.T, pool *pgxpool.Pool, id int64, rs []model.Result) {
	t.Helper()
	for _, r := range rs {
		var a any
		if r.Account != "" {
			a = r.Account
		}
		if _, err := pool.Exec(testutil.Context(t), `UPDATE reconcile_outcomes SET account = $3 WHERE run_id = $1 AND domain_name = $2`,
			id, r.Domain, a); err != nil {
			t.Fatal(err)
		}
	}
}

// addRunAccount records one row of reconcile_run_accounts for run id,
// started 50 s ago and, unless running, finished 20 s later.
func addRunAccount(t *testing.T, pool *pgxpool.Pool, id int64, account, status, reason, code string, counts [6]int64, rate any) {
	t.Helper()
	var a, r, c any
	if account != "" {
		a = account
	}
	if reason != "" {
		r = reason
	}
	if code != "" {
		c = code
	}
	_, err := pool.Exec(testutil.Context(t), `INSERT INTO reconcile_run_accounts (run_id, account, status, reason, error_code,
pending, done, not_done, requests, throttled, rate, started_at, finished_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() - interval '50 seconds',
        CASE WHEN $3 <> 'running' THEN now() - interval '30 seconds' END)`,
		id, a, status, r, c, counts[0], counts[1], counts[2], counts[3], counts[4], rate)
	if err != nil {
		t.Fatal(err)
	}
}

// accountRun records a run over three accounts: the default one (done),
// tenant-a (some failed, with the same error code as the default
// account's), tenant-b (stopped: credentials refused) and tenant-off
// (skipped: disabled).
func accountRun(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	rs := []model.Result{
		{Domain: "a.example.com", Outcome: model.OutcomeApplied, Attempts: 1},
		{Domain: "b.example.com", Outcome: model.OutcomeFailed, ErrorCode: "Throttling.User", ErrorMessage: "Request was denied.", Attempts: 5},
		{Domain: "c.example.com", Outcome: model.OutcomeApplied, Attempts: 1, Account: "tenant-a"},
		{Domain: "d.example.com", Outcome: model.OutcomeFailed, ErrorCode: "Throttling.User", ErrorMessage: "Request was denied.", Attempts: 5, Account: "tenant-a"},
		{Domain: "e.example.com", Outcome: model.OutcomeFailed, ErrorCode: "Throttling.User", ErrorMessage: "Request was denied.", Attempts: 5, Account: "tenant-a"},
		{Domain: "f.example.com", Outcome: model.OutcomeInvalid, ErrorCode: "Invalid.notify_url", ErrorMessage: "row \"f.example.com\": notify_url: is empty", Account: "tenant-a"},
	}
	id := addRun(t, pool, db.RunFailed, rs, db.RunCounters{Requests: 17, Throttled: 4})
	setOutcomeAccounts(t, pool, id, rs)
	addRunAccount(t, pool, id, "", "succeeded", "", "", [6]int64{2, 1, 1, 6, 1}, 25)
	addRunAccount(t, pool, id, "tenant-a", "succeeded", "", "", [6]int64{4, 1, 3, 11, 3}, 12.5)
	addRunAccount(t, pool, id, "tenant-b", "failed", "credentials refused: AssumeRole was denied", "NoPermission", [6]int64{7, 0, 0, 1, 0}, nil)
	addRunAccount(t, pool, id, "tenant-off", "skipped", "disabled", "", [6]int64{}, nil)
	return id
}

func TestBuildAccounts(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	id := accountRun(t, tdb.Pool)
	r, err := report.Build(ctx, tdb.Pool, id)
	if err != nil {
		t.Fatal(err)
	}
	if !r.MultiAccount() || len(r.Accounts) != 4 {
		t.Fatalf("accounts = %s", jsonOf(r.Accounts))
	}
	type brief struct {
		Account, Status, Reason, ErrorCode         string
		Pending, Done, NotDone, Requests, Throttle int64
		Rate                                       any
		Finished                                   bool
		Outcomes                                   map[string]int64
	}
	var got []brief
	for _, a := range r.Accounts {
		var rate any
		if a.Rate != nil {
			rate = *a.Rate
		}
		got = append(got, brief{a.Account, a.Status, a.Reason, a.ErrorCode, a.Pending, a.Done, a.NotDone, a.Requests,
			a.Throttled, rate, a.FinishedAt != nil, a.Outcomes})
		if a.FinishedAt != nil && (a.DurationSeconds < 19 || a.DurationSeconds > 21) {
			t.Errorf("%s took %v s, want 20", a.Account, a.DurationSeconds)
		}
	}
	want := []brief{
		{"default", "succeeded", "", "", 2, 1, 1, 6, 1, 25.0, true, map[string]int64{"applied": 1, "failed": 1}},
		{"tenant-a", "succeeded", "", "", 4, 1, 3, 11, 3, 12.5, true, map[string]int64{"applied": 1, "failed": 2, "invalid": 1}},
		{"tenant-b", "failed", "credentials refused: AssumeRole was denied", "NoPermission", 7, 0, 0, 1, 0, nil, true, map[string]int64{}},
		{"tenant-off", "skipped", "disabled", "", 0, 0, 0, 0, 0, nil, true, map[string]int64{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("accounts:\n got %+v\nwant %+v", got, want)
	}
	// One failure group per (outcome, code, account).
	var groups []string
	for _, f := range r.Failures {
		groups = append(groups, fmt.Sprintf("%s %s/%s %d %v", f.Account, f.Outcome, f.ErrorCode, f.Count, f.SampleDomains))
	}
	wantGroups := []string{
		"tenant-a failed/Throttling.User 2 [d.example.com e.example.com]",
		"default failed/Throttling.User 1 [b.example.com]",
		"tenant-a invalid/Invalid.notify_url 1 [f.example.com]",
	}
	if !slices.Equal(groups, wantGroups) {
		t.Errorf("failures:\n got %q\nwant %q", groups, wantGroups)
	}
}

func TestWriteAccounts(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	id := accountRun(t, tdb.Pool)
	r, err := report.Build(testutil.Context(t), tdb.Pool, id)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := r.Write(&table, report.FormatTable); err != nil {
		t.Fatal(err)
	}
	out := table.String()
	for _, want := range []string{
		"done 2, not done 4; invalid_unchanged rows",
		"\n\nACCOUNTS\n" +
			"  ACCOUNT     STATUS       PENDING  DONE  NOT DONE  REQUESTS  THROTTLED  RATE  TOOK\n" +
			"  default     succeeded          2     1         1         6          1    25   20s\n" +
			"  tenant-a    succeeded          4     1         3        11          3  12.5   20s\n" +
			"  tenant-b    failed             7     0         0         1          0     -   20s\n" +
			"  tenant-off  skipped            0     0         0         0          0     -   20s\n" +
			"  tenant-b: \"credentials refused: AssumeRole was denied (error code NoPermission)\"\n" +
			"  tenant-off: \"disabled\"\n\n" +
			"OUTCOMES BY ACCOUNT\n" +
			"  ACCOUNT     APPLIED  ALREADY_EXISTS  UPDATED  INVALID  FAILED\n" +
			"  default           1               0        0        0       1\n" +
			"  tenant-a          1               0        0        1       2\n" +
			"  tenant-b          0               0        0        0       0\n" +
			"  tenant-off        0               0        0        0       0\n\n" +
			"FAILURES BY ERROR CODE\n" +
			"ACCOUNT   OUTCOME  ERROR CODE          COUNT  SAMPLE DOMAINS\n" +
			"tenant-a  failed   Throttling.User     2      d.example.com e.example.com\n" +
			"                                              e.g. \"Request was denied.\"\n" +
			"default   failed   Throttling.User     1      b.example.com\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for i, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("line %d ends with spaces: %q", i+1, l)
		}
	}

	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Accounts []map[string]any `json:"accounts"`
		Failures []map[string]any `json:"failures"`
	}
	if err := json.Unmarshal(js.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	b := raw.Accounts[2]
	if len(raw.Accounts) != 4 || b["account"] != "tenant-b" || b["status"] != "failed" || b["error_code"] != "NoPermission" ||
		b["rate"] != nil || b["pending"] != 7.0 || raw.Accounts[1]["rate"] != 12.5 ||
		raw.Accounts[1]["outcomes"].(map[string]any)["failed"] != 2.0 || raw.Failures[0]["account"] != "tenant-a" {
		t.Errorf("JSON: %s", js.String())
	}
	var back report.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || !reflect.DeepEqual(jsonOf(back), jsonOf(r)) {
		t.Errorf("JSON round trip (%v)", err)
	}

	var c bytes.Buffer
	if err := r.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	values := csvValues(t, c.String())
	for k, want := range map[string]string{
		"failure|tenant-a:failed/Throttling.User|count":   "2",
		"failure|tenant-a:failed/Throttling.User|account": "tenant-a",
		"failure|failed/Throttling.User|count":            "1",
		"failure|failed/Throttling.User|account":          "default",
		"account|tenant-b|status":                         "failed",
		"account|tenant-b|reason":                         "credentials refused: AssumeRole was denied",
		"account|tenant-b|error_code":                     "NoPermission",
		"account|tenant-b|rate":                           "",
		"account|tenant-a|rate":                           "12.5",
		"account|tenant-a|not_done":                       "3",
		"account|tenant-a|outcome.failed":                 "2",
		"account|default|outcome.applied":                 "1",
		"account|tenant-off|status":                       "skipped",
	} {
		if got, ok := values[k]; !ok || got != want {
			t.Errorf("CSV %s = %q (%v), want %q", k, got, ok, want)
		}
	}
}

// csvValues reads a CSV report into section|name|field → value, failing on
// a repeated key.
func csvValues(t *testing.T, text string) map[string]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v", err)
	}
	if strings.Join(recs[0], ",") != report.CSVHeader {
		t.Errorf("CSV header %v", recs[0])
	}
	values := map[string]string{}
	for _, rec := range recs[1:] {
		k := rec[0] + "|" + rec[1] + "|" + rec[2]
		if _, dup := values[k]; dup {
			t.Errorf("CSV repeats %s", k)
		}
		values[k] = rec[3]
	}
	return values
}

// goldenBeforeAccounts is the table of results() as the report printed it
// before accounts existed (its times fixed).
const goldenBeforeAccounts = `Run %d (run): succeeded
  started   2026-05-01T02:00:00Z
  finished  2026-05-01T02:01:00Z (took 1m0s)
  requests  40 (9 throttled), 0.7/s achieved; --rate 25, --concurrency 32
  host      job-7, reconcile v2.0.0

  OUTCOME            COUNT  ATTEMPTS  MAX ATTEMPTS  FIRST  LAST
  applied                2         4             3    +1s   +2s
  already_exists         1         1             1    +3s   +3s
  updated                0         0             0      -     -
  invalid                1         0             0    +4s   +4s
  failed                 6        30             5    +5s  +10s
  invalid_unchanged      2
done 3, not done 7; invalid_unchanged rows were invalid before with the same values (counted, not re-sent)

FAILURES BY ERROR CODE
OUTCOME  ERROR CODE          COUNT  SAMPLE DOMAINS
failed   Throttling.User     6      t0.example.com t1.example.com t2.example.com t3.example.com t4.example.com …
                                    e.g. "Request was denied due to throttling."
invalid  Invalid.notify_url  1      v.example.com
                                    e.g. "row \"v.example.com\": notify_url: is empty"
`

// A run from before schema 7 (no reconcile_run_accounts rows, outcomes
// without an account) renders as it did: no account in the table or the
// CSV. A run of the default account alone after schema 7 gets the same
// table.
func TestWriteBeforeAccounts(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	old := addRun(t, tdb.Pool, db.RunSucceeded, results(), db.RunCounters{Requests: 40, Throttled: 9, InvalidUnchanged: 2})
	now := addRun(t, tdb.Pool, db.RunSucceeded, results(), db.RunCounters{Requests: 40, Throttled: 9, InvalidUnchanged: 2})
	addRunAccount(t, tdb.Pool, now, "", "succeeded", "", "", [6]int64{10, 3, 7, 40, 9}, 25)
	for _, id := range []int64{old, now} {
		r, err := report.Build(ctx, tdb.Pool, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.MultiAccount() {
			t.Errorf("run %d: MultiAccount", id)
		}
		r.Run.StartedAt = time.Date(2026, 5, 1, 2, 0, 0, 0, time.UTC)
		f := r.Run.StartedAt.Add(time.Minute)
		r.Run.FinishedAt, r.Run.DurationSeconds, r.RequestsPerSecond = &f, 60, 40.0/60
		var table bytes.Buffer
		if err := r.WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(goldenBeforeAccounts, id); table.String() != want {
			t.Errorf("run %d table:\n%s\nwant:\n%s", id, table.String(), want)
		}
		var c bytes.Buffer
		if err := r.WriteCSV(&c); err != nil {
			t.Fatal(err)
		}
		values := csvValues(t, c.String())
		_, hasAccount := values["failure|failed/Throttling.User|account"]
		if hasAccount != (id == now) {
			t.Errorf("run %d: failure account line %v", id, hasAccount)
		}
		if id == old && (len(r.Accounts) != 0 || strings.Contains(c.String(), "\naccount,")) {
			t.Errorf("run from before schema 7 has accounts: %+v\n%s", r.Accounts, c.String())
		}
		if id == now && (len(r.Accounts) != 1 || r.Accounts[0].Account != "default" || values["account|default|outcome.failed"] != "6") {
			t.Errorf("run of the default account: %s", jsonOf(r.Accounts))
		}
	}
}
