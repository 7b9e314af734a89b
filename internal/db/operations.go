package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/model"
)

const (
	// sqlDesiredPage is a keyset page over every desired row (reconcile
	// verify), with the same columns as sqlPendingPage.
	sqlDesiredPage = `SELECT d.domain_name, d.notify_url, d.notify_req_auth, coalesce(d.notify_auth_key, ''),
       coalesce(d.region_id, ''), d.fingerprint, d.updated_at,
       coalesce(s.remote_exists, s.done_fingerprint IS NOT NULL, false) AS remote_exists,
       coalesce(s.last_outcome, ''),
       coalesce(NOT (s.unconfirmed <@ ARRAY[d.fingerprint]), false) AS other_unconfirmed
FROM desired_snapshot_callbacks d
LEFT JOIN reconcile_domain_state s ON s.domain_name = d.domain_name AND s.domain_name > $1
WHERE d.domain_name > $1
ORDER BY d.domain_name
LIMIT $2`

	// sqlPrunePage is a keyset page of prune candidates: domains the job
	// configured (remote_exists) that are no longer desired and have no
	// outcome in run $3 yet (a run records one outcome per domain). The
	// fingerprint is the one of their last outcome.
	sqlPrunePage = `SELECT s.domain_name, coalesce(s.last_fingerprint, '')
FROM reconcile_domain_state s
WHERE s.remote_exists AND s.domain_name > $1
  AND s.last_run_id IS DISTINCT FROM $3
  AND NOT EXISTS (SELECT FROM desired_snapshot_callbacks d WHERE d.domain_name = s.domain_name)
ORDER BY s.domain_name
LIMIT $2`

	sqlCountPrune = `SELECT count(*) FROM reconcile_domain_state s
WHERE s.remote_exists
  AND s.last_run_id IS DISTINCT FROM $1
  AND NOT EXISTS (SELECT FROM desired_snapshot_callbacks d WHERE d.domain_name = s.domain_name)`
)

// DesiredPage returns up to limit desired rows (pending or not) whose
// domain_name sorts after `after`, like PendingPage. One statement.
func DesiredPage(ctx context.Context, q Querier, after string, limit int) ([]model.Row, error) {
	return rowPage(ctx, q, sqlDesiredPage, "desired page", after, limit)
}

func rowPage(ctx context.Context, q Querier, sql, what, after string, limit int) ([]model.Row, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("db: %s: limit %d: %w", what, limit, ErrInvalidArgument)
	}
	rows, err := q.Query(ctx, sql, after, limit)
	if err != nil {
		return nil, fmt.Errorf("db: %s: %w", what, err)
	}
	out := make([]model.Row, 0, limit)
	var r model.Row
	var key, last string
	_, err = pgx.ForEachRow(rows, []any{&r.Domain, &r.NotifyURL, &r.ReqAuth, &key, &r.Region, &r.Fingerprint,
		&r.UpdatedAt, &r.Applied, &last, &r.OtherUnconfirmed}, func() error {
		r.AuthKey = model.Secret(key)
		r.LastOutcome = model.Outcome(last)
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: %s: %w", what, err)
	}
	return out, nil
}

// PrunePage returns up to limit prune candidates after `after`, in
// domain_name order: domains whose config the job created or found
// (remote_exists), that are no longer in desired_snapshot_callbacks and that
// have no outcome in run runID (0: any run) — a run records one outcome per
// domain, so a domain it already handled waits for the next run.
// Only Domain and Fingerprint (of the last outcome) are set. One statement.
func PrunePage(ctx context.Context, q Querier, runID int64, after string, limit int) ([]model.Row, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("db: prune page: limit %d: %w", limit, ErrInvalidArgument)
	}
	rows, err := q.Query(ctx, sqlPrunePage, after, limit, runID)
	if err != nil {
		return nil, fmt.Errorf("db: prune page: %w", err)
	}
	out := make([]model.Row, 0, 16)
	var r model.Row
	_, err = pgx.ForEachRow(rows, []any{&r.Domain, &r.Fingerprint}, func() error {
		out = append(out, model.Row{Domain: r.Domain, Fingerprint: r.Fingerprint, Applied: true})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: prune page: %w", err)
	}
	return out, nil
}

// CountPrune returns how many prune candidates there are for run runID (see
// PrunePage).
func CountPrune(ctx context.Context, q Querier, runID int64) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, sqlCountPrune, runID).Scan(&n); err != nil {
		return 0, fmt.Errorf("db: count prune candidates: %w", err)
	}
	return n, nil
}
