package app

// Tests of the job at its boundaries: behind PgBouncer, with the database
// partitioned away or stalled by another session's lock, at start and at
// shutdown, and read-only commands next to a real run.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/logging"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// runCtx is h.run with a context the test cancels (a signal) and an
// optional stdout.
func (h *harness) runCtx(ctx context.Context, c config.Run, stdout *blockingWriter) error {
	h.t.Helper()
	env := Env{Stdout: h.log, Stderr: h.log, Redactor: h.red,
		Logger:      logging.New(h.log, logging.Options{Format: "json", Level: c.LogLevel, Redactor: h.red}),
		Credentials: live.StaticCredentials(testKeyID, testSecret, "")}
	if stdout != nil {
		env.Stdout = stdout
	}
	return Run(ctx, c, env)
}

// proxied returns a proxy in front of h's database and the database's URL
// through it; it skips when the test database is on a unix socket.
func (h *harness) proxied() (*proxy, string) {
	h.t.Helper()
	cc, err := pgx.ParseConfig(h.db.URL)
	if err != nil {
		h.t.Fatal(err)
	}
	if cc.Host == "" || cc.Host[0] == '/' {
		h.t.Skip("the test database is on a unix socket; the proxy needs TCP")
	}
	p := newProxy(h.t, net.JoinHostPort(cc.Host, fmt.Sprint(cc.Port)))
	u := url.URL{Scheme: "postgres", User: url.UserPassword(cc.User, cc.Password), Host: p.addr,
		Path: "/" + cc.Database, RawQuery: "sslmode=disable"}
	return p, u.String()
}

// blockingWriter blocks its first Write until release is closed, after
// telling started.
type blockingWriter struct {
	started, release chan struct{}
	once             sync.Once
	buf              testutil.Buffer
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
}

func (w *blockingWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { close(w.started); <-w.release })
	return w.buf.Write(b)
}

// await waits for ch; a minute is far beyond any bound under test.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// TestRunThroughPgBouncer: with a plain DATABASE_URL pointing at PgBouncer
// (no query-mode parameter, PgBouncer's defaults), a run completes in both
// pooling modes, and a rerun sends nothing.
func TestRunThroughPgBouncer(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{testdb.PoolTransaction, testdb.PoolSession} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, livesim.Options{Latency: livesim.Latency{Median: 2 * time.Millisecond}, Seed: 11})
			h.rows(300)
			c := h.config()
			c.DatabaseURL = h.db.ThroughPgBouncer(t, mode)
			c.FlushInterval, c.FlushSize = 50*time.Millisecond, 25 // many small batches through the pooler
			if err := h.run(c, testSecret); err != nil {
				t.Fatalf("run through PgBouncer (%s pooling): %v\n%s", mode, err, h.log.String())
			}
			h.checkDoneOnce()
			before := len(h.sim.Log())
			if err := h.run(c, testSecret); err != nil || len(h.sim.Log()) != before {
				t.Fatalf("rerun: %v, %d requests; want nil and none", err, len(h.sim.Log())-before)
			}
		})
	}
}

// TestTwoRunsThroughPgBouncer: two runs through PgBouncer at once: the one
// that holds the claim works, the other exits 3 having sent nothing and
// recorded no run.
func TestTwoRunsThroughPgBouncer(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{testdb.PoolTransaction, testdb.PoolSession} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, livesim.Options{Seed: 12})
			h.rows(200)
			c := h.config()
			c.DatabaseURL = h.db.ThroughPgBouncer(t, mode)
			c.Rate, c.AllowRateAboveLimit, c.Grace = 10, false, 5*time.Second // 20 s of work
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errA := make(chan error, 1)
			go func() { errA <- h.runCtx(ctx, c, nil) }()
			waitFor(t, "run A to send", func() bool {
				select {
				case err := <-errA:
					t.Fatalf("run A ended early: %v\n%s", err, h.log.String())
				default:
				}
				return len(h.sim.Log()) > 0
			})
			errB := h.runCtx(context.Background(), c, nil)
			if !errors.Is(errB, db.ErrLocked) || ExitCode(errB) != 3 {
				t.Fatalf("run B = %v (exit %d), want ErrLocked (exit 3)", errB, ExitCode(errB))
			}
			select {
			case err := <-errA:
				t.Fatalf("run A ended before run B did (%v): the runs did not overlap", err)
			default:
			}
			if n := h.count(`SELECT count(*) FROM reconcile_runs`); n != 1 {
				t.Fatalf("%d run rows, want A's only", n)
			}
			cancel() // SIGTERM to A
			if err := await(t, errA, "run A to end"); !errors.Is(err, apply.ErrInterrupted) {
				t.Fatalf("run A = %v, want ErrInterrupted", err)
			}
			var requests int
			if err := h.db.Pool.QueryRow(context.Background(), `SELECT requests FROM reconcile_runs`).Scan(&requests); err != nil {
				t.Fatal(err)
			}
			if sent := len(h.sim.Log()); sent != requests {
				t.Fatalf("simulator saw %d requests, run A counted %d: B must send none", sent, requests)
			}
		})
	}
}

