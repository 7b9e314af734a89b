package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// waitClosed waits for ch to close; a minute is far beyond any bound under
// test, so only a broken implementation reaches it.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func lockConfig(t *testing.T, url string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	db.ConfigureConn(cfg, url, db.ConnOptions{})
	return cfg
}

// TestRunLockExcludes: one claim at a time, directly and through PgBouncer
// in both pooling modes (a session advisory lock does not hold through
// transaction pooling); release frees it at once; the refusal names the
// holder.
func TestRunLockExcludes(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"direct", testdb.PoolTransaction, testdb.PoolSession} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			tdb := testdb.New(t)
			ctx := testutil.Context(t)
			url := tdb.URL
			if via != "direct" {
				url = tdb.ThroughPgBouncer(t, via)
			}
			first, err := db.AcquireRunLock(ctx, lockConfig(t, url))
			if err != nil {
				t.Fatalf("first AcquireRunLock: %v", err)
			}
			t.Cleanup(func() { _ = first.Release(context.Background()) })
			for i := 0; i < 5; i++ { // several tries: a pooler may hand out any server connection
				l, err := db.AcquireRunLock(ctx, lockConfig(t, url))
				if !errors.Is(err, db.ErrLocked) {
					if l != nil {
						_ = l.Release(ctx)
					}
					t.Fatalf("second AcquireRunLock (try %d) = %v, want ErrLocked", i+1, err)
				}
				if !strings.Contains(err.Error(), "held by") || !strings.Contains(err.Error(), "expires in") {
					t.Fatalf("refusal %q does not name the holder and the expiry", err)
				}
			}
			if err := first.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if err := first.Release(ctx); err != nil {
				t.Fatalf("second Release: %v", err)
			}
			select {
			case <-first.Lost():
				t.Fatal("Release closed Lost")
			default:
			}
			second, err := db.AcquireRunLock(ctx, lockConfig(t, url))
			if err != nil {
				t.Fatalf("AcquireRunLock after Release: %v", err)
			}
			if err := second.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
		})
	}
}

// TestRunLockCrashedHolder: a claim whose holder stopped renewing (its
// process died) blocks until it expires by the database's clock, and is
// taken over after that.
func TestRunLockCrashedHolder(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	crashed := func(expires string) {
		t.Helper()
		if _, err := tdb.Pool.Exec(ctx, `INSERT INTO reconcile_run_lease (name, holder, host_name, pid, acquired_at, renewed_at, expires_at)
			VALUES ($1, 'crashed', 'deadhost', 4242, now() - interval '1 hour', now() - interval '1 minute', now() + $2::interval)
			ON CONFLICT (name) DO UPDATE SET holder = 'crashed', expires_at = now() + $2::interval`, db.RunLockName, expires); err != nil {
			t.Fatal(err)
		}
	}
	crashed("20 seconds") // died 10 s ago: 20 s left
	if l, err := db.AcquireRunLock(ctx, tdb.Config(t)); !errors.Is(err, db.ErrLocked) {
		if l != nil {
			_ = l.Release(ctx)
		}
		t.Fatalf("AcquireRunLock over a live claim = %v, want ErrLocked", err)
	} else if !strings.Contains(err.Error(), "deadhost (pid 4242)") {
		t.Fatalf("refusal %q does not name the holder", err)
	}
	crashed("-1 second") // expired
	l, err := db.AcquireRunLock(ctx, tdb.Config(t))
	if err != nil {
		t.Fatalf("AcquireRunLock over an expired claim: %v", err)
	}
	defer l.Release(ctx)
	var holder string
	var live bool
	if err := tdb.Pool.QueryRow(ctx, `SELECT holder, expires_at > now() FROM reconcile_run_lease WHERE name = $1`,
		db.RunLockName).Scan(&holder, &live); err != nil {
		t.Fatal(err)
	}
	if holder == "crashed" || !live {
		t.Fatalf("claim row after the take-over: holder %q, live %v", holder, live)
	}
}

