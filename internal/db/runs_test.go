package db_test

import (
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestRuns(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	pool := tdb.Pool

	if _, err := db.LatestRun(ctx, pool); !errors.Is(err, db.ErrRunNotFound) {
		t.Fatalf("LatestRun on empty table = %v, want ErrRunNotFound", err)
	}
	if _, err := db.BeginRun(ctx, pool, db.RunStart{Status: "succeeded"}); !errors.Is(err, db.ErrInvalidArgument) {
		t.Fatalf("BeginRun with status succeeded = %v, want ErrInvalidArgument", err)
	}

	crashed, err := db.BeginRun(ctx, pool, db.RunStart{Status: db.RunRunning, Rate: 25, Concurrency: 32, HostName: "h1", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.AbandonRunning(ctx, pool, "")
	if err != nil || n != 1 {
		t.Fatalf("AbandonRunning = %d, %v; want 1", n, err)
	}
	r, err := db.Run(ctx, pool, crashed)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != db.RunFailed || r.Note != db.AbandonedNote || r.FinishedAt.IsZero() {
		t.Fatalf("abandoned run: %+v", r)
	}
	if err := db.FinishRun(ctx, pool, crashed, db.RunSucceeded, "", 0); !errors.Is(err, db.ErrRunFinished) {
		t.Fatalf("FinishRun on an abandoned run = %v, want ErrRunFinished", err)
	}
	if n, err := db.AbandonRunning(ctx, pool, ""); err != nil || n != 0 {
		t.Fatalf("AbandonRunning again = %d, %v; want 0", n, err)
	}

	dry, err := db.BeginRun(ctx, pool, db.RunStart{Status: db.RunDryRun, Rate: 10.5, Concurrency: 4, HostName: "h2", Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddRunCounts(ctx, pool, dry, db.RunCounters{InvalidUnchanged: 3, Requests: 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddRunCounts(ctx, pool, dry, db.RunCounters{InvalidUnchanged: 1, Throttled: 5, Applied: 7}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishRun(ctx, pool, dry, db.RunDryRun, "dry", 0); err != nil {
		t.Fatal(err)
	}
	latest, err := db.LatestRun(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	want := db.RunCounters{InvalidUnchanged: 4, Requests: 2, Throttled: 5, Applied: 7}
	if latest.ID != dry || latest.Status != db.RunDryRun || latest.Note != "dry" || latest.Counts != want ||
		latest.Rate != 10.5 || latest.Concurrency != 4 || latest.HostName != "h2" || latest.Version != "v2" ||
		latest.FinishedAt.IsZero() || latest.StartedAt.IsZero() || latest.FinishedAt.Before(latest.StartedAt) {
		t.Fatalf("latest run = %+v", latest)
	}

	if _, err := db.Run(ctx, pool, 999999); !errors.Is(err, db.ErrRunNotFound) {
		t.Fatalf("Run(unknown) = %v", err)
	}
	if err := db.FinishRun(ctx, pool, 999999, db.RunFailed, "", 0); !errors.Is(err, db.ErrRunNotFound) {
		t.Fatalf("FinishRun(unknown) = %v", err)
	}
	if err := db.FinishRun(ctx, pool, dry, "running", "", 0); !errors.Is(err, db.ErrInvalidArgument) {
		t.Fatalf("FinishRun(running) = %v", err)
	}
	if err := db.AddRunCounts(ctx, pool, 999999, db.RunCounters{Requests: 1}); !errors.Is(err, db.ErrRunNotFound) {
		t.Fatalf("AddRunCounts(unknown) = %v", err)
	}
}

// TestAbandonRunning: a running run is marked abandoned only when its
// process holds no live claim any more; another shard's live run, the
// caller's own run and finished runs are left alone.
func TestAbandonRunning(t *testing.T) {
	t.Parallel()
	// claims: holder token -> whether its claim is live. The caller is "me".
	type run struct {
		holder string // "": NULL (before schema 7)
		kind   string
		status string // "": running
	}
	tests := []struct {
		name      string
		claims    map[string]bool
		runs      []run
		abandoned []bool // per run
	}{
		{name: "another live holder's run stays",
			claims: map[string]bool{"me": true, "other": true}, runs: []run{{holder: "other"}}, abandoned: []bool{false}},
		{name: "a dead holder's run goes",
			claims: map[string]bool{"me": true, "dead": false}, runs: []run{{holder: "dead"}}, abandoned: []bool{true}},
		{name: "a holder without any claim row goes",
			claims: map[string]bool{"me": true}, runs: []run{{holder: "vanished", kind: db.RunKindVerify}}, abandoned: []bool{true}},
		{name: "the caller's own run stays",
			claims: map[string]bool{"me": true}, runs: []run{{holder: "me"}}, abandoned: []bool{false}},
		{name: "the caller's own run stays even with its claims expired",
			claims: map[string]bool{"me": false}, runs: []run{{holder: "me"}}, abandoned: []bool{false}},
		{name: "a run before schema 7 goes when only the caller holds a claim",
			claims: map[string]bool{"me": true, "dead": false}, runs: []run{{}}, abandoned: []bool{true}},
		{name: "a run before schema 7 stays while another process holds a live claim",
			claims: map[string]bool{"me": true, "other": true}, runs: []run{{}}, abandoned: []bool{false}},
		{name: "finished and dry runs are not running",
			claims:    map[string]bool{"me": true},
			runs:      []run{{holder: "dead", status: db.RunSucceeded}, {holder: "dead", status: db.RunDryRun}, {status: db.RunFailed}},
			abandoned: []bool{false, false, false}},
		{name: "mixed",
			claims:    map[string]bool{"me": true, "other": true, "dead": false},
			runs:      []run{{holder: "other"}, {holder: "dead"}, {holder: "me"}, {}},
			abandoned: []bool{false, true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := testdb.New(t).Pool
			ctx := testutil.Context(t)
			i := 0
			for holder, live := range tt.claims {
				expires := "1 minute"
				if !live {
					expires = "-1 second"
				}
				i++
				if _, err := pool.Exec(ctx, `INSERT INTO reconcile_run_lease (name, holder, host_name, pid, acquired_at, renewed_at, expires_at)
					VALUES ($1, $2, 'h', 1, now(), now(), now() + $3::interval)`, db.LeaseName(fmt.Sprintf("acct%d", i)), holder, expires); err != nil {
					t.Fatal(err)
				}
			}
			ids := make([]int64, len(tt.runs))
			for i, r := range tt.runs {
				status := db.RunRunning
				if r.status == db.RunDryRun {
					status = db.RunDryRun
				}
				id, err := db.BeginRun(ctx, pool, db.RunStart{Status: status, Kind: r.kind, LeaseHolder: r.holder})
				if err != nil {
					t.Fatal(err)
				}
				if r.status != "" && r.status != db.RunDryRun {
					if err := db.FinishRun(ctx, pool, id, r.status, "", 0); err != nil {
						t.Fatal(err)
					}
				}
				if err := db.BeginRunAccount(ctx, pool, id, "", 1, 25); err != nil {
					t.Fatal(err)
				}
				ids[i] = id
			}
			want := 0
			for _, a := range tt.abandoned {
				if a {
					want++
				}
			}
			n, err := db.AbandonRunning(ctx, pool, "me")
			if err != nil || n != int64(want) {
				t.Fatalf("AbandonRunning = %d, %v; want %d", n, err, want)
			}
			for i, id := range ids {
				r, err := db.Run(ctx, pool, id)
				if err != nil {
					t.Fatal(err)
				}
				var accountStatus string
				var reason *string
				if err := pool.QueryRow(ctx, `SELECT status, reason FROM reconcile_run_accounts WHERE run_id = $1`, id).Scan(&accountStatus, &reason); err != nil {
					t.Fatal(err)
				}
				gone := r.Note == db.AbandonedNote
				if gone != tt.abandoned[i] {
					t.Errorf("run %d %+v: abandoned %v, want %v (status %s)", i, tt.runs[i], gone, tt.abandoned[i], r.Status)
				}
				if gone && (r.Status != db.RunFailed || r.FinishedAt.IsZero() || accountStatus != db.RunAccountFailed ||
					reason == nil || *reason != db.AbandonedNote) {
					t.Errorf("abandoned run %d: %+v, its account %s (%v)", i, r, accountStatus, reason)
				}
				if !gone && accountStatus != db.RunAccountRunning {
					t.Errorf("run %d left alone, but its account is %s", i, accountStatus)
				}
			}
			if n, err := db.AbandonRunning(ctx, pool, "me"); err != nil || n != 0 {
				t.Errorf("AbandonRunning again = %d, %v; want 0", n, err)
			}
		})
	}
}

// TestRunAccounts: a run records its lease holder and a row per account it
// took up or skipped, each finished once.
func TestRunAccounts(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	run, err := db.BeginRun(ctx, pool, db.RunStart{Status: db.RunRunning, Rate: 25, Concurrency: 4, LeaseHolder: "token-1"})
	if err != nil {
		t.Fatal(err)
	}
	var holder *string
	if err := pool.QueryRow(ctx, `SELECT lease_holder FROM reconcile_runs WHERE id = $1`, run).Scan(&holder); err != nil || holder == nil || *holder != "token-1" {
		t.Fatalf("lease_holder %v, %v; want token-1", holder, err)
	}

	steps := []struct {
		name string
		do   func() error
		want error // nil: succeeds
	}{
		{"begin default", func() error { return db.BeginRunAccount(ctx, pool, run, "", 10, 25) }, nil},
		{"begin a", func() error { return db.BeginRunAccount(ctx, pool, run, "a", 3, 0) }, nil},
		{"begin a again (a retry) sets pending", func() error { return db.BeginRunAccount(ctx, pool, run, "a", 5, 12.5) }, nil},
		{"begin default again", func() error { return db.BeginRunAccount(ctx, pool, run, "", 10, 25) }, nil},
		{"begin of an unknown run", func() error { return db.BeginRunAccount(ctx, pool, 999999, "a", 1, 1) }, db.ErrRunNotFound},
		{"begin with negative pending", func() error { return db.BeginRunAccount(ctx, pool, run, "c", -1, 1) }, db.ErrInvalidArgument},
		{"skip b", func() error { return db.SkipRunAccount(ctx, pool, run, "b", "held by h2 (pid 7)") }, nil},
		{"skip b again", func() error { return db.SkipRunAccount(ctx, pool, run, "b", "held by h2 (pid 7)\x00, expires in 9s") }, nil},
		{"skip a taken-up account", func() error { return db.SkipRunAccount(ctx, pool, run, "a", "x") }, db.ErrInvalidArgument},
		{"skip in an unknown run", func() error { return db.SkipRunAccount(ctx, pool, 999999, "b", "x") }, db.ErrRunNotFound},
		{"begin a skipped account", func() error { return db.BeginRunAccount(ctx, pool, run, "b", 1, 1) }, db.ErrRunFinished},
		{"finish default", func() error {
			return db.FinishRunAccount(ctx, pool, run, "", db.RunAccountEnd{Status: db.RunAccountSucceeded, Done: 8, NotDone: 2, Requests: 11, Throttled: 1})
		}, nil},
		{"finish default again", func() error {
			return db.FinishRunAccount(ctx, pool, run, "", db.RunAccountEnd{Status: db.RunAccountSucceeded})
		}, db.ErrRunFinished},
		{"finish a, failed", func() error {
			return db.FinishRunAccount(ctx, pool, run, "a", db.RunAccountEnd{Status: db.RunAccountFailed,
				Reason: "credentials refused: AssumeRole", ErrorCode: "NoPermission", Requests: 1})
		}, nil},
		{"finish an account not taken up", func() error {
			return db.FinishRunAccount(ctx, pool, run, "zz", db.RunAccountEnd{Status: db.RunAccountSucceeded})
		}, db.ErrRunNotFound},
		{"finish with status running", func() error {
			return db.FinishRunAccount(ctx, pool, run, "a", db.RunAccountEnd{Status: db.RunAccountRunning})
		}, db.ErrInvalidArgument},
		{"finish with a negative count", func() error {
			return db.FinishRunAccount(ctx, pool, run, "a", db.RunAccountEnd{Status: db.RunAccountFailed, Done: -1})
		}, db.ErrInvalidArgument},
		{"begin a finished account", func() error { return db.BeginRunAccount(ctx, pool, run, "", 1, 1) }, db.ErrRunFinished},
	}
	for _, s := range steps {
		err := s.do()
		if (s.want == nil && err != nil) || (s.want != nil && !errors.Is(err, s.want)) {
			t.Errorf("%s: %v, want %v", s.name, err, s.want)
		}
	}

	got := map[string]string{}
	rows, err := pool.Query(ctx, `SELECT coalesce(account, 'NULL'), format('%s pending=%s rate=%s reason=%s code=%s done=%s not_done=%s requests=%s throttled=%s finished=%s',
		status, pending, coalesce(rate::text, 'NULL'), coalesce(reason, 'NULL'), coalesce(error_code, 'NULL'), done, not_done,
		requests, throttled, finished_at IS NOT NULL AND finished_at >= started_at)
		FROM reconcile_run_accounts WHERE run_id = $1`, run)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, v string
		if err := rows.Scan(&a, &v); err != nil {
			t.Fatal(err)
		}
		got[a] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"NULL": "succeeded pending=10 rate=25 reason=NULL code=NULL done=8 not_done=2 requests=11 throttled=1 finished=t",
		"a":    "failed pending=5 rate=12.5 reason=credentials refused: AssumeRole code=NoPermission done=0 not_done=0 requests=1 throttled=0 finished=t",
		"b":    "skipped pending=0 rate=NULL reason=held by h2 (pid 7), expires in 9s code=NULL done=0 not_done=0 requests=0 throttled=0 finished=t",
	}
	if !maps.Equal(got, want) {
		t.Errorf("reconcile_run_accounts:\n%v\nwant\n%v", got, want)
	}
}