// TestReadOnlyCommandsNeedNoClaim: a dry run and a plan work while another
// run holds the claim, and a real run started while a dry run is half-way
// works: read-only commands neither take nor wait for the claim.
func TestReadOnlyCommandsNeedNoClaim(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{Seed: 13})
	h.rows(20)
	ctx := context.Background()

	lock, err := db.AcquireRunLock(ctx, h.db.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	c := h.config()
	c.DryRun = true
	out := newBlockingWriter()
	close(out.release)
	if err := h.runCtx(ctx, c, out); !errors.Is(err, ErrPlanPending) || ExitCode(err) != ExitPending {
		t.Fatalf("dry run while a run holds the claim = %v (exit %d), want ErrPlanPending (exit 5)", err, ExitCode(err))
	}
	if !strings.Contains(out.buf.String(), "add pg0000.example.com") {
		t.Fatalf("dry run printed no plan:\n%s", out.buf.String())
	}
	err = Plan(ctx, PlanConfig{DatabaseURL: h.db.URL, Format: FormatTable}, Env{Stdout: &testutil.Buffer{}, Logger: nopLogger(h)})
	if !errors.Is(err, ErrPlanPending) {
		t.Fatalf("plan while a run holds the claim = %v, want ErrPlanPending", err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A dry run half-way (blocked writing its plan) does not stop a run.
	out = newBlockingWriter()
	dry := make(chan error, 1)
	go func() { dry <- h.runCtx(ctx, c, out) }()
	await(t, out.started, "the dry run to print")
	if err := h.runCtx(ctx, h.config(), nil); err != nil {
		t.Fatalf("run while a dry run is in progress = %v (exit %d), want success", err, ExitCode(err))
	}
	close(out.release)
	if err := await(t, dry, "the dry run to end"); err != nil && !errors.Is(err, ErrPlanPending) {
		t.Fatalf("dry run: %v", err)
	}
	h.checkDoneOnce()
}

// TestPartitionStopsRun: the database is partitioned away mid-run (the
// proxy accepts and reads but forwards nothing): the run stops within
// --db-retry-deadline instead of waiting for TCP to give up, exits 6, and
// a rerun once the network is back completes with nothing lost or doubled.
func TestPartitionStopsRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{Latency: livesim.Latency{Median: 5 * time.Millisecond}, Seed: 14})
	h.rows(600)
	p, u := h.proxied()
	c := h.config()
	c.DatabaseURL = u
	c.Rate, c.DBRetryDeadline, c.FlushInterval = 100, 2*time.Second, 100*time.Millisecond
	errc := make(chan error, 1)
	go func() { errc <- h.run(c, testSecret) }()
	waitFor(t, "outcomes", func() bool { return h.count(`SELECT count(*) FROM reconcile_outcomes`) >= 50 })
	p.blackhole()
	err := await(t, errc, "the partitioned run to stop")
	if ExitCode(err) != ExitUnavailable {
		t.Fatalf("partitioned run = %v (exit %d), want exit 6", err, ExitCode(err))
	}
	t.Logf("partitioned run stopped with: %v", err)
	if len(h.sim.Log()) >= 600 {
		t.Fatalf("the run went on without its database: %d requests", len(h.sim.Log()))
	}
	p.cut()
	p.listen(p.addr)
	// Its claim could not be released: it is live until it expires.
	if n := h.count(`SELECT count(*) FROM reconcile_run_lease WHERE expires_at > now()`); n != 1 {
		t.Fatalf("%d live claims after the partition, want the stopped run's", n)
	}
	h.exec(`UPDATE reconcile_run_lease SET expires_at = now()`) // as db.RunLeaseTTL would
	if err := h.run(c, testSecret); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	h.checkDoneOnce()
}