// TestRunLockHeartbeat: the holder renews its claim (expires_at moves on,
// by the database's clock), and a claim taken over by another process
// closes Lost with the reason.
func TestRunLockHeartbeat(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	renewed := make(chan time.Time, 100)
	l, err := db.AcquireRunLockWith(ctx, tdb.Config(t), db.RunLockOptions{RenewInterval: 20 * time.Millisecond,
		OnRenew: func(exp time.Time) {
			select {
			case renewed <- exp:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	first := <-renewed
	var second time.Time
	for second = range renewed {
		if second.After(first) {
			break
		}
	}
	var stored time.Time
	if err := tdb.Pool.QueryRow(ctx, `SELECT expires_at FROM reconcile_run_lease WHERE name = $1`, db.RunLockName).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored.Before(second) {
		t.Fatalf("stored expiry %v before the renewal's %v", stored, second)
	}
	select {
	case <-l.Lost():
		t.Fatalf("Lost closed while renewing: %v", l.Err())
	default:
	}

	// Another process took the claim over (after it expired, say): the
	// holder's next renewal finds out.
	if _, err := tdb.Pool.Exec(ctx, `UPDATE reconcile_run_lease SET holder = 'other', expires_at = now() + interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, l.Lost(), "Lost after a take-over")
	if err := l.Err(); !errors.Is(err, db.ErrLeaseLost) || !strings.Contains(err.Error(), "took it over") {
		t.Fatalf("Err() = %v, want ErrLeaseLost saying it was taken over", err)
	}
	// Release does not touch another holder's claim.
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	var holder string
	if err := tdb.Pool.QueryRow(ctx, `SELECT holder FROM reconcile_run_lease WHERE expires_at > now()`).Scan(&holder); err != nil || holder != "other" {
		t.Fatalf("live claim after the loser's Release: %q, %v; want other's", holder, err)
	}
}

// TestRunLockStalledRenewal: renewals that get no answer (here: another
// session holds the claim row's lock) close Lost after StopAfter, while the
// claim has not yet expired on the server — the holder stops before anyone
// else can start — and nobody else can take it until it expires.
func TestRunLockStalledRenewal(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	l, err := db.AcquireRunLockWith(ctx, tdb.Config(t), db.RunLockOptions{
		RenewInterval: 50 * time.Millisecond, StopAfter: time.Second, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	blocker, err := tdb.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx)
	if _, err := blocker.Exec(ctx, `SELECT FROM reconcile_run_lease WHERE name = $1 FOR UPDATE`, db.RunLockName); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, l.Lost(), "Lost while renewals stall")
	if err := l.Err(); !errors.Is(err, db.ErrLeaseLost) || !strings.Contains(err.Error(), "not renewed") {
		t.Fatalf("Err() = %v, want ErrLeaseLost saying it was not renewed", err)
	}
	var live bool
	if err := tdb.Pool.QueryRow(ctx, `SELECT expires_at > now() FROM reconcile_run_lease`).Scan(&live); err != nil || !live {
		t.Fatalf("claim live on the server when the holder gave up: %v, %v; want true (the holder stops first)", live, err)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if l2, err := db.AcquireRunLock(ctx, tdb.Config(t)); !errors.Is(err, db.ErrLocked) {
		if l2 != nil {
			_ = l2.Release(ctx)
		}
		t.Fatalf("AcquireRunLock before the lost claim expired = %v, want ErrLocked", err)
	}
}

// Claims are per database: runs on two databases do not exclude each other.
func TestRunLockPerDatabase(t *testing.T) {
	t.Parallel()
	ctx := testutil.Context(t)
	a, b := testdb.New(t), testdb.New(t)
	la, err := db.AcquireRunLock(ctx, a.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release(ctx)
	lb, err := db.AcquireRunLock(ctx, b.Config(t))
	if err != nil {
		t.Fatalf("lock on another database: %v", err)
	}
	defer lb.Release(ctx)
}
