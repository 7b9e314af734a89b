// Package db holds every SQL statement of reconcile: migrations and the
// schema check, the run lock, run rows, pages of pending rows and batches of
// outcomes.
//
// Conventions:
//   - Every function takes a context.Context first. Queries block until the
//     server answers or ctx is done; when ctx is done pgx interrupts the
//     statement (the connection may be closed as a result) and the function
//     returns an error wrapping ctx.Err().
//   - Functions that run a single statement take a [Querier] (a *pgxpool.Pool,
//     a *pgx.Conn or a pgx.Tx), so a caller can run them inside its own
//     transaction. A single statement is atomic on its own.
//   - Errors are wrapped with %w and a short reason ("db: ..."); test them
//     with errors.Is against the sentinel errors below, and with [IsRetryable]
//     for transient connection failures.
//   - No function logs, and no error message carries notify_auth_key.
package db

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what single-statement functions need: *pgxpool.Pool, *pgx.Conn,
// *pgxpool.Conn and pgx.Tx all satisfy it. Using a *pgx.Conn or pgx.Tx from
// several goroutines at once is not safe (pgx's rule); a pool is.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Sentinel errors. Returned errors wrap them; test with errors.Is.
var (
	// ErrSchemaMissing: the database has no reconcile schema (no version
	// table): run `reconcile migrate`.
	ErrSchemaMissing = errors.New("reconcile schema is missing: run `reconcile migrate`")
	// ErrSchemaBehind: the schema is older than this program: run
	// `reconcile migrate`.
	ErrSchemaBehind = errors.New("reconcile schema is behind this program: run `reconcile migrate`")
	// ErrSchemaAhead: the schema is newer than this program (a newer version
	// migrated it). Migrations only add, so an older program may go on;
	// callers should log it as a warning rather than stop.
	ErrSchemaAhead = errors.New("reconcile schema is newer than this program")
	// ErrLocked: another process holds a live run claim on this database
	// (see AcquireRunLock).
	ErrLocked = errors.New("another reconcile run holds the lock")
	// ErrRunNotFound: no reconcile_runs row has the id (or there is no run yet).
	ErrRunNotFound = errors.New("run not found")
	// ErrRunFinished: FinishRun was called for a run that already has
	// finished_at (for example one marked abandoned by another process).
	ErrRunFinished = errors.New("run already finished")
	// ErrInvalidArgument: a caller passed a value the database would refuse
	// (unknown status or outcome, empty domain, non-positive limit ...).
	// Nothing was written.
	ErrInvalidArgument = errors.New("invalid argument")
)

// IsRetryable reports whether err is a transient failure after which the same
// call may be tried again (after a pause): connection refused or reset, the
// connection lost mid-statement (io.EOF), server shutdown or restart (57P01
// admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now), any
// connection exception (class 08), too many connections (53300),
// serialization failure or deadlock (40001, 40P01; the transaction was rolled
// back), and a lock wait cut by lock_timeout (55P03: another session holds
// the lock; waiting again may succeed). It is false for nil, context cancellation or deadline, a closed
// pool, and every other server error (constraint violations, syntax, auth).
//
// WriteOutcomes is idempotent, so retrying it after a retryable error that
// happened around COMMIT is safe.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// pgxpool reports use after Close with an unexported error of this text.
	if strings.Contains(err.Error(), "closed pool") {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300", "40001", "40P01", "55P03":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
