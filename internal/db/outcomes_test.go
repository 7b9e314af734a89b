package db_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestWriteOutcomes(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	pool := tdb.Pool
	ctx := testutil.Context(t)
	for _, d := range []string{"a.example.com", "b.example.com", "c.example.com", "d.example.com"} {
		upsertDesired(t, pool, desired{domain: d, url: "https://cb/" + d})
	}
	fp := func(d string) string { return fingerprintOf(t, pool, d) }
	run := beginRun(t, pool)
	long := strings.Repeat("é", 3000) + "\x00tail"
	finished := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	batch := []model.Result{
		{Domain: "a.example.com", Outcome: model.OutcomeApplied, Fingerprint: fp("a.example.com"), Attempts: 2, HTTPStatus: 200, RequestID: "req-a", FinishedAt: finished},
		{Domain: "b.example.com", Outcome: model.OutcomeInvalid, Fingerprint: fp("b.example.com"), ErrorCode: "Invalid.NotifyUrl", ErrorMessage: "notify_url: bad"},
		{Domain: "c.example.com", Outcome: model.OutcomeFailed, Fingerprint: fp("c.example.com"), Attempts: 5, HTTPStatus: 503, ErrorCode: "ServiceUnavailable", ErrorMessage: long},
		// The same domain twice in one batch: the first one wins.
		{Domain: "a.example.com", Outcome: model.OutcomeFailed, Fingerprint: fp("a.example.com"), ErrorCode: "X", ErrorMessage: "x"},
	}
	counters := db.RunCounters{Requests: 8, Throttled: 1, InvalidUnchanged: 2}
	wantCounts := db.RunCounters{Applied: 1, Invalid: 1, Failed: 1, Requests: 8, Throttled: 1, InvalidUnchanged: 2}
	for attempt := range 3 { // the retries change nothing
		if _, err := db.WriteOutcomes(ctx, pool, run, batch, counters); err != nil {
			t.Fatalf("WriteOutcomes #%d: %v", attempt+1, err)
		}
		r, err := db.Run(ctx, pool, run)
		if err != nil {
			t.Fatal(err)
		}
		if r.Counts != wantCounts {
			t.Fatalf("after write #%d: counts %+v, want %+v", attempt+1, r.Counts, wantCounts)
		}
	}
	var outcomes int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM reconcile_outcomes WHERE run_id = $1`, run).Scan(&outcomes); err != nil {
		t.Fatal(err)
	}
	if outcomes != 3 {
		t.Fatalf("%d outcome rows, want 3", outcomes)
	}
	var (
		outcome, code, msg, reqID *string
		status                    *int
		attempts                  int
		finishedAt                time.Time
	)
	if err := pool.QueryRow(ctx, `SELECT outcome, error_code, error_message, http_status, request_id, attempts, finished_at
		FROM reconcile_outcomes WHERE run_id = $1 AND domain_name = 'a.example.com'`, run).Scan(&outcome, &code, &msg, &status, &reqID, &attempts, &finishedAt); err != nil {
		t.Fatal(err)
	}
	if *outcome != "applied" || code != nil || msg != nil || *status != 200 || *reqID != "req-a" || attempts != 2 || !finishedAt.Equal(finished) {
		t.Fatalf("outcome a: %v %v %v %v %v %d %v", *outcome, code, msg, *status, *reqID, attempts, finishedAt)
	}
	if err := pool.QueryRow(ctx, `SELECT error_message FROM reconcile_outcomes WHERE run_id = $1 AND domain_name = 'c.example.com'`, run).Scan(&msg); err != nil {
		t.Fatal(err)
	}
	if n := utf8.RuneCountInString(*msg); n != db.MaxErrorMessageLen || !strings.HasSuffix(*msg, "…") {
		t.Fatalf("error_message: %d runes, suffix %q", n, (*msg)[len(*msg)-10:])
	}

	// A later failure keeps done_fingerprint; the row stays done only while
	// its values are unchanged... and the state follows the latest outcome.
	run2 := beginRun(t, pool)
	if _, err := db.WriteOutcomes(ctx, pool, run2, []model.Result{
		{Domain: "a.example.com", Outcome: model.OutcomeFailed, Fingerprint: "other-fp", ErrorCode: "X", ErrorMessage: "x"},
		{Domain: "c.example.com", Outcome: model.OutcomeAlreadyExists, Fingerprint: fp("c.example.com")},
	}, db.RunCounters{Requests: 2}); err != nil {
		t.Fatal(err)
	}
	var lastOutcome, lastFP string
	var doneFP *string
	var lastRun int64
	if err := pool.QueryRow(ctx, `SELECT last_outcome, last_fingerprint, done_fingerprint, last_run_id FROM reconcile_domain_state
		WHERE domain_name = 'a.example.com'`).Scan(&lastOutcome, &lastFP, &doneFP, &lastRun); err != nil {
		t.Fatal(err)
	}
	if lastOutcome != "failed" || lastFP != "other-fp" || doneFP == nil || *doneFP != fp("a.example.com") || lastRun != run2 {
		t.Fatalf("state of a: %s %s %v %d", lastOutcome, lastFP, doneFP, lastRun)
	}
	v := viewOf(t, pool)
	if v["a.example.com"].pending || v["c.example.com"].pending || !v["d.example.com"].pending || v["b.example.com"].pending {
		t.Fatalf("view after run 2: %+v", v)
	}

	// Counters alone.
	if _, err := db.WriteOutcomes(ctx, pool, run2, nil, db.RunCounters{Throttled: 3}); err != nil {
		t.Fatal(err)
	}
	r2, err := db.Run(ctx, pool, run2)
	if err != nil {
		t.Fatal(err)
	}
	if want := (db.RunCounters{Failed: 1, AlreadyExists: 1, Requests: 2, Throttled: 3}); r2.Counts != want {
		t.Fatalf("run 2 counts %+v, want %+v", r2.Counts, want)
	}

	// Refused before writing.
	bad := []struct {
		name string
		rs   []model.Result
		c    db.RunCounters
	}{
		{"unknown outcome", []model.Result{{Domain: "a.example.com", Outcome: "done", Fingerprint: "x"}}, db.RunCounters{}},
		{"no domain", []model.Result{{Outcome: model.OutcomeApplied, Fingerprint: "x"}}, db.RunCounters{}},
		{"no fingerprint", []model.Result{{Domain: "a.example.com", Outcome: model.OutcomeApplied}}, db.RunCounters{}},
		{"per-outcome counter", nil, db.RunCounters{Applied: 1}},
	}
	for _, b := range bad {
		if _, err := db.WriteOutcomes(ctx, pool, run2, b.rs, b.c); !errors.Is(err, db.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", b.name, err)
		}
	}
	if _, err := db.WriteOutcomes(ctx, pool, 999999, batch[:1], db.RunCounters{}); !errors.Is(err, db.ErrRunNotFound) {
		t.Errorf("unknown run: %v, want ErrRunNotFound", err)
	}
}

// TestWriteOutcomesLargeBatch writes 5,000 results in one call.
func TestWriteOutcomesLargeBatch(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	pool := tdb.Pool
	ctx := testutil.Context(t)
	run := beginRun(t, pool)
	rs := make([]model.Result, 5000)
	for i := range rs {
		rs[i] = model.Result{Domain: fmt.Sprintf("d%05d.example.com", i), Outcome: model.OutcomeApplied, Fingerprint: "fp", Attempts: 1}
	}
	start := time.Now()
	if _, err := db.WriteOutcomes(ctx, pool, run, rs, db.RunCounters{Requests: 5000}); err != nil {
		t.Fatal(err)
	}
	t.Logf("5,000 outcomes in %v", time.Since(start))
	r, err := db.Run(ctx, pool, run)
	if err != nil || r.Counts.Applied != 5000 || r.Counts.Requests != 5000 {
		t.Fatalf("counts %+v, %v", r.Counts, err)
	}
}

func TestIsRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{errors.New("closed pool"), false},
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "57P02"}, true},
		{&pgconn.PgError{Code: "57P03"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "40001"}, true},
		{fmt.Errorf("db: x: %w", &pgconn.PgError{Code: "08000"}), true},
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "28P01"}, false},
		{&pgconn.PgError{Code: "42P01"}, false},
		{fmt.Errorf("x: %w", syscall.ECONNREFUSED), true},
		{fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{io.ErrUnexpectedEOF, true},
		{errors.New("something else"), false},
	}
	for _, tt := range tests {
		if got := db.IsRetryable(tt.err); got != tt.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// A statement on a connection the server terminated is retryable; on a
// closed pool it is not.
func TestIsRetryableLive(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	conn := tdb.Conn(t)
	if _, err := testdb.AdminPool(t).Exec(ctx, `SELECT pg_terminate_backend($1)`, conn.PgConn().PID()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	_, err := db.CountPending(ctx, conn)
	if err == nil || !db.IsRetryable(err) {
		t.Fatalf("after pg_terminate_backend: %v, retryable %v", err, db.IsRetryable(err))
	}
	tdb.Pool.Close()
	_, err = db.CountPending(ctx, tdb.Pool)
	if err == nil || db.IsRetryable(err) {
		t.Fatalf("closed pool: %v, retryable %v", err, db.IsRetryable(err))
	}
	// Connection refused.
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.AcquireRunLock(ctx, cfg)
	if err == nil || !db.IsRetryable(err) {
		t.Fatalf("connection refused: %v, retryable %v", err, db.IsRetryable(err))
	}
}
