package db

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RunLockName is the name of the run claim: the key of its row in
// reconcile_run_lease.
const RunLockName = "reconcile.run"

// The run lock is a lease: a row in reconcile_run_lease that names its
// holder and an expiry by the database's clock. Its timing:
//
//   - RunLeaseTTL: a claim not renewed for this long (server time, from the
//     last renewal) is free for the next run. A process that died — even by
//     SIGKILL, or cut off by a partition — holds it at most this long.
//   - RunLeaseRenewInterval: how often the holder renews (heartbeat).
//   - RunLeaseStopAfter: the holder counts the claim as lost (Lost closes)
//     when no renewal succeeded within this long after the last successful
//     one was sent, by its own monotonic clock. That moment comes at least
//     RunLeaseTTL − RunLeaseStopAfter (15 s) before any other run can take
//     the claim, which leaves requests already in flight (bounded by
//     --request-timeout, 10 s by default) time to end first.
//   - RunLeaseCallTimeout bounds each take, renew and release statement.
//
// So a run whose database is cut off stops sending new requests at most
// RunLeaseStopAfter (15 s) after its last successful renewal, i.e. at most
// RunLeaseStopAfter + RunLeaseRenewInterval (20 s) after the cut; a run
// whose claim was taken over (only possible once it expired) stops at its
// next renewal.
const (
	RunLeaseTTL           = 30 * time.Second
	RunLeaseRenewInterval = 5 * time.Second
	RunLeaseStopAfter     = 15 * time.Second
	RunLeaseCallTimeout   = 5 * time.Second
)

// LockApplicationName is set as application_name on the lease's
// connections, so operators can find them in pg_stat_activity.
const LockApplicationName = "reconcile-run-lock"

// ErrLeaseLost: the run claim was lost (Lost closed); RunLock.Err says why.
var ErrLeaseLost = errors.New("run claim lost")

const (
	sqlTakeLease = `INSERT INTO reconcile_run_lease AS l (name, holder, host_name, pid, acquired_at, renewed_at, expires_at)
VALUES ($1, $2, $3, $4, now(), now(), now() + $5 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, host_name = excluded.host_name, pid = excluded.pid,
	acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at, expires_at = excluded.expires_at
WHERE l.expires_at <= now()
RETURNING expires_at`

	sqlLeaseHolder = `SELECT host_name, pid, expires_at, greatest(expires_at - now(), interval '0') FROM reconcile_run_lease WHERE name = $1`

	sqlRenewLease = `UPDATE reconcile_run_lease SET renewed_at = now(), expires_at = now() + $3 * interval '1 millisecond'
WHERE name = $1 AND holder = $2 AND expires_at > now()
RETURNING expires_at`

	sqlReleaseLease = `UPDATE reconcile_run_lease SET expires_at = now() WHERE name = $1 AND holder = $2 AND expires_at > now()`
)

// RunLockOptions tunes AcquireRunLockWith. Zero fields take the RunLease*
// constants. Tests shorten them; the job uses the defaults.
type RunLockOptions struct {
	TTL           time.Duration
	RenewInterval time.Duration
	StopAfter     time.Duration // must be below TTL
	CallTimeout   time.Duration
	// OnRenew, when set, is called after each successful renewal with the
	// new expiry (database clock). It must not block.
	OnRenew func(expires time.Time)
}

func (o RunLockOptions) withDefaults() RunLockOptions {
	if o.TTL <= 0 {
		o.TTL = RunLeaseTTL
	}
	if o.RenewInterval <= 0 {
		o.RenewInterval = RunLeaseRenewInterval
	}
	if o.StopAfter <= 0 {
		o.StopAfter = RunLeaseStopAfter
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = RunLeaseCallTimeout
	}
	return o
}

// RunLock is a held run claim (a lease). A heartbeat goroutine renews it
// every RenewInterval until Release; Lost is closed when the claim is lost.
type RunLock struct {
	o      RunLockOptions
	pool   *pgxpool.Pool
	holder string

	// renewCtx is the parent of every renewal; Release cancels it.
	renewCtx    context.Context
	cancelRenew context.CancelFunc

	lost     chan struct{}
	lostOnce sync.Once
	lostErr  error
	stop     chan struct{}
	done     chan struct{}
	released bool
}

// AcquireRunLock takes the run claim with the default timing; see
// AcquireRunLockWith.
func AcquireRunLock(ctx context.Context, cfg *pgx.ConnConfig) (*RunLock, error) {
	return AcquireRunLockWith(ctx, cfg, RunLockOptions{})
}

