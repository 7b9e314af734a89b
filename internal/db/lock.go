package db

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/model"
)

// RunLockName is the name of the default account's run claim: the key of
// its row in reconcile_run_lease (see LeaseName).
const RunLockName = "reconcile.run"

// LeaseName returns the name of account's run claim, the key of its row in
// reconcile_run_lease: RunLockName for the default account (""), as before
// accounts existed, so that an older program and this one exclude each
// other on it; RunLockName + "/" + account for a named one.
func LeaseName(account string) string {
	if account == "" {
		return RunLockName
	}
	return RunLockName + "/" + account
}

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

// ErrLeaseLost: a run claim was lost (Lost closed); RunLock.Err says why.
var ErrLeaseLost = errors.New("run claim lost")

// The claim statements ($1: the lease names, $2: the holder token). Each
// handles every name of the process in one statement, so the claims of a
// process are taken, renewed and released together. All of them lock the
// rows they touch in name order (the take inserts in that order, renewals
// and releases lock through an ORDER BY ... FOR UPDATE), so two processes
// whose names overlap do not deadlock on them.
const (
	sqlTakeLeases = `INSERT INTO reconcile_run_lease AS l (name, holder, host_name, pid, acquired_at, renewed_at, expires_at)
SELECT t.name, $2, $3, $4, now(), now(), now() + $5 * interval '1 millisecond'
FROM unnest($1::text[]) AS t(name)
ORDER BY t.name
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, host_name = excluded.host_name, pid = excluded.pid,
	acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at, expires_at = excluded.expires_at
WHERE l.expires_at <= now()
RETURNING name`

	sqlLeaseHolders = `SELECT name, host_name, pid, greatest(expires_at - now(), interval '0')
FROM reconcile_run_lease WHERE name = ANY($1::text[]) AND holder <> $2`

	sqlRenewLeases = `WITH mine AS (
    SELECT name FROM reconcile_run_lease WHERE name = ANY($1::text[]) AND holder = $2 AND expires_at > now()
    ORDER BY name FOR UPDATE
)
UPDATE reconcile_run_lease l SET renewed_at = now(), expires_at = now() + $3 * interval '1 millisecond'
FROM mine WHERE l.name = mine.name
RETURNING l.name, l.expires_at`

	sqlReleaseLeases = `WITH mine AS (
    SELECT name FROM reconcile_run_lease WHERE name = ANY($1::text[]) AND holder = $2 AND expires_at > now()
    ORDER BY name FOR UPDATE
)
UPDATE reconcile_run_lease l SET expires_at = now() FROM mine WHERE l.name = mine.name`
)

// HeldClaim is an account's run claim that another process held live when
// AcquireRunLease tried to take it.
type HeldClaim struct {
	Account string // "": the default account
	Host    string // the holder's host name
	PID     int    // the holder's process id
	// ExpiresIn is how long the claim had left, by the database's clock,
	// unless its holder renews it.
	ExpiresIn time.Duration
}

// String describes the claim for messages: its lease name, holder and
// expiry.
func (h HeldClaim) String() string {
	if h.Host == "" && h.PID == 0 && h.ExpiresIn == 0 {
		return fmt.Sprintf("%q held by another process", LeaseName(h.Account))
	}
	return fmt.Sprintf("%q held by %s (pid %d), expires in %s unless renewed",
		LeaseName(h.Account), h.Host, h.PID, h.ExpiresIn.Round(time.Second))
}

// RunLockOptions tunes AcquireRunLease. Zero fields take the RunLease*
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

