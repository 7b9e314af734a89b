package app

import (
	"context"
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
// (connection lost, server restarting) with backoff until deadline.
type store struct {
	pool     *pgxpool.Pool
	deadline time.Duration
	onRetry  func(op string, err error)
}

func (s *store) retry(ctx context.Context, op string, f func(context.Context) error) error {
	give := time.Now().Add(s.deadline)
	wait := dbRetryFirst
	for {
		err := f(ctx)
		if err == nil || !db.IsRetryable(err) || time.Now().Add(wait).After(give) {
			return err
		}
		if s.onRetry != nil {
			s.onRetry(op, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
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
		rows, err = db.PendingPage(ctx, s.pool, after, limit)
		return err
	})
	return rows, err
}

// DesiredPage implements apply.Store.
func (s *store) DesiredPage(ctx context.Context, after string, limit int) ([]model.Row, error) {
	var rows []model.Row
	err := s.retry(ctx, "read desired rows", func(ctx context.Context) (err error) {
		rows, err = db.DesiredPage(ctx, s.pool, after, limit)
		return err
	})
	return rows, err
}

// PrunePage implements apply.Store.
func (s *store) PrunePage(ctx context.Context, runID int64, after string, limit int) ([]model.Row, error) {
	var rows []model.Row
	err := s.retry(ctx, "read prune candidates", func(ctx context.Context) (err error) {
		rows, err = db.PrunePage(ctx, s.pool, runID, after, limit)
		return err
	})
	return rows, err
}

// CountPrune implements apply.Store.
func (s *store) CountPrune(ctx context.Context, runID int64) (int64, error) {
	var n int64
	err := s.retry(ctx, "count prune candidates", func(ctx context.Context) (err error) {
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
