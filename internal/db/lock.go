package db

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// RunLockName is the name the run lock's key is derived from.
const RunLockName = "reconcile.run"

// RunLockKey is the pg_advisory_lock key of the run lock: the FNV-1a 64-bit
// hash of RunLockName, as a signed bigint (a test checks the derivation).
// Advisory locks are per database, so runs against different databases on
// one server do not exclude each other.
const RunLockKey int64 = -4495717156260572868

// LockCheckInterval is how often the run lock's watcher pings the lock
// connection; LockPingTimeout bounds each ping. A dead connection is noticed
// within about LockCheckInterval + LockPingTimeout.
const (
	LockCheckInterval = time.Second
	LockPingTimeout   = 5 * time.Second
)

// LockApplicationName is set as application_name on the lock connection
// (unless the config sets one), so operators can find it in pg_stat_activity.
const LockApplicationName = "reconcile-run-lock"

const (
	sqlTryRunLock = `SELECT pg_try_advisory_lock($1)`
	sqlRunUnlock  = `SELECT pg_advisory_unlock($1)`
)

// RunLock is the held run lock: a session-level advisory lock on one
// dedicated connection. Postgres releases it when that session ends, so a
// process that dies (even by SIGKILL) cannot leave it held.
type RunLock struct {
	conn *pgx.Conn
	mu   sync.Mutex // serialises use of conn between the watcher and Release

	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	released bool
}

// AcquireRunLock opens one dedicated connection from cfg (not from a pool;
// it must reach Postgres directly, not through a transaction-pooling proxy)
// and takes the run lock with pg_try_advisory_lock(RunLockKey). It does not
// wait: when another session holds the lock it closes the connection and
// returns an error wrapping ErrLocked. On success a watcher goroutine pings
// the connection every LockCheckInterval until Release; when a ping fails,
// Lost is closed. ctx bounds only the connect and the lock attempt.
func AcquireRunLock(ctx context.Context, cfg *pgx.ConnConfig) (*RunLock, error) {
	cfg = cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	// Always ours, so that operators (and tests) can tell the lock's
	// connection apart in pg_stat_activity.
	cfg.RuntimeParams["application_name"] = LockApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("db: run lock: connect: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, sqlTryRunLock, RunLockKey).Scan(&ok); err != nil {
		closeConn(ctx, conn)
		return nil, fmt.Errorf("db: run lock: try lock: %w", err)
	}
	if !ok {
		closeConn(ctx, conn)
		return nil, fmt.Errorf("db: run lock %q: %w", RunLockName, ErrLocked)
	}
	l := &RunLock{
		conn: conn,
		lost: make(chan struct{}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go l.watch()
	return l, nil
}

func (l *RunLock) watch() {
	defer close(l.done)
	t := time.NewTicker(LockCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		ctx, cancel := context.WithTimeout(context.Background(), LockPingTimeout)
		err := l.conn.Ping(ctx)
		cancel()
		l.mu.Unlock()
		if err != nil {
			l.markLost()
			return
		}
	}
}

func (l *RunLock) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

// Lost returns a channel that is closed when the lock connection was found
// dead (a ping failed or timed out): from then on the lock may be held by
// another process, and the caller must stop starting work. It is never closed
// by Release.
func (l *RunLock) Lost() <-chan struct{} { return l.lost }

// Release stops the watcher (waiting for a ping in progress, at most
// LockPingTimeout), unlocks and closes the connection. Closing the session
// frees the lock even when the unlock statement fails, so the error is only
// informative. Calling Release again returns nil. It must not be called
// concurrently with itself.
func (l *RunLock) Release(ctx context.Context) error {
	if l.released {
		return nil
	}
	l.released = true
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	var unlocked bool
	err := l.conn.QueryRow(ctx, sqlRunUnlock, RunLockKey).Scan(&unlocked)
	closeErr := closeConn(ctx, l.conn)
	switch {
	case err != nil:
		return fmt.Errorf("db: run lock: unlock: %w", err)
	case !unlocked:
		return fmt.Errorf("db: run lock: unlock: the session did not hold the lock")
	case closeErr != nil:
		return fmt.Errorf("db: run lock: close: %w", closeErr)
	}
	return nil
}

// closeConn closes conn even when ctx is already done, waiting at most
// LockPingTimeout for the server to take the Terminate message.
func closeConn(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LockPingTimeout)
	defer cancel()
	return conn.Close(ctx)
}
