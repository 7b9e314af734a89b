package db_test

import (
	"errors"
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