// RunLock holds the run claims (leases) of one process, one per account,
// under one holder token. A heartbeat goroutine renews them every
// RenewInterval until Release; Lost is closed when any of them is lost.
type RunLock struct {
	o        RunLockOptions
	pool     *pgxpool.Pool
	holder   string
	accounts []string    // held, sorted
	names    []string    // their lease names, in the same order
	skipped  []HeldClaim // sorted by account

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

// AcquireRunLock takes the default account's run claim with the default
// timing: AcquireRunLease(ctx, cfg, []string{""}, RunLockOptions{}).
func AcquireRunLock(ctx context.Context, cfg *pgx.ConnConfig) (*RunLock, error) {
	return AcquireRunLease(ctx, cfg, []string{""}, RunLockOptions{})
}

// AcquireRunLockWith takes the default account's run claim:
// AcquireRunLease(ctx, cfg, []string{""}, o).
func AcquireRunLockWith(ctx context.Context, cfg *pgx.ConnConfig, o RunLockOptions) (*RunLock, error) {
	return AcquireRunLease(ctx, cfg, []string{""}, o)
}

// AcquireRunLease takes the run claims (see LeaseName) of the accounts it
// can among accounts ("": the default account; duplicates count once), for
// one holder token of this process (Holder), on a small pool of its own
// built from cfg (application_name LockApplicationName). It works through
// any connection pooler: a claim is one row, all are taken in one
// statement, and nothing depends on a session.
//
// It does not wait: a claim another process holds live (not expired by the
// database's clock) is skipped (Skipped names its holder and expiry), and
// the others are taken. Only when it took none does it fail, with an error
// wrapping ErrLocked that names every holder and when their claims expire.
// A claim that expired — its holder died or was cut off — or was released
// is taken over. ctx bounds the connect and the take. accounts must not be
// empty (ErrInvalidArgument).
//
// Guarantees once it returned a RunLock, for each claim in Accounts:
//   - No other AcquireRunLease on the database takes it until it was
//     released or expired: RunLeaseTTL after its last renewal, by now().
//   - Lost is closed, and Err says why, when a renewal finds any held claim
//     expired or held by another process, or when no renewal succeeded for
//     StopAfter (a partition, a database that does not answer) — before
//     the claims can expire on the server, as long as the two clocks run at
//     the same rate. The claims are renewed together, so they are lost
//     together: the caller stops every account's work when Lost closes.
func AcquireRunLease(ctx context.Context, cfg *pgx.ConnConfig, accounts []string, o RunLockOptions) (*RunLock, error) {
	o = o.withDefaults()
	if o.StopAfter >= o.TTL {
		return nil, fmt.Errorf("db: run lock: StopAfter %s must be below TTL %s: %w", o.StopAfter, o.TTL, ErrInvalidArgument)
	}
	if len(accounts) == 0 {
		return nil, fmt.Errorf("db: run lock: no account to claim: %w", ErrInvalidArgument)
	}
	accounts = slices.Clone(accounts)
	slices.Sort(accounts)
	accounts = slices.Compact(accounts)
	byName := make(map[string]string, len(accounts))
	names := make([]string, len(accounts))
	for i, a := range accounts {
		names[i] = LeaseName(a)
		byName[names[i]] = a
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
	rows, err := pool.Query(tctx, sqlTakeLeases, names, holder, host, os.Getpid(), o.TTL.Milliseconds())
	var taken []string
	if err == nil {
		taken, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: run lock: take the claims: %w", err)
	}
	l := &RunLock{o: o, pool: pool, holder: holder}
	for _, n := range names { // in accounts' order
		if slices.Contains(taken, n) {
			l.accounts, l.names = append(l.accounts, byName[n]), append(l.names, n)
		}
	}
	if len(taken) < len(names) {
		held, herr := heldBy(tctx, pool, names, holder)
		for _, n := range names {
			if slices.Contains(taken, n) {
				continue
			}
			h := held[n] // zero when released since the take, or unreadable
			h.Account = byName[n]
			l.skipped = append(l.skipped, h)
		}
		if len(taken) == 0 {
			pool.Close()
			desc := make([]string, len(l.skipped))
			for i, h := range l.skipped {
				desc[i] = h.String()
			}
			if herr != nil {
				desc = append(desc, fmt.Sprintf("(the holders could not be read: %v)", herr))
			}
			return nil, fmt.Errorf("db: run lock: %s: %w", strings.Join(desc, "; "), ErrLocked)
		}
	}
	l.lost, l.stop, l.done = make(chan struct{}), make(chan struct{}), make(chan struct{})
	l.renewCtx, l.cancelRenew = context.WithCancel(context.Background())
	go l.heartbeat(sent)
	return l, nil
}

// heldBy describes the claims among names that another holder than holder
// has, by lease name.
func heldBy(ctx context.Context, q Querier, names []string, holder string) (map[string]HeldClaim, error) {
	rows, err := q.Query(ctx, sqlLeaseHolders, names, holder)
	if err != nil {
		return nil, err
	}
	out := map[string]HeldClaim{}
	var h HeldClaim
	var name string
	_, err = pgx.ForEachRow(rows, []any{&name, &h.Host, &h.PID, &h.ExpiresIn}, func() error {
		out[name] = h
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Accounts returns the accounts whose claims the lock holds ("": the
// default account), sorted. They do not change: a lost claim closes Lost
// instead.
func (l *RunLock) Accounts() []string { return slices.Clone(l.accounts) }

// Skipped returns the claims AcquireRunLease found held live by another
// process (and so did not take), sorted by account. Host, PID and
// ExpiresIn are zero when they could not be read (or the claim was
// released right after the take).
func (l *RunLock) Skipped() []HeldClaim { return slices.Clone(l.skipped) }

// Holder returns the process's holder token: reconcile_run_lease.holder of
// its claims, to be recorded as RunStart.LeaseHolder.
func (l *RunLock) Holder() string { return l.holder }

func newHolder() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// heartbeat renews the claims every RenewInterval, all in one statement.
// lastOK is when the last successful renewal (or the take) was sent, by the
// local monotonic clock: the server's expiry of every claim is at least
// lastOK + TTL.
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
		renewed, expires, err := l.renew(ctx)
		cancel()
		switch {
		case err == nil && len(renewed) == len(l.names):
			lastOK, lastErr = sent, nil
			if l.o.OnRenew != nil {
				l.o.OnRenew(expires)
			}
		case err == nil:
			var lost []string
			for i, n := range l.names {
				if !slices.Contains(renewed, n) {
					lost = append(lost, fmt.Sprintf("%q", model.AccountLabel(l.accounts[i])))
				}
			}
			l.markLost(fmt.Errorf("%w: the claim of account %s expired or another run took it over",
				ErrLeaseLost, strings.Join(lost, ", ")))
			return
		case l.renewCtx.Err() != nil:
			return // Release
		default:
			lastErr = err
			if !time.Now().Before(deadline) {
				l.markLost(fmt.Errorf("%w: not renewed for %s (last error: %v)", ErrLeaseLost, l.o.StopAfter, lastErr))
				return
			}
		}
	}
}

// renew renews every held claim in one statement and returns the names it
// renewed and their earliest new expiry.
func (l *RunLock) renew(ctx context.Context) ([]string, time.Time, error) {
	rows, err := l.pool.Query(ctx, sqlRenewLeases, l.names, l.holder, l.o.TTL.Milliseconds())
	if err != nil {
		return nil, time.Time{}, err
	}
	var renewed []string
	var earliest, exp time.Time
	var name string
	_, err = pgx.ForEachRow(rows, []any{&name, &exp}, func() error {
		renewed = append(renewed, name)
		if earliest.IsZero() || exp.Before(earliest) {
			earliest = exp
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	return renewed, earliest, nil
}

func (l *RunLock) markLost(err error) {
	l.lostOnce.Do(func() {
		l.lostErr = err
		close(l.lost)
	})
}

// Lost returns a channel that is closed when a claim is lost: a renewal
// found one of them expired or taken over, or no renewal succeeded for
// StopAfter. From then on another run may hold it (once it expired), and
// the caller must stop starting work, for every account. It is never
// closed by Release.
func (l *RunLock) Lost() <-chan struct{} { return l.lost }

// Err returns why a claim was lost (wrapping ErrLeaseLost; it names the
// accounts whose claims a renewal did not find), or nil while Lost is
// open.
func (l *RunLock) Err() error {
	select {
	case <-l.lost:
		return l.lostErr
	default:
		return nil
	}
}

// Release stops the heartbeat, ends every claim still held (expires_at =
// now(), so the next run may take them at once; one statement) and closes
// the lease's pool. Everything it
// waits for is bounded by ctx and by CallTimeout: when the database does not
// answer it returns the error and leaves the pool to close in the
// background; the claims then simply expire RunLeaseTTL after their last
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
	_, err := l.pool.Exec(ctx, sqlReleaseLeases, l.names, l.holder)
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
