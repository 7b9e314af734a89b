package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
)

// Retry pacing of database calls while Postgres is unreachable.
const (
	dbRetryFirst = 100 * time.Millisecond
	dbRetryMax   = 5 * time.Second
)

// store adapts package db to apply.Store: it retries retryable failures
// (connection lost, server restarting, a lock wait cut by lock_timeout)
// with backoff until deadline. deadline bounds every wait, not only the
// pauses between attempts: an attempt's context ends at the deadline too, so
// a call that hangs (a partition, a lock another session holds) ends there.
type store struct {
	pool     *pgxpool.Pool
	deadline time.Duration
	// halt, when done, ends every call at once (the shutdown bound after a
	// signal); apply writes outcomes with a context that a signal does not
	// cancel.
	halt    context.Context
	onRetry func(op string, err error)
	// scoped: the pages and counts are those of account only (forAccount).
	scoped  bool
	account string
}

// forAccount returns a store over s's pool whose pages and counts are
// those of account ("" the default account) only.
func (s *store) forAccount(account string) *store {
	c := *s
	c.scoped, c.account = true, account
	return &c
}

// ErrDBDeadline: a database call got no answer within --db-retry-deadline.
var ErrDBDeadline = errors.New("no answer from the database within --db-retry-deadline")

// errShutdown is the cause of calls ended by the shutdown bound.
var errShutdown = errors.New("the shutdown deadline (--grace plus a few seconds) passed")

func (s *store) retry(ctx context.Context, op string, f func(context.Context) error) error {
	return s.retryIf(ctx, op, db.IsRetryable, f)
}

// retryIf calls f until it succeeds, fails with an error retryable does not
// accept, ctx (or s.halt) is done, or s.deadline has passed since the first
// call.
func (s *store) retryIf(ctx context.Context, op string, retryable func(error) bool, f func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if s.halt != nil {
		defer context.AfterFunc(s.halt, func() { cancel(errShutdown) })()
	}
	give := time.Now().Add(s.deadline)
	callCtx, callCancel := context.WithDeadline(ctx, give)
	defer callCancel()
	wait := dbRetryFirst
	for {
		err := f(callCtx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			if cause := context.Cause(ctx); errors.Is(cause, errShutdown) {
				return fmt.Errorf("%s: %w: %w", op, cause, err)
			}
			return err
		case callCtx.Err() != nil:
			return fmt.Errorf("%s: %w (%s): %w", op, ErrDBDeadline, s.deadline, err)
		case !retryable(err) || time.Now().Add(wait).After(give):
			return err
		}
		if s.onRetry != nil {
			s.onRetry(op, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-callCtx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, dbRetryMax)
	}
}

// PendingPage implements apply.Store.
func (s *store) PendingPage(ctx context.Context, after string, limit int) ([]model.Row, error) {
	var rows []model.Row
	err := s.retry(ctx, "read pending rows", func(ctx context.Context) (err error) {
		if s.scoped {
			rows, err = db.PendingPageIn(ctx, s.pool, s.account, after, limit)
			return err
		}
		rows, err = db.PendingPage(ctx, s.pool, after, limit)
		return err
	})
	return rows, err
}

// DesiredPage implements apply.Store.
func (s *store) DesiredPage(ctx context.Context, after string, limit int) ([]model.Row, error) {
	var rows []model.Row
	err := s.retry(ctx, "read desired rows", func(ctx context.Context) (err error) {
		if s.scoped {
			rows, err = db.DesiredPageIn(ctx, s.pool, s.account, after, limit)
			return err
		}
		rows, err = db.DesiredPage(ctx, s.pool, after, limit)
		return err
	})
	return rows, err
}

// PrunePage implements apply.Store.
func (s *store) PrunePage(ctx context.Context, runID int64, after string, limit int) ([]model.Row, error) {
	var rows []model.Row
	err := s.retry(ctx, "read prune candidates", func(ctx context.Context) (err error) {
		if s.scoped {
			rows, err = db.PrunePageIn(ctx, s.pool, runID, s.account, after, limit)
			return err
		}
		rows, err = db.PrunePage(ctx, s.pool, runID, after, limit)
		return err
	})
	return rows, err
}

// CountPrune implements apply.Store.
func (s *store) CountPrune(ctx context.Context, runID int64) (int64, error) {
	var n int64
	err := s.retry(ctx, "count prune candidates", func(ctx context.Context) (err error) {
		if s.scoped {
			n, err = db.CountPruneIn(ctx, s.pool, runID, s.account)
			return err
		}
		n, err = db.CountPrune(ctx, s.pool, runID)
		return err
	})
	return n, err
}

// WriteOutcomes implements apply.Store. db.WriteOutcomes is idempotent per
// (run, domain), so retrying after a commit whose answer was lost cannot
// double an outcome or a count.
func (s *store) WriteOutcomes(ctx context.Context, runID int64, rs []model.Result, c apply.Counters) (map[model.Outcome]int64, error) {
	rc := db.RunCounters{Requests: c.Requests, Throttled: c.Throttled}
	var w db.Written
	err := s.retry(ctx, "write outcomes", func(ctx context.Context) (err error) {
		w, err = db.WriteOutcomes(ctx, s.pool, runID, rs, rc)
		return err
	})
	return w, err
}

// MarkSending implements apply.Store.
func (s *store) MarkSending(ctx context.Context, intents []model.Intent) error {
	return s.retry(ctx, "mark rows as being sent", func(ctx context.Context) error {
		return db.MarkSending(ctx, s.pool, intents)
	})
}
