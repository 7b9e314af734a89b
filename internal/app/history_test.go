package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/logging"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// seedHistory writes, for each age in ages (days ago, oldest first), one
// finished run whose outcomes (one per domain in domains(i)) finished that
// long ago. It returns the run ids.
func seedHistory(t *testing.T, q db.Querier, ages []int, domains func(i int) []string) []int64 {
	t.Helper()
	ctx := testutil.Context(t)
	var ids []int64
	for i, age := range ages {
		id, err := db.BeginRun(ctx, q, db.RunStart{Status: db.RunRunning, Rate: 25, Concurrency: 4, HostName: "test", Version: "v0"})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-time.Duration(age) * 24 * time.Hour)
		var rs []model.Result
		for j, d := range domains(i) {
			r := model.Result{Domain: d, Outcome: model.OutcomeApplied, Attempts: 1, Fingerprint: "fp" + d,
				FinishedAt: at.Add(time.Duration(j) * time.Millisecond)}
			if j%3 == 0 {
				r.Outcome, r.ErrorCode, r.ErrorMessage = model.OutcomeFailed, "InternalError", "failed"
			}
			rs = append(rs, r)
		}
		if _, err := db.WriteOutcomes(ctx, q, id, rs, db.RunCounters{Requests: int64(len(rs))}); err != nil {
			t.Fatal(err)
		}
		if err := db.FinishRun(ctx, q, id, db.RunSucceeded, "", 0); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// historyState is what retention must keep: the runs (with their counts)
// and each domain's latest outcome.
type historyState struct {
	runs   string            // every reconcile_runs row, as JSON
	latest map[string]int64  // domain -> last_outcome_id
	alive  map[int64]bool    // outcome ids present
	age    map[int64]float64 // outcome id -> age in days
}

func readHistory(t *testing.T, q db.Querier) historyState {
	t.Helper()
	ctx := testutil.Context(t)
	s := historyState{latest: map[string]int64{}, alive: map[int64]bool{}, age: map[int64]float64{}}
	if err := q.QueryRow(ctx, `SELECT coalesce(json_agg(r ORDER BY id)::text, '') FROM reconcile_runs r`).Scan(&s.runs); err != nil {
		t.Fatal(err)
	}
	rows, _ := q.Query(ctx, `SELECT domain_name, last_outcome_id FROM reconcile_domain_state`)
	var d string
	var id int64
	if _, err := pgx.ForEachRow(rows, []any{&d, &id}, func() error { s.latest[d] = id; return nil }); err != nil {
		t.Fatal(err)
	}
	var age float64
	rows, _ = q.Query(ctx, `SELECT id, extract(epoch FROM now() - finished_at) / 86400 FROM reconcile_outcomes`)
	if _, err := pgx.ForEachRow(rows, []any{&id, &age}, func() error { s.alive[id], s.age[id] = true, age; return nil }); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPruneHistory: `history prune --older-than 90d` deletes the outcome
// rows older than 90 days except each domain's latest, keeps every run row
// and the domain states as they were, works across batches, and deletes
// nothing more when repeated.
func TestPruneHistory(t *testing.T) {
	t.Parallel()
	d := testdb.New(t)
	// 40 domains; runs 200, 150, 120, 95, 30 and 1 day(s) ago. Each run
	// touches a window of domains, so some domains' latest outcome is old
	// (d30..d39 are only in the 200-day-old run).
	ages := []int{200, 150, 120, 95, 30, 1}
	seedHistory(t, d.Pool, ages, func(i int) []string {
		var ds []string
		lo, hi := 0, 40
		if i > 0 {
			lo, hi = i*3, 30
		}
		for k := lo; k < hi; k++ {
			ds = append(ds, fmt.Sprintf("d%02d.history.example.com", k))
		}
		return ds
	})
	before := readHistory(t, d.Pool)
	isLatest := map[int64]bool{}
	for _, id := range before.latest {
		isLatest[id] = true
	}
	var wantGone, wantKeptLatest int64
	for id := range before.alive {
		switch {
		case before.age[id] > 90 && !isLatest[id]:
			wantGone++
		case before.age[id] > 90:
			wantKeptLatest++
		}
	}
	if wantGone == 0 || wantKeptLatest == 0 {
		t.Fatalf("bad fixture: %d rows to delete, %d old latest ones", wantGone, wantKeptLatest)
	}

	out := &testutil.Buffer{}
	env := Env{Stdout: out, Stderr: out, Redactor: logging.NewRedactor(),
		Logger: logging.New(&testutil.Buffer{}, logging.Options{Format: "json", Level: "info"})}
	c := HistoryPruneConfig{DatabaseURL: d.URL, OlderThan: 90 * 24 * time.Hour, BatchSize: 7, Format: FormatJSON}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := PruneHistory(testutil.Context(t), c, env); err != nil {
		t.Fatalf("PruneHistory: %v", err)
	}
	var res HistoryPruned
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if res.Deleted != wantGone || res.KeptLatest != wantKeptLatest || res.Batches < 2 {
		t.Errorf("result %+v, want deleted %d, kept_latest %d, several batches", res, wantGone, wantKeptLatest)
	}
	after := readHistory(t, d.Pool)
	if after.runs != before.runs {
		t.Errorf("reconcile_runs changed:\nbefore %s\nafter  %s", before.runs, after.runs)
	}
	if fmt.Sprint(after.latest) != fmt.Sprint(before.latest) {
		t.Errorf("reconcile_domain_state changed")
	}
	for dom, id := range before.latest {
		if !after.alive[id] {
			t.Errorf("%s: its latest outcome %d (%.0f days old) was deleted", dom, id, before.age[id])
		}
	}
	for id := range before.alive {
		old := before.age[id] > 90
		if gone := !after.alive[id]; gone != (old && !isLatest[id]) {
			t.Errorf("outcome %d (%.0f days old, latest %v): deleted %v", id, before.age[id], isLatest[id], gone)
		}
	}
	// The status view still knows every domain's latest outcome.
	var missing int
	if err := d.Pool.QueryRow(testutil.Context(t), `SELECT count(*) FROM reconcile_domain_state s
		WHERE NOT EXISTS (SELECT FROM reconcile_outcomes o WHERE o.id = s.last_outcome_id)`).Scan(&missing); err != nil || missing != 0 {
		t.Errorf("%d domain states point at a deleted outcome (%v)", missing, err)
	}

	// Again: nothing more to delete.
	out = &testutil.Buffer{}
	env.Stdout = out
	if err := PruneHistory(testutil.Context(t), c, env); err != nil {
		t.Fatalf("second PruneHistory: %v", err)
	}
	res = HistoryPruned{}
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil || res.Deleted != 0 || res.KeptLatest != wantKeptLatest {
		t.Errorf("second prune: %+v (%v), want nothing deleted, %d kept", res, err, wantKeptLatest)
	}
	if again := readHistory(t, d.Pool); fmt.Sprint(again.alive) != fmt.Sprint(after.alive) {
		t.Errorf("the second prune changed the outcomes")
	}
}

// TestPruneHistoryConfig: bad --older-than and --batch-size values are
// configuration errors (exit 2).
func TestPruneHistoryConfig(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "abc", "90", "0", "0d", "-5d", "30m", "59m59s", "1.5d", "36501d", "999999999999d", "d"} {
		age, err := ParseAge(s)
		if err == nil {
			err = HistoryPruneConfig{OlderThan: age, BatchSize: 10, Format: FormatTable}.Validate()
		}
		if !errors.Is(err, config.ErrUsage) || ExitCode(err) != ExitConfig {
			t.Errorf("--older-than %q: %v (exit %d), want a usage error (exit 2)", s, err, ExitCode(err))
		}
	}
	for s, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1h": time.Hour, "36h": 36 * time.Hour, "1d": 24 * time.Hour} {
		age, err := ParseAge(s)
		if err == nil {
			err = HistoryPruneConfig{OlderThan: age, BatchSize: 10, Format: FormatTable}.Validate()
		}
		if err != nil || age != want {
			t.Errorf("--older-than %q: %v, %v; want %v", s, age, err, want)
		}
	}
	for _, n := range []int{0, -1, 100001} {
		if err := (HistoryPruneConfig{OlderThan: time.Hour, BatchSize: n, Format: FormatTable}).Validate(); ExitCode(err) != ExitConfig {
			t.Errorf("--batch-size %d: %v, want exit 2", n, err)
		}
	}
}

