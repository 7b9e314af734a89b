package db

import (
	"context"
	"fmt"
	"strings"

	"github.com/reconcile/reconcile/internal/model"
)

// rowColumns are the columns of a page of desired rows, in the order
// rowPage scans them; rowsFrom joins each desired row to its state. The
// redundant "s.domain_name > $1" in the join condition (harmless: only
// equal names join) lets Postgres bound both primary-key index scans of a
// merge join, so each page reads only from the key onwards instead of
// re-reading reconcile_domain_state from its start (which made a whole run
// quadratic). isPending is reconcile_is_pending(), the same function the
// snapshot_callback_status view uses for its pending column, and
// remote_exists is the view's remote_exists.
const (
	rowColumns = `d.domain_name, d.notify_url, d.notify_req_auth, coalesce(d.notify_auth_key, ''),
       coalesce(d.region_id, ''), d.fingerprint, d.updated_at,
       coalesce(s.remote_exists, s.done_fingerprint IS NOT NULL, false) AS remote_exists,
       coalesce(s.last_outcome, ''),
       coalesce(NOT (s.unconfirmed <@ ARRAY[d.fingerprint]), false) AS other_unconfirmed,
       coalesce(d.account, '')`
	rowsFrom = `FROM desired_snapshot_callbacks d
LEFT JOIN reconcile_domain_state s ON s.domain_name = d.domain_name AND s.domain_name > $1`
	isPending = `reconcile_is_pending(d.fingerprint, s.last_outcome, s.last_fingerprint, s.done_fingerprint)`
)

// sqlPendingPage selects one keyset page of pending rows ($1: the key to
// start after, $2: the page size). The query does not go through the view,
// for the plan's sake (see rowsFrom).
const sqlPendingPage = `SELECT ` + rowColumns + `
` + rowsFrom + `
WHERE d.domain_name > $1
  AND ` + isPending + `
ORDER BY d.domain_name
LIMIT $2`

// sqlPendingPageIn is sqlPendingPage for one account ($3; see
// accountQuery). The equality (or IS NULL) on the leading column of the
// (account, domain_name) index and "domain_name > $1" bound that index's
// scan to the account's rows after the key, and ORDER BY account,
// domain_name is that index's order, so no plan needs a sort: for IS NULL
// the planner would not see that ordering by domain_name alone is the
// index's order and would sort every remaining row of the account on each
// page. For an account that holds a large share of the rows (or any named
// account, in a generic plan, which cannot see the account's size) the
// planner may instead walk the primary keys of both tables from the key (a
// merge join, as sqlPendingPage does) and filter on the account: it then
// also reads the other accounts' rows between the key and the page's last
// row, still bounded by the key. Either way a page reads no row before the
// key nor after its last row, so a pass over an account reads each row at
// most once and never re-reads earlier pages. TestAccountPagePlans checks
// this, and logs the plans, on 200,000 rows.
var sqlPendingPageIn = forAccount(`SELECT `+rowColumns+`
`+rowsFrom+`
WHERE d.account = $3 AND d.domain_name > $1
  AND `+isPending+`
ORDER BY d.account, d.domain_name
LIMIT $2`, "d.account", 3)

const (
	sqlCountDesired          = `SELECT count(*) FROM desired_snapshot_callbacks`
	sqlCountPending          = `SELECT count(*) FROM snapshot_callback_status WHERE pending`
	sqlCountInvalidUnchanged = `SELECT count(*) FROM snapshot_callback_status WHERE invalid_unchanged`
)

// The counts of one account ($1). For an account with a small share of the
// rows the planner reads them through the (account, domain_name) index (and
// probes their state); for a large one it scans the tables, as the counts
// of every account do.
var (
	sqlCountDesiredIn          = forAccount(`SELECT count(*) FROM desired_snapshot_callbacks WHERE account = $1`, "account", 1)
	sqlCountPendingIn          = forAccount(`SELECT count(*) FROM snapshot_callback_status WHERE pending AND account = $1`, "account", 1)
	sqlCountInvalidUnchangedIn = forAccount(`SELECT count(*) FROM snapshot_callback_status WHERE invalid_unchanged AND account = $1`, "account", 1)
)

// accountQuery is one query in its two forms: named, for a named account,
// whose last parameter is the account's name, and dflt, for the default
// account, in which the equality on the account column is "IS NULL" and
// that parameter is left out. Two texts rather than one with "IS NOT
// DISTINCT FROM", which no index can serve.
type accountQuery struct{ named, dflt string }

