package db_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
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

func TestLeaseName(t *testing.T) {
	t.Parallel()
	for account, want := range map[string]string{"": "reconcile.run", "prod-cn": "reconcile.run/prod-cn", "a.b": "reconcile.run/a.b"} {
		if got := db.LeaseName(account); got != want {
			t.Errorf("LeaseName(%q) = %q, want %q", account, got, want)
		}
	}
}

// liveClaims returns the live claims of reconcile_run_lease: lease name ->
// holder.
func liveClaims(t *testing.T, tdb *testdb.DB) map[string]string {
	t.Helper()
	rows, err := tdb.Pool.Query(testutil.Context(t), `SELECT name, holder FROM reconcile_run_lease WHERE expires_at > now()`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var n, h string
		if err := rows.Scan(&n, &h); err != nil {
			t.Fatal(err)
		}
		out[n] = h
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func skippedAccounts(l *db.RunLock) []string {
	var out []string
	for _, h := range l.Skipped() {
		out = append(out, h.Account)
	}
	return out
}

// TestRunLeaseAccounts: a process takes the claims of the accounts it can
// and skips those another live process holds; it fails only when it could
// take none.
func TestRunLeaseAccounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		first, second []string
		taken         []string // by the second
		skipped       []string // by the second
		locked        bool     // the second fails with ErrLocked
	}{
		{name: "disjoint", first: []string{"", "a"}, second: []string{"c", "b"}, taken: []string{"b", "c"}},
		{name: "overlapping", first: []string{"a", "b"}, second: []string{"c", "b", ""}, taken: []string{"", "c"}, skipped: []string{"b"}},
		{name: "all taken", first: []string{"a", "b", ""}, second: []string{"b", "a"}, skipped: []string{"a", "b"}, locked: true},
		{name: "duplicates count once", first: []string{"a"}, second: []string{"c", "c", "a"}, taken: []string{"c"}, skipped: []string{"a"}},
		{name: "the default account, as AcquireRunLock", first: []string{""}, second: []string{""}, skipped: []string{""}, locked: true},
	}
	host, _ := os.Hostname()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tdb := testdb.New(t)
			ctx := testutil.Context(t)
			first, err := db.AcquireRunLease(ctx, tdb.Config(t), tt.first, db.RunLockOptions{})
			if err != nil {
				t.Fatalf("first AcquireRunLease: %v", err)
			}
			t.Cleanup(func() { _ = first.Release(context.Background()) })
			wantFirst := slices.Compact(slices.Sorted(slices.Values(tt.first)))
			if got := first.Accounts(); !slices.Equal(got, wantFirst) || len(first.Skipped()) != 0 {
				t.Fatalf("first: accounts %q, skipped %v; want %q, none", got, first.Skipped(), wantFirst)
			}
			second, err := db.AcquireRunLease(ctx, tdb.Config(t), tt.second, db.RunLockOptions{})
			if tt.locked {
				if !errors.Is(err, db.ErrLocked) {
					if second != nil {
						_ = second.Release(ctx)
					}
					t.Fatalf("second AcquireRunLease = %v, want ErrLocked", err)
				}
				for _, a := range tt.skipped {
					if want := fmt.Sprintf("%q held by %s (pid %d), expires in", db.LeaseName(a), host, os.Getpid()); !strings.Contains(err.Error(), want) {
						t.Errorf("refusal %q does not say %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("second AcquireRunLease: %v", err)
			}
			t.Cleanup(func() { _ = second.Release(context.Background()) })
			if got := second.Accounts(); !slices.Equal(got, tt.taken) {
				t.Errorf("second holds %q, want %q", got, tt.taken)
			}
			if got := skippedAccounts(second); !slices.Equal(got, tt.skipped) {
				t.Errorf("second skipped %q, want %q", got, tt.skipped)
			}
			for _, h := range second.Skipped() {
				if h.Host != host || h.PID != os.Getpid() || h.ExpiresIn <= 0 || h.ExpiresIn > db.RunLeaseTTL {
					t.Errorf("skipped claim %+v: want this host and pid, expiring within the TTL", h)
				}
			}
			if first.Holder() == second.Holder() || first.Holder() == "" {
				t.Fatalf("holders %q and %q", first.Holder(), second.Holder())
			}
			want := map[string]string{}
			for _, a := range first.Accounts() {
				want[db.LeaseName(a)] = first.Holder()
			}
			for _, a := range second.Accounts() {
				want[db.LeaseName(a)] = second.Holder()
			}
			if got := liveClaims(t, tdb); !maps.Equal(got, want) {
				t.Errorf("live claims %v, want %v", got, want)
			}
			// Released, the first's claims are free for the next process.
			if err := first.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if len(tt.skipped) > 0 {
				third, err := db.AcquireRunLease(ctx, tdb.Config(t), tt.skipped, db.RunLockOptions{})
				if err != nil {
					t.Fatalf("AcquireRunLease after the first's Release: %v", err)
				}
				defer third.Release(ctx)
				if got := third.Accounts(); !slices.Equal(got, tt.skipped) {
					t.Errorf("third holds %q, want %q", got, tt.skipped)
				}
			}
		})
	}
	if _, err := db.AcquireRunLease(testutil.Context(t), testdb.New(t).Config(t), nil, db.RunLockOptions{}); !errors.Is(err, db.ErrInvalidArgument) {
		t.Errorf("AcquireRunLease without accounts = %v, want ErrInvalidArgument", err)
	}
}

