package db_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// reportRun records a run with the given results, started 100 s ago, each
// result finished at started + its index in seconds, and finishes it with
// status (unless RunRunning).
func reportRun(t *testing.T, pool *pgxpool.Pool, status string, rs []model.Result, c db.RunCounters) int64 {
	t.Helper()
	ctx := testutil.Context(t)
	start := db.RunRunning
	if status == db.RunDryRun {
		start = db.RunDryRun
	}
	id, err := db.BeginRun(ctx, pool, db.RunStart{Status: start, Rate: 25, Concurrency: 8, HostName: "host-1", Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE reconcile_runs SET started_at = now() - interval '100 seconds' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	r, err := db.Run(ctx, pool, id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rs {
		rs[i].FinishedAt = r.StartedAt.Add(time.Duration(i+1) * time.Second)
		if rs[i].Fingerprint == "" {
			rs[i].Fingerprint = "fp"
		}
	}
	if _, err := db.WriteOutcomes(ctx, pool, id, rs, c); err != nil {
		t.Fatal(err)
	}
	if status != db.RunRunning {
		if err := db.FinishRun(ctx, pool, id, status, "the note", 0); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func TestReportQueries(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	pool := tdb.Pool

	if _, err := db.LatestNonDryRunID(ctx, pool); !errors.Is(err, db.ErrRunNotFound) {
		t.Fatalf("LatestNonDryRunID on no runs = %v, want ErrRunNotFound", err)
	}
	if _, err := db.ReadRunSummary(ctx, pool, 42); !errors.Is(err, db.ErrRunNotFound) {
		t.Fatalf("ReadRunSummary(42) = %v, want ErrRunNotFound", err)
	}
	dry1 := reportRun(t, pool, db.RunDryRun, nil, db.RunCounters{})
	if _, err := db.LatestNonDryRunID(ctx, pool); !errors.Is(err, db.ErrRunNotFound) {
		t.Fatalf("LatestNonDryRunID with only a dry run = %v, want ErrRunNotFound", err)
	}

	var rs []model.Result
	for _, d := range []string{"a.example.com", "b.example.com"} {
		rs = append(rs, model.Result{Domain: d, Outcome: model.OutcomeApplied, Attempts: 1})
	}
	for i := range 7 { // more than the 5 samples, written out of order
		rs = append(rs, model.Result{Domain: fmt.Sprintf("t%d.example.com", 6-i), Outcome: model.OutcomeFailed,
			ErrorCode: "Throttling.User", ErrorMessage: fmt.Sprintf("Request was denied (%d)", 6-i), HTTPStatus: 429, Attempts: 5})
	}
	rs = append(rs,
		model.Result{Domain: "n.example.com", Outcome: model.OutcomeFailed, ErrorCode: "ConnectionError", ErrorMessage: "connection reset", Attempts: 2},
		model.Result{Domain: "v.example.com", Outcome: model.OutcomeInvalid, ErrorCode: "Invalid.notify_url",
			ErrorMessage: `row "v.example.com": notify_url: is empty`})
	realRun := reportRun(t, pool, db.RunSucceeded, rs, db.RunCounters{Requests: 200, Throttled: 30, InvalidUnchanged: 4})
	dry2 := reportRun(t, pool, db.RunDryRun, nil, db.RunCounters{})

	if id, err := db.LatestNonDryRunID(ctx, pool); err != nil || id != realRun {
		t.Fatalf("LatestNonDryRunID = %d, %v; want %d (not the dry runs %d, %d)", id, err, realRun, dry1, dry2)
	}

	s, err := db.ReadRunSummary(ctx, pool, realRun)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := db.RunCounters{Applied: 2, Failed: 8, Invalid: 1, InvalidUnchanged: 4, Requests: 200, Throttled: 30}
	if s.ID != realRun || s.Kind != db.RunKindRun || s.Status != db.RunSucceeded || s.Counts != wantCounts ||
		s.Done != 2 || s.NotDone != 9 || s.Rate != 25 || s.Concurrency != 8 || s.HostName != "host-1" ||
		s.Version != "v1.2.3" || s.Note != "the note" || s.FinishedAt.IsZero() {
		t.Fatalf("ReadRunSummary = %+v", s)
	}
	if s.Duration < 99*time.Second || s.Duration > 200*time.Second {
		t.Errorf("duration %v, want about 100s", s.Duration)
	}
	if want := 200 / s.Duration.Seconds(); math.Abs(s.RequestsPerSecond-want) > 0.01 {
		t.Errorf("requests per second %v, want %v", s.RequestsPerSecond, want)
	}

	groups, err := db.FailuresByCode(ctx, pool, realRun)
	if err != nil {
		t.Fatal(err)
	}
	want := []db.FailureGroup{
		{Outcome: "failed", ErrorCode: "Throttling.User", Count: 7,
			SampleDomains: []string{"t0.example.com", "t1.example.com", "t2.example.com", "t3.example.com", "t4.example.com"},
			SampleMessage: "Request was denied (0)"},
		{Outcome: "failed", ErrorCode: "ConnectionError", Count: 1, SampleDomains: []string{"n.example.com"}, SampleMessage: "connection reset"},
		{Outcome: "invalid", ErrorCode: "Invalid.notify_url", Count: 1, SampleDomains: []string{"v.example.com"},
			SampleMessage: `row "v.example.com": notify_url: is empty`},
	}
	if len(groups) != len(want) {
		t.Fatalf("FailuresByCode = %+v", groups)
	}
	for i := range want {
		g, w := groups[i], want[i]
		if g.Outcome != w.Outcome || g.ErrorCode != w.ErrorCode || g.Count != w.Count ||
			!slices.Equal(g.SampleDomains, w.SampleDomains) || g.SampleMessage != w.SampleMessage {
			t.Errorf("group %d = %+v, want %+v", i, g, w)
		}
	}

	times, err := db.OutcomeTimes(ctx, pool, realRun)
	if err != nil {
		t.Fatal(err)
	}
	wantTimes := []db.OutcomeTiming{
		{Outcome: "failed", Count: 8, Attempts: 37, MaxAttempts: 5, First: 3 * time.Second, Last: 10 * time.Second},
		{Outcome: "applied", Count: 2, Attempts: 2, MaxAttempts: 1, First: 1 * time.Second, Last: 2 * time.Second},
		{Outcome: "invalid", Count: 1, Attempts: 0, MaxAttempts: 0, First: 11 * time.Second, Last: 11 * time.Second},
	}
	if !slices.Equal(times, wantTimes) {
		t.Errorf("OutcomeTimes = %+v\nwant %+v", times, wantTimes)
	}

	// Empty for a run without outcomes, and for an unknown run.
	for _, id := range []int64{dry2, 999} {
		if g, err := db.FailuresByCode(ctx, pool, id); err != nil || len(g) != 0 {
			t.Errorf("FailuresByCode(%d) = %v, %v", id, g, err)
		}
		if o, err := db.OutcomeTimes(ctx, pool, id); err != nil || len(o) != 0 {
			t.Errorf("OutcomeTimes(%d) = %v, %v", id, o, err)
		}
	}

	// A running run: the latest non-dry run, no duration yet.
	running := reportRun(t, pool, db.RunRunning, []model.Result{{Domain: "a.example.com", Outcome: model.OutcomeUpdated, Attempts: 1}}, db.RunCounters{Requests: 1})
	if id, err := db.LatestNonDryRunID(ctx, pool); err != nil || id != running {
		t.Fatalf("LatestNonDryRunID = %d, %v; want the running run %d", id, err, running)
	}
	s, err = db.ReadRunSummary(ctx, pool, running)
	if err != nil || s.Status != db.RunRunning || !s.FinishedAt.IsZero() || s.Duration != 0 || s.RequestsPerSecond != 0 ||
		s.Done != 1 {
		t.Fatalf("running run summary = %+v, %v", s, err)
	}

	// The view has one row per run.
	var runs, rows int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM reconcile_runs), (SELECT count(*) FROM reconcile_run_summary)`).Scan(&runs, &rows); err != nil || runs != rows || runs != 4 {
		t.Fatalf("%d runs, %d summary rows (%v)", runs, rows, err)
	}
}

// The accounts of a run: reconcile_run_accounts as RunAccounts reads it,
// the outcomes per account, and the account of each failure group.
func TestReportAccountQueries(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	pool := tdb.Pool
	rs := []model.Result{
		{Domain: "a.example.com", Outcome: model.OutcomeApplied, Attempts: 1},
		{Domain: "b.example.com", Outcome: model.OutcomeFailed, ErrorCode: "Throttling.User", ErrorMessage: "denied", Attempts: 5},
		{Domain: "c.example.com", Outcome: model.OutcomeFailed, ErrorCode: "Throttling.User", ErrorMessage: "denied", Attempts: 5, Account: "t-a"},
		{Domain: "d.example.com", Outcome: model.OutcomeApplied, Attempts: 1, Account: "t-a"},
	}
	id := reportRun(t, pool, db.RunSucceeded, rs, db.RunCounters{Requests: 12})
	before := reportRun(t, pool, db.RunSucceeded, rs[:1], db.RunCounters{Requests: 1})
	for _, r := range rs {
		if r.Account != "" {
			if _, err := pool.Exec(ctx, `UPDATE reconcile_outcomes SET account = $2 WHERE run_id = $1 AND domain_name = $3`, id, r.Account, r.Domain); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO reconcile_run_accounts (run_id, account, status, reason, error_code, pending, done,
not_done, requests, throttled, rate, started_at, finished_at) VALUES
($1, 't-b', 'failed', 'credentials refused', 'NoPermission', 3, 0, 0, 1, 0, NULL, now() - interval '10 s', now() - interval '9 s'),
($1, NULL, 'succeeded', NULL, NULL, 2, 1, 1, 6, 2, 25, now() - interval '10 s', now() - interval '5 s'),
($1, 't-a', 'running', NULL, NULL, 2, 1, 1, 5, 0, 12.5, now() - interval '10 s', NULL)`, id); err != nil {
		t.Fatal(err)
	}

	accounts, err := db.RunAccounts(ctx, pool, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(accounts) != 3 {
		t.Fatalf("RunAccounts = %+v", accounts)
	}
	d, a, b := accounts[0], accounts[1], accounts[2]
	if d.Account != "" || d.Status != "succeeded" || d.Pending != 2 || d.Done != 1 || d.NotDone != 1 || d.Requests != 6 ||
		d.Throttled != 2 || d.Rate == nil || *d.Rate != 25 || d.FinishedAt.IsZero() || d.Duration < 4*time.Second || d.Duration > 6*time.Second {
		t.Errorf("default account = %+v", d)
	}
	if a.Account != "t-a" || a.Status != "running" || a.Rate == nil || *a.Rate != 12.5 || !a.FinishedAt.IsZero() || a.Duration != 0 {
		t.Errorf("t-a = %+v", a)
	}
	if b.Account != "t-b" || b.Status != "failed" || b.Reason != "credentials refused" || b.ErrorCode != "NoPermission" || b.Rate != nil {
		t.Errorf("t-b = %+v", b)
	}
	if got, err := db.RunAccounts(ctx, pool, before); err != nil || got == nil || len(got) != 0 {
		t.Errorf("RunAccounts of a run without accounts = %#v, %v; want an empty slice", got, err)
	}

	counts, err := db.AccountOutcomes(ctx, pool, id)
	if err != nil {
		t.Fatal(err)
	}
	want := []db.AccountOutcomeCount{{"", "applied", 1}, {"", "failed", 1}, {"t-a", "applied", 1}, {"t-a", "failed", 1}}
	if !slices.Equal(counts, want) {
		t.Errorf("AccountOutcomes = %+v, want %+v", counts, want)
	}

	groups, err := db.FailuresByCode(ctx, pool, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].Account != "" || groups[1].Account != "t-a" ||
		groups[0].SampleDomains[0] != "b.example.com" || groups[1].SampleDomains[0] != "c.example.com" {
		t.Errorf("FailuresByCode = %+v", groups)
	}
}