// forAccount builds an accountQuery from the named form, whose condition
// "<column> = $<param>" becomes "<column> IS NULL". param must be the
// query's last parameter. It panics unless the condition occurs exactly
// once (a programming error, caught by every test).
func forAccount(named, column string, param int) accountQuery {
	cond := fmt.Sprintf("%s = $%d", column, param)
	if strings.Count(named, cond) != 1 || strings.Contains(named, fmt.Sprintf("$%d", param+1)) {
		panic(fmt.Sprintf("db: forAccount: %q must occur once, as the last parameter, in %s", cond, named))
	}
	return accountQuery{named: named, dflt: strings.Replace(named, cond, column+" IS NULL", 1)}
}

// with returns the form for account ("": the default account) and the
// arguments to run it with: args, then the account's name for a named one.
func (a accountQuery) with(account string, args ...any) (string, []any) {
	if account == "" {
		return a.dflt, args
	}
	return a.named, append(args, account)
}

// count runs a count(*) query of account.
func (a accountQuery) count(ctx context.Context, q Querier, what, account string, args ...any) (int64, error) {
	sql, args := a.with(account, args...)
	var n int64
	if err := q.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("db: count %s of account %s: %w", what, model.AccountLabel(account), err)
	}
	return n, nil
}

// PendingPageInSQL returns the text of the query PendingPageIn runs for
// account: for the default account ("") its parameters are those of
// PendingPageSQL ($1: the key, $2: the page size), for a named one $3 is
// the account. For tools that EXPLAIN it (the benchmark).
func PendingPageInSQL(account string) string {
	sql, _ := sqlPendingPageIn.with(account)
	return sql
}

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
// of every account whose domain_name sorts after `after`, in ORDER BY
// domain_name order (the column's collation, which `>` uses too; callers
// must not compare domain names in Go), with their desired values,
// fingerprint and Account; Applied is true when an earlier run succeeded
// for the domain (so the run must Update, not Add), and OtherUnconfirmed
// when the job may have written other values for it (see MarkSending).
// Start with after = "" and pass the last Domain of each page; a page
// shorter than limit is the last. Each call is one statement with its own
// snapshot: rows edited between pages are seen as they are when their page
// is read. limit must be > 0. The row's AuthKey is a model.Secret.
func PendingPage(ctx context.Context, q Querier, after string, limit int) ([]model.Row, error) {
	return rowPage(ctx, q, sqlPendingPage, "pending page", limit, after, limit)
}

// PendingPageIn is PendingPage over the rows of one account (account ""
// is the default account: the rows whose account is NULL); it never
// returns another account's row. The keyset properties are PendingPage's:
// pass the last Domain of each page as after, a page shorter than limit is
// the last, each page is one statement that reads from the key on and no
// further than its last row (through the (account, domain_name) index,
// or for a large account both primary keys: see sqlPendingPageIn), so a
// pass reads each row at most once and never re-reads earlier pages.
func PendingPageIn(ctx context.Context, q Querier, account, after string, limit int) ([]model.Row, error) {
	sql, args := sqlPendingPageIn.with(account, after, limit)
	return rowPage(ctx, q, sql, "pending page of account "+model.AccountLabel(account), limit, args...)
}

// CountPendingIn is CountPending for one account ("": the default
// account). One statement: it reads the account's rows through the
// (account, domain_name) index for an account with a small share of the
// table, and scans the tables, like CountPending, for a large one.
func CountPendingIn(ctx context.Context, q Querier, account string) (int64, error) {
	return sqlCountPendingIn.count(ctx, q, "pending rows", account)
}

// CountInvalidUnchangedIn is CountInvalidUnchanged for one account ("":
// the default account). One statement, planned like CountPendingIn.
func CountInvalidUnchangedIn(ctx context.Context, q Querier, account string) (int64, error) {
	return sqlCountInvalidUnchangedIn.count(ctx, q, "invalid unchanged rows", account)
}

// CountDesiredIn is CountDesired for one account ("": the default
// account). One statement; reads the account's entries of the (account,
// domain_name) index, or the table for an account with a large share of
// it.
func CountDesiredIn(ctx context.Context, q Querier, account string) (int64, error) {
	return sqlCountDesiredIn.count(ctx, q, "desired rows", account)
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