// TestRunLeaseLost: the holder of several claims renews them all; when one
// is taken over, expires or cannot be renewed, Lost closes and Err names
// what happened; Release ends the claims still held and leaves the others
// alone.
func TestRunLeaseLost(t *testing.T) {
	t.Parallel()
	lostName := db.LeaseName("b")
	tests := []struct {
		name  string
		lose  func(t *testing.T, tdb *testdb.DB) (undo func())
		want  []string // in Err
		other bool     // b is held by another process afterwards
	}{
		{name: "one claim taken over",
			lose: func(t *testing.T, tdb *testdb.DB) func() {
				if _, err := tdb.Pool.Exec(testutil.Context(t), `UPDATE reconcile_run_lease SET holder = 'other', expires_at = now() + interval '1 minute'
					WHERE name = $1`, lostName); err != nil {
					t.Fatal(err)
				}
				return func() {}
			},
			want: []string{`account "b" expired or another run took it over`}, other: true},
		{name: "one claim expired",
			lose: func(t *testing.T, tdb *testdb.DB) func() {
				if _, err := tdb.Pool.Exec(testutil.Context(t), `UPDATE reconcile_run_lease SET expires_at = now() - interval '1 second'
					WHERE name = $1`, lostName); err != nil {
					t.Fatal(err)
				}
				return func() {}
			},
			want: []string{`account "b" expired`}},
		{name: "renewals stall on one claim",
			lose: func(t *testing.T, tdb *testdb.DB) func() {
				ctx := testutil.Context(t)
				blocker, err := tdb.Pool.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := blocker.Exec(ctx, `SELECT FROM reconcile_run_lease WHERE name = $1 FOR UPDATE`, lostName); err != nil {
					t.Fatal(err)
				}
				return func() { _ = blocker.Rollback(ctx) }
			},
			want: []string{"not renewed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tdb := testdb.New(t)
			ctx := testutil.Context(t)
			renewed := make(chan time.Time, 100)
			l, err := db.AcquireRunLease(ctx, tdb.Config(t), []string{"b", "", "a"}, db.RunLockOptions{
				RenewInterval: 50 * time.Millisecond, StopAfter: time.Second, TTL: time.Minute,
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
			if got, want := l.Accounts(), []string{"", "a", "b"}; !slices.Equal(got, want) {
				t.Fatalf("Accounts() = %q, want %q", got, want)
			}
			// A renewal renews every claim.
			exp := <-renewed
			var n int
			if err := tdb.Pool.QueryRow(ctx, `SELECT count(*) FROM reconcile_run_lease
				WHERE holder = $1 AND renewed_at > acquired_at AND expires_at >= $2`, l.Holder(), exp).Scan(&n); err != nil || n != 3 {
				t.Fatalf("%d claims renewed to %v (%v), want 3", n, exp, err)
			}

			undo := tt.lose(t, tdb)
			waitClosed(t, l.Lost(), "Lost")
			err = l.Err()
			if !errors.Is(err, db.ErrLeaseLost) {
				t.Fatalf("Err() = %v, want ErrLeaseLost", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Err() = %q, want it to say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), `"a"`) || strings.Contains(err.Error(), `"default"`) {
				t.Errorf("Err() = %q names claims that were renewed", err)
			}
			// The holder stopped while its other claims are still live on the
			// server: nobody else can take them yet, but b, once free, is
			// free for another process.
			if tt.name == "one claim expired" {
				other, err := db.AcquireRunLease(ctx, tdb.Config(t), []string{"", "a", "b"}, db.RunLockOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if got := other.Accounts(); !slices.Equal(got, []string{"b"}) || !slices.Equal(skippedAccounts(other), []string{"", "a"}) {
					t.Errorf("another process took %q and skipped %q, want b and the other two", got, skippedAccounts(other))
				}
				if err := other.Release(ctx); err != nil {
					t.Fatal(err)
				}
			}
			undo()
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			if tt.other {
				want[lostName] = "other"
			}
			if got := liveClaims(t, tdb); !maps.Equal(got, want) {
				t.Errorf("live claims after Release: %v, want %v", got, want)
			}
		})
	}
}