// TestPruneHistoryWhileARunWrites: retention and a run's outcome writes
// do not wait for each other, in either order: a prune batch completes
// while a run's write transaction is open, and a run's write completes
// while a prune batch's transaction is open.
func TestPruneHistoryWhileARunWrites(t *testing.T) {
	t.Parallel()
	d := testdb.New(t)
	ctx := testutil.Context(t)
	dom := func(i int) []string {
		var ds []string
		for k := range 20 {
			ds = append(ds, fmt.Sprintf("w%02d.history.example.com", k))
		}
		return ds
	}
	seedHistory(t, d.Pool, []int{300, 200, 100}, dom)
	cutoff := time.Now().Add(-90 * 24 * time.Hour)
	// Bounded waits: a statement that waited for the other transaction's
	// locks would fail here instead of hanging the test.
	bounded := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		t.Cleanup(cancel)
		return c
	}

	// 1. A run's write is open (uncommitted) while a prune batch runs.
	runTx, err := d.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run, err := db.BeginRun(ctx, d.Pool, db.RunStart{Status: db.RunRunning, Rate: 25, Concurrency: 4, HostName: "test", Version: "v0"})
	if err != nil {
		t.Fatal(err)
	}
	var rs []model.Result
	for _, x := range dom(0)[:10] {
		rs = append(rs, model.Result{Domain: x, Outcome: model.OutcomeApplied, Attempts: 1, Fingerprint: "fp" + x})
	}
	if _, err := db.WriteOutcomes(ctx, runTx, run, rs, db.RunCounters{}); err != nil {
		t.Fatal(err)
	}
	b, err := db.PruneHistoryBatch(bounded(), d.Pool, 0, cutoff, 1000)
	if err != nil {
		t.Fatalf("prune while a run's write is open: %v", err)
	}
	if b.Deleted != 40 { // the 300- and 200-day-old runs; the 100-day-old one is every domain's latest
		t.Errorf("prune deleted %d rows, want 40", b.Deleted)
	}
	if err := runTx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// 2. A prune batch is open (uncommitted) while a run writes: the run's
	// new outcomes supersede the 100-day-old ones, which the prune
	// transaction may now delete.
	pruneTx, err := d.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = db.PruneHistoryBatch(ctx, pruneTx, 0, cutoff, 1000); err != nil || b.Deleted != 10 {
		t.Fatalf("prune after the run's write: %+v, %v; want the 10 superseded rows deleted", b, err)
	}
	run2, err := db.BeginRun(bounded(), d.Pool, db.RunStart{Status: db.RunRunning, Rate: 25, Concurrency: 4, HostName: "test", Version: "v0"})
	if err != nil {
		t.Fatalf("begin a run while a prune batch is open: %v", err)
	}
	rs = rs[:0]
	for _, x := range dom(0) {
		rs = append(rs, model.Result{Domain: x, Outcome: model.OutcomeApplied, Attempts: 1, Fingerprint: "fp" + x})
	}
	if _, err := db.WriteOutcomes(bounded(), d.Pool, run2, rs, db.RunCounters{}); err != nil {
		t.Fatalf("write outcomes while a prune batch is open: %v", err)
	}
	if err := pruneTx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s := readHistory(t, d.Pool)
	for x, id := range s.latest {
		if !s.alive[id] {
			t.Errorf("%s: latest outcome %d deleted", x, id)
		}
	}
}
