package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/model"
)

// sqlDesiredPage is a keyset page over every desired row (reconcile
// verify), with the same columns as sqlPendingPage; sqlDesiredPageIn is
// the same over one account's rows ($3), planned like sqlPendingPageIn.
const sqlDesiredPage = `SELECT ` + rowColumns + `
` + rowsFrom + `
WHERE d.domain_name > $1
ORDER BY d.domain_name
LIMIT $2`

var sqlDesiredPageIn = forAccount(`SELECT `+rowColumns+`
`+rowsFrom+`
WHERE d.account = $3 AND d.domain_name > $1
ORDER BY d.account, d.domain_name
LIMIT $2`, "d.account", 3)

// pruneWhere says which reconcile_domain_state rows s are prune
// candidates: domains the job configured (remote_exists) that are no
// longer desired and have no outcome in the run (a run records one outcome
// per domain).
const pruneWhere = `s.remote_exists
  AND s.last_run_id IS DISTINCT FROM $3
  AND NOT EXISTS (SELECT FROM desired_snapshot_callbacks d WHERE d.domain_name = s.domain_name AND d.domain_name > $1)`

// sqlPrunePage is a keyset page of prune candidates ($3: the run) with the
// fingerprint of their last outcome and the account that holds their
// config (reconcile_domain_state.account). The redundant
// "d.domain_name > $1" bounds the desired side of the anti-join to the
// rows after the key too, so the planner can merge both primary keys from
// the key on. Prune candidates are few (--prune-max), so when the planner
// expects none nearby it may hash the desired rows after the key instead.
// sqlPrunePageIn is the same for one account ($4), through the partial
// index on remote_exists: it filters the other accounts' rows out, in the
// same bounded key range.
const sqlPrunePage = `SELECT s.domain_name, coalesce(s.last_fingerprint, ''), coalesce(s.account, '')
FROM reconcile_domain_state s
WHERE s.domain_name > $1 AND ` + pruneWhere + `
ORDER BY s.domain_name
LIMIT $2`

var sqlPrunePageIn = forAccount(`SELECT s.domain_name, coalesce(s.last_fingerprint, ''), coalesce(s.account, '')
FROM reconcile_domain_state s
WHERE s.account = $4 AND s.domain_name > $1 AND `+pruneWhere+`
ORDER BY s.domain_name
LIMIT $2`, "s.account", 4)

// sqlCountPrune counts the prune candidates of run $1 (sqlCountPruneIn: of
// account $2). One pass over the remote_exists rows.
const sqlCountPrune = `SELECT count(*) FROM reconcile_domain_state s
WHERE s.remote_exists
  AND s.last_run_id IS DISTINCT FROM $1
  AND NOT EXISTS (SELECT FROM desired_snapshot_callbacks d WHERE d.domain_name = s.domain_name)`

var sqlCountPruneIn = forAccount(sqlCountPrune+`
  AND s.account = $2`, "s.account", 2)

// DesiredPage returns up to limit desired rows (pending or not) whose
// domain_name sorts after `after`, like PendingPage. One statement.
func DesiredPage(ctx context.Context, q Querier, after string, limit int) ([]model.Row, error) {
	return rowPage(ctx, q, sqlDesiredPage, "desired page", limit, after, limit)
}

// DesiredPageIn is DesiredPage over the rows of one account ("": the
// default account), with PendingPageIn's keyset properties. One statement.
func DesiredPageIn(ctx context.Context, q Querier, account, after string, limit int) ([]model.Row, error) {
	sql, args := sqlDesiredPageIn.with(account, after, limit)
	return rowPage(ctx, q, sql, "desired page of account "+model.AccountLabel(account), limit, args...)
}

// rowPage runs a page query of rowColumns with args ($1 the key to start
// after, $2 limit, then any others).
func rowPage(ctx context.Context, q Querier, sql, what string, limit int, args ...any) ([]model.Row, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("db: %s: limit %d: %w", what, limit, ErrInvalidArgument)
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("db: %s: %w", what, err)
	}
	out := make([]model.Row, 0, limit)
	var r model.Row
	var key, last string
	_, err = pgx.ForEachRow(rows, []any{&r.Domain, &r.NotifyURL, &r.ReqAuth, &key, &r.Region, &r.Fingerprint,
		&r.UpdatedAt, &r.Applied, &last, &r.OtherUnconfirmed, &r.Account}, func() error {
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

// PrunePage returns up to limit prune candidates of every account after
// `after`, in domain_name order: domains whose config the job created or
// found (remote_exists), that are no longer in desired_snapshot_callbacks
// and that have no outcome in run runID (0: any run) — a run records one
// outcome per domain, so a domain it already handled waits for the next
// run. Only Domain, Fingerprint (of the last outcome), Account (the
// account of the domain's latest outcome, where its config is: see
// reconcile_domain_state.account) and Applied (true) are set. One
// statement.
func PrunePage(ctx context.Context, q Querier, runID int64, after string, limit int) ([]model.Row, error) {
	return prunePage(ctx, q, sqlPrunePage, "prune page", limit, after, limit, runID)
}

// PrunePageIn is PrunePage for the candidates of one account ("": the
// default account), by reconcile_domain_state.account; it never returns
// another account's candidate. One statement, bounded by the key like
// PrunePage.
func PrunePageIn(ctx context.Context, q Querier, runID int64, account, after string, limit int) ([]model.Row, error) {
	sql, args := sqlPrunePageIn.with(account, after, limit, runID)
	return prunePage(ctx, q, sql, "prune page of account "+model.AccountLabel(account), limit, args...)
}

func prunePage(ctx context.Context, q Querier, sql, what string, limit int, args ...any) ([]model.Row, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("db: %s: limit %d: %w", what, limit, ErrInvalidArgument)
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("db: %s: %w", what, err)
	}
	out := make([]model.Row, 0, 16)
	var r model.Row
	_, err = pgx.ForEachRow(rows, []any{&r.Domain, &r.Fingerprint, &r.Account}, func() error {
		out = append(out, model.Row{Domain: r.Domain, Fingerprint: r.Fingerprint, Account: r.Account, Applied: true})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: %s: %w", what, err)
	}
	return out, nil
}

// CountPrune returns how many prune candidates there are for run runID (see
// PrunePage). One statement; one pass over the remote_exists rows of
// reconcile_domain_state.
func CountPrune(ctx context.Context, q Querier, runID int64) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, sqlCountPrune, runID).Scan(&n); err != nil {
		return 0, fmt.Errorf("db: count prune candidates: %w", err)
	}
	return n, nil
}

// CountPruneIn is CountPrune for the candidates of one account ("": the
// default account; see PrunePageIn). One statement, the same pass as
// CountPrune.
func CountPruneIn(ctx context.Context, q Querier, runID int64, account string) (int64, error) {
	return sqlCountPruneIn.count(ctx, q, "prune candidates", account, runID)
}
