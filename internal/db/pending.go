package db

import (
	"context"
	"fmt"

	"github.com/reconcile/reconcile/internal/model"
)

// sqlPendingPage selects one keyset page of pending rows. "Pending" is
// reconcile_is_pending(), the same function the snapshot_callback_status view
// uses for its pending column, and Applied is the view's remote_exists. The
// query does not go through the view, for the plan's sake: the redundant
// "s.domain_name > $1" in the join condition (harmless: only equal names
// join) lets Postgres bound both primary-key index scans of the merge join,
// so each page reads only from the key onwards instead of re-reading
// reconcile_domain_state from its start (which made a whole run quadratic).
const sqlPendingPage = `SELECT d.domain_name, d.notify_url, d.notify_req_auth, coalesce(d.notify_auth_key, ''),
       coalesce(d.region_id, ''), d.fingerprint, d.updated_at,
       coalesce(s.remote_exists, s.done_fingerprint IS NOT NULL, false) AS remote_exists,
       coalesce(s.last_outcome, ''),
       coalesce(NOT (s.unconfirmed <@ ARRAY[d.fingerprint]), false) AS other_unconfirmed
FROM desired_snapshot_callbacks d
LEFT JOIN reconcile_domain_state s ON s.domain_name = d.domain_name AND s.domain_name > $1
WHERE d.domain_name > $1
  AND reconcile_is_pending(d.fingerprint, s.last_outcome, s.last_fingerprint, s.done_fingerprint)
ORDER BY d.domain_name
LIMIT $2`

const (
	sqlCountDesired          = `SELECT count(*) FROM desired_snapshot_callbacks`
	sqlCountPending          = `SELECT count(*) FROM snapshot_callback_status WHERE pending`
	sqlCountInvalidUnchanged = `SELECT count(*) FROM snapshot_callback_status WHERE invalid_unchanged`
)

// PendingPageSQL returns the text of the query PendingPage runs ($1: the
// key to start after, $2: the page size), for tools that EXPLAIN it (the
// benchmark). It is the same constant, not a copy.
func PendingPageSQL() string { return sqlPendingPage }

// CountDesired returns the number of desired rows. One statement.
func CountDesired(ctx context.Context, q Querier) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, sqlCountDesired).Scan(&n); err != nil {
		return 0, fmt.Errorf("db: count desired rows: %w", err)
	}
	return n, nil
}

// PendingPage returns up to limit pending rows (see snapshot_callback_status)
// whose domain_name sorts after `after`, in ORDER BY domain_name order (the
// column's collation, which `>` uses too; callers must not compare domain
// names in Go), with their desired
// values and fingerprint; Applied is true when an earlier run succeeded for
// the domain (so the run must Update, not Add), and OtherUnconfirmed when the
// job may have written other values for it (see MarkSending). Start with after = "" and
// pass the last Domain of each page; a page shorter than limit is the last.
// Each call is one statement with its own snapshot: rows edited between
// pages are seen as they are when their page is read. limit must be > 0.
// The row's AuthKey is a model.Secret.
func PendingPage(ctx context.Context, q Querier, after string, limit int) ([]model.Row, error) {
	return rowPage(ctx, q, sqlPendingPage, "pending page", after, limit)
}

// CountPending returns how many desired rows are pending (the view's pending
// column). One statement; reads the whole table.
func CountPending(ctx context.Context, q Querier) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, sqlCountPending).Scan(&n); err != nil {
		return 0, fmt.Errorf("db: count pending rows: %w", err)
	}
	return n, nil
}

// CountInvalidUnchanged returns how many desired rows are not done and have
// an invalid latest outcome for their current fingerprint (the view's
// invalid_unchanged column): a run counts them and sends nothing. One
// statement; reads the whole table.
func CountInvalidUnchanged(ctx context.Context, q Querier) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, sqlCountInvalidUnchanged).Scan(&n); err != nil {
		return 0, fmt.Errorf("db: count invalid unchanged rows: %w", err)
	}
	return n, nil
}
