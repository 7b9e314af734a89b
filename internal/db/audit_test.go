package db_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// TestOutcomesKeepTheValuesSent: every outcome row keeps the notify_url,
// notify_req_auth and RegionId it was about (NULL when the result had
// none), and never the key.
func TestOutcomesKeepTheValuesSent(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	const key = "SentValuesKey0123456789"
	upsertDesired(t, pool, desired{domain: "a.example.com", url: "https://h.example.com/a", reqAuth: true, key: key, region: "cn-beijing"})
	upsertDesired(t, pool, desired{domain: "b.example.com", url: "https://h.example.com/b"})
	run := beginRun(t, pool)
	rs := []model.Result{
		{Domain: "a.example.com", Outcome: model.OutcomeApplied, Fingerprint: fingerprintOf(t, pool, "a.example.com"),
			Attempts: 1, NotifyURL: "https://h.example.com/a", ReqAuth: true, Region: "cn-beijing"},
		{Domain: "b.example.com", Outcome: model.OutcomeApplied, Fingerprint: fingerprintOf(t, pool, "b.example.com"),
			Attempts: 1, NotifyURL: "https://h.example.com/b", Region: "cn-shanghai"},
		{Domain: "gone.example.com", Outcome: model.OutcomeDeleted, Fingerprint: "x", Attempts: 1, Region: "cn-shanghai"},
	}
	if _, err := db.WriteOutcomes(ctx, pool, run, rs, db.RunCounters{}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	rows, err := pool.Query(ctx, `SELECT domain_name, coalesce(notify_url, 'NULL'), coalesce(notify_req_auth::text, 'NULL'),
		coalesce(region_id, 'NULL'), o::text FROM reconcile_outcomes o`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d, u, a, r, whole string
		if err := rows.Scan(&d, &u, &a, &r, &whole); err != nil {
			t.Fatal(err)
		}
		got[d] = u + " " + a + " " + r
		if strings.Contains(whole, key) {
			t.Errorf("outcome row of %s holds the auth key", d)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"a.example.com":    "https://h.example.com/a true cn-beijing",
		"b.example.com":    "https://h.example.com/b false cn-shanghai",
		"gone.example.com": "NULL NULL cn-shanghai",
	}
	for d, w := range want {
		if got[d] != w {
			t.Errorf("%s: notify_url, notify_req_auth, region_id = %q, want %q", d, got[d], w)
		}
	}
}

// TestUpdatedAtFollowsHandEdits: an UPDATE that changes a desired value
// moves updated_at (whatever the statement set it to); one that changes
// none leaves it alone.
func TestUpdatedAtFollowsHandEdits(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	upsertDesired(t, pool, desired{domain: "u.example.com", url: "https://h.example.com/1"})
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	updatedAt := func() time.Time {
		t.Helper()
		var at time.Time
		if err := pool.QueryRow(ctx, `SELECT updated_at FROM desired_snapshot_callbacks WHERE domain_name = 'u.example.com'`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	// No desired value changes: updated_at is what the statement says.
	exec(`UPDATE desired_snapshot_callbacks SET updated_at = $1, notify_url = notify_url`, old)
	if got := updatedAt(); !got.Equal(old) {
		t.Fatalf("after an UPDATE that changed no desired value: updated_at %v, want %v", got, old)
	}
	for _, edit := range []string{
		`UPDATE desired_snapshot_callbacks SET notify_url = 'https://h.example.com/2'`,
		`UPDATE desired_snapshot_callbacks SET notify_req_auth = true`,
		`UPDATE desired_snapshot_callbacks SET notify_auth_key = 'HandEditKey0123456789'`,
		`UPDATE desired_snapshot_callbacks SET region_id = 'cn-beijing'`,
		`UPDATE desired_snapshot_callbacks SET region_id = NULL`,
	} {
		exec(`UPDATE desired_snapshot_callbacks SET updated_at = $1`, old)
		before := time.Now().Add(-time.Minute) // the server's clock may differ a little
		exec(edit)
		if got := updatedAt(); !got.After(before) {
			t.Errorf("%s: updated_at %v, want now", edit, got)
		}
	}
	// Setting updated_at together with a change: the trigger wins.
	exec(`UPDATE desired_snapshot_callbacks SET updated_at = $1, notify_url = 'https://h.example.com/3'`, old)
	if got := updatedAt(); got.Equal(old) {
		t.Errorf("a change that also set updated_at to the past kept it: %v", got)
	}
}

// TestFinishRunRecordsTheExitCode: the exit code is stored with the end
// of the run and shown by the summary view; an out-of-range one is refused.
func TestFinishRunRecordsTheExitCode(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	run := beginRun(t, pool)
	if r, err := db.Run(ctx, pool, run); err != nil || r.ExitCode != -1 {
		t.Fatalf("running run: exit code %d, %v; want -1 (none)", r.ExitCode, err)
	}
	if err := db.FinishRun(ctx, pool, run, db.RunSucceeded, "", 256); !errors.Is(err, db.ErrInvalidArgument) {
		t.Fatalf("FinishRun(exit 256) = %v, want ErrInvalidArgument", err)
	}
	if err := db.FinishRun(ctx, pool, run, db.RunSucceeded, "", 1); err != nil {
		t.Fatal(err)
	}
	r, err := db.Run(ctx, pool, run)
	if err != nil || r.ExitCode != 1 || r.Status != db.RunSucceeded {
		t.Fatalf("finished run: %+v, %v; want succeeded with exit code 1", r, err)
	}
	var code int
	if err := pool.QueryRow(ctx, `SELECT exit_code FROM reconcile_run_summary WHERE run_id = $1`, run).Scan(&code); err != nil || code != 1 {
		t.Fatalf("reconcile_run_summary.exit_code = %d, %v; want 1", code, err)
	}
}

// TestEveryUserColumnIsCommented: `\d+` explains every table, view and
// column users query (a new column without a COMMENT fails here).
func TestEveryUserColumnIsCommented(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	relations := []string{"desired_snapshot_callbacks", "reconcile_runs", "reconcile_outcomes", "reconcile_domain_state",
		"snapshot_callback_status", "reconcile_run_summary", "reconcile_failures_by_code",
		"reconcile_accounts", "reconcile_run_accounts", "reconcile_account_status"}
	for _, rel := range relations {
		var comment *string
		if err := pool.QueryRow(ctx, `SELECT obj_description(to_regclass($1), 'pg_class')`, rel).Scan(&comment); err != nil {
			t.Fatal(err)
		}
		if comment == nil || *comment == "" {
			t.Errorf("%s has no COMMENT", rel)
		}
		rows, err := pool.Query(ctx, `SELECT a.attname FROM pg_attribute a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
			  AND coalesce(col_description(a.attrelid, a.attnum), '') = ''`, rel)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var col string
			if err := rows.Scan(&col); err != nil {
				t.Fatal(err)
			}
			t.Errorf("%s.%s has no COMMENT", rel, col)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatusViewShowsTheAnswer: snapshot_callback_status carries the
// desired values (no key) and the latest outcome's request id and HTTP
// status; reconcile_failures_by_code says when.
func TestStatusViewShowsTheAnswer(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	upsertDesired(t, pool, desired{domain: "f.example.com", url: "https://h.example.com/f", region: "cn-beijing"})
	run := beginRun(t, pool)
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	res := model.Result{Domain: "f.example.com", Outcome: model.OutcomeFailed, Fingerprint: fingerprintOf(t, pool, "f.example.com"),
		ErrorCode: "InvalidDomain.NotFound", ErrorMessage: "The domain does not exist.", HTTPStatus: 404,
		RequestID: "REQ-42", Attempts: 1, FinishedAt: at, NotifyURL: "https://h.example.com/f", Region: "cn-beijing"}
	if _, err := db.WriteOutcomes(ctx, pool, run, []model.Result{res}, db.RunCounters{}); err != nil {
		t.Fatal(err)
	}
	var url, region, reqID, sentRegion string
	var status, attempts int
	if err := pool.QueryRow(ctx, `SELECT notify_url, region_id, request_id, http_status, attempts, sent_region_id
		FROM snapshot_callback_status WHERE domain_name = 'f.example.com'`).Scan(&url, &region, &reqID, &status, &attempts, &sentRegion); err != nil {
		t.Fatal(err)
	}
	if url != res.NotifyURL || region != "cn-beijing" || reqID != "REQ-42" || status != 404 || attempts != 1 || sentRegion != "cn-beijing" {
		t.Errorf("status view: %q %q %q %d %d %q", url, region, reqID, status, attempts, sentRegion)
	}
	var first, last time.Time
	var sampleReq string
	var sampleStatus int
	if err := pool.QueryRow(ctx, `SELECT first_finished_at, last_finished_at, sample_request_id, sample_http_status
		FROM reconcile_failures_by_code WHERE run_id = $1`, run).Scan(&first, &last, &sampleReq, &sampleStatus); err != nil {
		t.Fatal(err)
	}
	if !first.Equal(at) || !last.Equal(at) || sampleReq != "REQ-42" || sampleStatus != 404 {
		t.Errorf("failures view: %v %v %q %d; want %v, REQ-42, 404", first, last, sampleReq, sampleStatus, at)
	}
}
