package db

import (
	"context"
	"fmt"
	"time"
)

// sqlPruneHistoryBatch is one batch of history retention, one statement and
// so one short transaction: it takes the next $3 outcome rows by id after
// $1 (the primary key's order, which is the order they were written in)
// and deletes those that finished before $2, except each domain's latest
// outcome (reconcile_domain_state.last_outcome_id, found through the
// state's primary key). It returns the last id it looked at, how many rows
// it looked at, how many of them were older than $2, and how many it
// deleted.
//
// Locks: ROW EXCLUSIVE on reconcile_outcomes (as any INSERT: a run's
// writes, the views and reports go on) and the deleted rows' row locks;
// nothing on reconcile_runs or reconcile_domain_state beyond reading them.
// A run going on meanwhile only adds outcomes newer than any it could
// delete, and only ever points reconcile_domain_state at those, so the
// NOT EXISTS cannot miss a latest outcome.
const sqlPruneHistoryBatch = `WITH batch AS (
    SELECT id, domain_name, finished_at FROM reconcile_outcomes
    WHERE id > $1 ORDER BY id LIMIT $3
), del AS (
    DELETE FROM reconcile_outcomes o
    USING batch b
    WHERE o.id = b.id AND b.finished_at < $2
      AND NOT EXISTS (SELECT FROM reconcile_domain_state s
                      WHERE s.domain_name = b.domain_name AND s.last_outcome_id = b.id)
    RETURNING o.id
)
SELECT coalesce(max(b.id), $1), count(*), count(*) FILTER (WHERE b.finished_at < $2), (SELECT count(*) FROM del)
FROM batch b`

// HistoryBatch is what one PruneHistoryBatch call did.
type HistoryBatch struct {
	// LastID is the last outcome id looked at: the next batch starts after it.
	LastID int64
	// Scanned rows were looked at; Old of them finished before the cutoff;
	// Deleted of those were deleted (the others are their domain's latest).
	Scanned, Old, Deleted int64
}

// PruneHistoryBatch deletes, among the next limit outcome rows after id
// after, those that finished before before and are not their domain's
// latest outcome (see sqlPruneHistoryBatch). It never touches reconcile_runs
// or reconcile_domain_state. Scanned is 0 at the end of the table. limit
// must be positive (ErrInvalidArgument).
func PruneHistoryBatch(ctx context.Context, q Querier, after int64, before time.Time, limit int) (HistoryBatch, error) {
	if limit <= 0 {
		return HistoryBatch{}, fmt.Errorf("db: prune history: limit %d: %w", limit, ErrInvalidArgument)
	}
	var b HistoryBatch
	if err := q.QueryRow(ctx, sqlPruneHistoryBatch, after, before, limit).Scan(&b.LastID, &b.Scanned, &b.Old, &b.Deleted); err != nil {
		return HistoryBatch{}, fmt.Errorf("db: prune history after outcome %d: %w", after, err)
	}
	return b, nil
}
