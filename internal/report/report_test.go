package report_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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
			SampleMessage: "Request was denied\ndue to throttling."},
		{Outcome: "invalid", ErrorCode: "Invalid.notify_url", Count: 1, SampleDomains: []string{"v.example.com"},
			SampleMessage: "row \"v.example.com\": notify_url: is empty"},
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