// AcquireRunLockWith takes the run claim of the database cfg points at, on a
// small pool of its own built from cfg (application_name
// LockApplicationName). It works through any connection pooler: the claim
// is one row, taken in one statement, and nothing depends on a session.
//
// It does not wait: when another process holds a claim that has not expired
// (database clock), it returns an error wrapping ErrLocked that names the
// holder's host and pid and when the claim expires. A claim that expired —
// its holder died or was cut off — or was released is taken over. ctx
// bounds the connect and the take.
//
// Guarantees once it returned a RunLock:
//   - No other AcquireRunLock on the database succeeds until this claim was
//     released or expired: RunLeaseTTL after its last renewal, by now().
//   - Lost is closed, and Err says why, when a renewal finds the claim
//     expired or held by another process, or when no renewal succeeded for
//     StopAfter (a partition, a database that does not answer) — before the
//     claim can expire on the server, as long as the two clocks run at the
//     same rate.
func AcquireRunLockWith(ctx context.Context, cfg *pgx.ConnConfig, o RunLockOptions) (*RunLock, error) {
	o = o.withDefaults()
	if o.StopAfter >= o.TTL {
		return nil, fmt.Errorf("db: run lock: StopAfter %s must be below TTL %s: %w", o.StopAfter, o.TTL, ErrInvalidArgument)
	}
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("db: run lock: %w", err)
	}
	pc.ConnConfig = cfg.Copy()
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	// Always ours, so that operators (and tests) can tell the lease's
	// connections apart in pg_stat_activity.
	pc.ConnConfig.RuntimeParams["application_name"] = LockApplicationName
	pc.MaxConns, pc.MinConns = 1, 0
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("db: run lock: %w", err)
	}
	holder, err := newHolder()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: run lock: %w", err)
	}
	host, _ := os.Hostname()

	sent := time.Now()
	tctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
	defer cancel()
	var expires time.Time
	err = pool.QueryRow(tctx, sqlTakeLease, RunLockName, holder, host, os.Getpid(), o.TTL.Milliseconds()).Scan(&expires)
	if errors.Is(err, pgx.ErrNoRows) {
		err = heldBy(tctx, pool)
		pool.Close()
		return nil, err
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: run lock: take the claim: %w", err)
	}
	l := &RunLock{o: o, pool: pool, holder: holder,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	l.renewCtx, l.cancelRenew = context.WithCancel(context.Background())
	go l.heartbeat(sent)
	return l, nil
}

// heldBy describes the live claim that stopped a take, wrapping ErrLocked.
func heldBy(ctx context.Context, q Querier) error {
	var host string
	var pid int
	var expires time.Time
	var left time.Duration
	if err := q.QueryRow(ctx, sqlLeaseHolder, RunLockName).Scan(&host, &pid, &expires, &left); err != nil {
		return fmt.Errorf("db: run lock %q: %w", RunLockName, ErrLocked)
	}
	return fmt.Errorf("db: run lock %q: held by %s (pid %d), expires in %s unless renewed: %w",
		RunLockName, host, pid, left.Round(time.Second), ErrLocked)
}

func newHolder() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// heartbeat renews the claim every RenewInterval. lastOK is when the last
// successful renewal (or the take) was sent, by the local monotonic clock:
// the server's expiry is at least lastOK + TTL.
func (l *RunLock) heartbeat(lastOK time.Time) {
	defer close(l.done)
	t := time.NewTicker(l.o.RenewInterval)
	defer t.Stop()
	var lastErr error
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		deadline := lastOK.Add(l.o.StopAfter)
		if !time.Now().Before(deadline) {
			l.markLost(fmt.Errorf("%w: not renewed for %s (last error: %v)", ErrLeaseLost, l.o.StopAfter, lastErr))
			return
		}
		sent := time.Now()
		callEnd := sent.Add(l.o.CallTimeout)
		if deadline.Before(callEnd) {
			callEnd = deadline
		}
		ctx, cancel := context.WithDeadline(l.renewCtx, callEnd)
		var expires time.Time
		err := l.pool.QueryRow(ctx, sqlRenewLease, RunLockName, l.holder, l.o.TTL.Milliseconds()).Scan(&expires)
		cancel()
		switch {
		case err == nil:
			lastOK, lastErr = sent, nil
			if l.o.OnRenew != nil {
				l.o.OnRenew(expires)
			}
		case l.renewCtx.Err() != nil:
			return // Release
		case errors.Is(err, pgx.ErrNoRows):
			l.markLost(fmt.Errorf("%w: the claim expired or another run took it over", ErrLeaseLost))
			return
		default:
			lastErr = err
			if !time.Now().Before(deadline) {
				l.markLost(fmt.Errorf("%w: not renewed for %s (last error: %v)", ErrLeaseLost, l.o.StopAfter, lastErr))
				return
			}
		}
	}
}

func (l *RunLock) markLost(err error) {
	l.lostOnce.Do(func() {
		l.lostErr = err
		close(l.lost)
	})
}

// Lost returns a channel that is closed when the claim is lost: a renewal
// found it expired or taken over, or no renewal succeeded for StopAfter.
// From then on another run may hold it (once it expired), and the caller
// must stop starting work. It is never closed by Release.
func (l *RunLock) Lost() <-chan struct{} { return l.lost }

// Err returns why the claim was lost (wrapping ErrLeaseLost), or nil while
// Lost is open.
func (l *RunLock) Err() error {
	select {
	case <-l.lost:
		return l.lostErr
	default:
		return nil
	}
}

// Release stops the heartbeat, ends the claim (expires_at = now(), so the
// next run may take it at once) and closes the lease's pool. Everything it
// waits for is bounded by ctx and by CallTimeout: when the database does not
// answer it returns the error and leaves the pool to close in the
// background; the claim then simply expires RunLeaseTTL after its last
// renewal, so the error is only informative. Calling Release again returns
// nil. It must not be called concurrently with itself.
func (l *RunLock) Release(ctx context.Context) error {
	if l.released {
		return nil
	}
	l.released = true
	ctx, cancel := context.WithTimeout(ctx, l.o.CallTimeout)
	defer cancel()
	close(l.stop)
	l.cancelRenew()
	select {
	case <-l.done:
	case <-ctx.Done():
		go func() { <-l.done; l.pool.Close() }()
		return fmt.Errorf("db: run lock: release: a renewal does not end: %w", ctx.Err())
	}
	_, err := l.pool.Exec(ctx, sqlReleaseLease, RunLockName, l.holder)
	closed := make(chan struct{})
	go func() { l.pool.Close(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
	}
	if err != nil {
		return fmt.Errorf("db: run lock: release: %w", err)
	}
	return nil
}