// TestSignalWhileDatabaseStuck: SIGTERM while the database does not answer
// — another session holds an exclusive lock on the outcome table, or the
// network is partitioned — ends the run within --grace plus a few seconds
// (here: --db-retry-deadline is the default minute, so only the shutdown
// bound can end the waits). Outcomes that could not be written stay
// pending: a rerun afterwards completes with nothing lost or doubled.
func TestSignalWhileDatabaseStuck(t *testing.T) {
	t.Parallel()
	for _, stuck := range []string{"table_locked", "partitioned"} {
		t.Run(stuck, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, livesim.Options{Latency: livesim.Latency{Median: 5 * time.Millisecond}, Seed: 15})
			h.rows(600)
			c := h.config()
			var p *proxy
			if stuck == "partitioned" {
				p, c.DatabaseURL = h.proxied()
			}
			c.Rate, c.Grace, c.FlushInterval = 100, 2*time.Second, 100*time.Millisecond
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- h.runCtx(ctx, c, nil) }()
			waitFor(t, "outcomes", func() bool { return h.count(`SELECT count(*) FROM reconcile_outcomes`) >= 50 })

			var blocker pgx.Tx
			if stuck == "table_locked" {
				var err error
				if blocker, err = h.db.Pool.Begin(context.Background()); err != nil {
					t.Fatal(err)
				}
				defer blocker.Rollback(context.Background())
				if _, err := blocker.Exec(context.Background(), `LOCK TABLE reconcile_outcomes IN ACCESS EXCLUSIVE MODE`); err != nil {
					t.Fatal(err)
				}
				// A write is waiting for the lock: the run is stuck.
				waitFor(t, "an outcome write to wait for the lock", func() bool {
					return h.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
						AND application_name = $1 AND wait_event_type = 'Lock'`, ApplicationName) > 0
				})
			} else {
				p.blackhole()
			}
			signalled := time.Now()
			cancel()
			err := await(t, errc, "the run to end after the signal")
			took := time.Since(signalled)
			// The documented bound is grace + ShutdownWriteTimeout +
			// ShutdownFinishTimeout + ShutdownReleaseTimeout (8 s here); the
			// check is generous, the point is that it ends at all.
			if limit := c.Grace + 20*time.Second; took > limit {
				t.Fatalf("the run ended %s after the signal, want within %s\n%s", took.Round(time.Millisecond), limit, h.log.String())
			}
			t.Logf("ended %s after the signal: %v", took.Round(time.Millisecond), err)
			if err == nil {
				t.Fatal("run = nil, want an error")
			}
			if blocker != nil {
				if err := blocker.Rollback(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else {
				p.cut()
				p.listen(p.addr)
			}
			h.exec(`UPDATE reconcile_run_lease SET expires_at = now()`) // a claim not released expires
			if err := h.runCtx(context.Background(), c, nil); err != nil {
				t.Fatalf("rerun: %v\n%s", err, h.log.String())
			}
			h.checkDoneOnce()
		})
	}
}

// TestStartWaitsForDatabase: the database is unreachable when the run
// starts: it retries (within --db-retry-deadline) and works once the
// database answers; with the database gone for longer it gives up after the
// deadline (exit 6).
func TestStartWaitsForDatabase(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{Seed: 16})
	h.rows(30)
	p, u := h.proxied()
	c := h.config()
	c.DatabaseURL = u
	p.cut() // connection refused

	c.DBRetryDeadline = 500 * time.Millisecond
	err := h.run(c, testSecret)
	if !errors.Is(err, ErrDBDeadline) && !db.IsRetryable(err) || ExitCode(err) != ExitUnavailable {
		t.Fatalf("run with the database gone = %v (exit %d), want a connection error (exit 6)", err, ExitCode(err))
	}
	if !strings.Contains(h.log.String(), "database call failed; retrying") {
		t.Fatalf("no retry logged before giving up:\n%s", h.log.String())
	}

	c.DBRetryDeadline = time.Minute
	logged := len(h.log.String())
	errc := make(chan error, 1)
	go func() { errc <- h.run(c, testSecret) }()
	waitFor(t, "a retry", func() bool {
		return strings.Contains(h.log.String()[logged:], "database call failed; retrying")
	})
	p.listen(p.addr) // the database is back
	if err := await(t, errc, "the run"); err != nil {
		t.Fatalf("run = %v, want success once the database answers", err)
	}
	h.checkDoneOnce()
}

// TestRunConnectionSettings: the run's connections carry the server-side
// bounds and the pooler-safe query mode; a query mode in the URL wins.
func TestRunConnectionSettings(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	ctx := context.Background()
	c := h.config()
	st := &store{deadline: time.Minute}
	pool, err := connectRun(ctx, c, nopLogger(h), st)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if m := pool.Config().ConnConfig.DefaultQueryExecMode; m != db.DefaultQueryExecMode {
		t.Fatalf("query mode %v, want %v", m, db.DefaultQueryExecMode)
	}
	want := map[string]string{"statement_timeout": "1min", "lock_timeout": "10s",
		"idle_in_transaction_session_timeout": "30s", "tcp_keepalives_idle": "15", "tcp_user_timeout": "30000"}
	var unixSocket bool
	if err := pool.QueryRow(ctx, "SELECT inet_server_addr() IS NULL").Scan(&unixSocket); err != nil {
		t.Fatal(err)
	}
	if unixSocket { // the test cluster listens on a Unix socket: no TCP settings to see
		delete(want, "tcp_keepalives_idle")
		delete(want, "tcp_user_timeout")
	}
	for name, want := range want {
		var got string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("default_query_exec_mode", "exec")
	q.Set("statement_timeout", "5000")
	u.RawQuery = q.Encode()
	c.DatabaseURL = u.String()
	pool2, err := connectRun(ctx, c, nopLogger(h), st)
	if err != nil {
		t.Fatal(err)
	}
	defer pool2.Close()
	if m := pool2.Config().ConnConfig.DefaultQueryExecMode; m != pgx.QueryExecModeExec {
		t.Fatalf("query mode %v, want exec (from the URL)", m)
	}
	var got string
	if err := pool2.QueryRow(ctx, "SHOW statement_timeout").Scan(&got); err != nil || got != "5s" {
		t.Fatalf("statement_timeout = %q, %v; want the URL's 5s", got, err)
	}
}
