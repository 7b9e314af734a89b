package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/model"
)

// Queries of `reconcile plan`. The pending rows themselves come from
// PendingPage, the run's own query; these read what PendingPage does not:
// the rows that are not pending (done, invalid and unchanged) through the
// snapshot_callback_status view, the counts per account through the
// reconcile_account_status view, the accounts of a page's rows, and the last
// error of a few domains.
const (
	sqlStatusCounts = `SELECT count(*), count(*) FILTER (WHERE pending), count(*) FILTER (WHERE done),
       count(*) FILTER (WHERE invalid_unchanged)
FROM snapshot_callback_status`

	statusSampleColumns = `domain_name, coalesce(outcome, ''), coalesce(run_id, 0), coalesce(error_code, ''),
       coalesce(error_message, ''), coalesce(account, '')`

	// sqlAccountStatus: the counts of CountStatus per account, the default
	// account (NULL) first.
	sqlAccountStatus = `SELECT coalesce(account, ''), unknown, disabled, desired, pending, done, invalid_unchanged
FROM reconcile_account_status
ORDER BY account NULLS FIRST`

	// sqlRowAccounts: the accounts of some desired rows, by primary key.
	sqlRowAccounts = `SELECT domain_name, coalesce(account, '') FROM desired_snapshot_callbacks
WHERE domain_name = ANY($1::text[])`

	sqlDoneSample = `SELECT ` + statusSampleColumns + `
FROM snapshot_callback_status WHERE done ORDER BY domain_name LIMIT $1`

	sqlInvalidUnchangedSample = `SELECT ` + statusSampleColumns + `
FROM snapshot_callback_status WHERE invalid_unchanged ORDER BY domain_name LIMIT $1`

	sqlLastOutcomes = `SELECT ` + statusSampleColumns + `
FROM snapshot_callback_status WHERE domain_name = ANY($1::text[]) ORDER BY domain_name`
)

// StatusCounts counts the desired rows by the snapshot_callback_status view's
// columns. Pending, Done and InvalidUnchanged are disjoint and add up to
// Desired (the schema's definitions make them so).
type StatusCounts struct {
	Desired          int64
	Pending          int64 // the next run takes them up
	Done             int64 // latest done outcome is for the current values
	InvalidUnchanged int64 // invalid before with the same values: counted, not re-sent
}

// AccountStatusCounts are the StatusCounts of one account's desired rows,
// from the reconcile_account_status view.
type AccountStatusCounts struct {
	// Account is the account ("": the default account).
	Account string
	// Unknown: no reconcile_accounts row names the account (never true for
	// the default account): a run cannot reach it and its rows stay pending.
	Unknown bool
	// Disabled: reconcile_accounts.disabled; runs skip the account and its
	// rows stay pending.
	Disabled bool
	StatusCounts
}

// DomainStatus is a desired domain's latest outcome, from
// snapshot_callback_status. Outcome is "" (and RunID 0) when the domain was
// never attempted. ErrorMessage never holds an auth key (outcomes never do).
type DomainStatus struct {
	Domain       string
	Outcome      string
	RunID        int64
	ErrorCode    string
	ErrorMessage string
	// Account is the desired row's account ("": the default account).
	Account string
}

// CountStatus counts the desired rows by status in one statement (one scan
// of the table; inside a REPEATABLE READ transaction it agrees with pages
// read in the same transaction).
func CountStatus(ctx context.Context, q Querier) (StatusCounts, error) {
	var c StatusCounts
	if err := q.QueryRow(ctx, sqlStatusCounts).Scan(&c.Desired, &c.Pending, &c.Done, &c.InvalidUnchanged); err != nil {
		return StatusCounts{}, fmt.Errorf("db: count desired rows by status: %w", err)
	}
	return c, nil
}

// CountStatusByAccount counts the desired rows by status per account (one
// statement over the reconcile_account_status view), the default account
// first and then by name; accounts without desired rows are not listed.
// The counts of all accounts add up to those of CountStatus.
func CountStatusByAccount(ctx context.Context, q Querier) ([]AccountStatusCounts, error) {
	rows, err := q.Query(ctx, sqlAccountStatus)
	if err != nil {
		return nil, fmt.Errorf("db: count desired rows by account: %w", err)
	}
	var out []AccountStatusCounts
	var a AccountStatusCounts
	_, err = pgx.ForEachRow(rows, []any{&a.Account, &a.Unknown, &a.Disabled, &a.Desired, &a.Pending, &a.Done,
		&a.InvalidUnchanged}, func() error {
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: count desired rows by account: %w", err)
	}
	return out, nil
}

// FillAccounts sets the Account of each of rows (desired rows, as a page of
// PendingPage returns them) from desired_snapshot_callbacks, by domain: one
// statement per call. A row no longer desired keeps its Account. Run it in
// the transaction the rows were read in, so that both agree.
func FillAccounts(ctx context.Context, q Querier, rows []model.Row) error {
	if len(rows) == 0 {
		return nil
	}
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.Domain
	}
	res, err := q.Query(ctx, sqlRowAccounts, names)
	if err != nil {
		return fmt.Errorf("db: accounts of desired rows: %w", err)
	}
	byDomain := make(map[string]string, len(rows))
	var d, a string
	if _, err := pgx.ForEachRow(res, []any{&d, &a}, func() error {
		byDomain[d] = a
		return nil
	}); err != nil {
		return fmt.Errorf("db: accounts of desired rows: %w", err)
	}
	for i := range rows {
		if a, ok := byDomain[rows[i].Domain]; ok {
			rows[i].Account = a
		}
	}
	return nil
}

// DoneSample returns the first limit done domains in domain_name order
// (limit 0: none). One statement.
func DoneSample(ctx context.Context, q Querier, limit int) ([]DomainStatus, error) {
	return statusSample(ctx, q, sqlDoneSample, "done", limit)
}

// InvalidUnchangedSample returns the first limit domains that are invalid
// and unchanged since their invalid outcome, in domain_name order, with that
// outcome's error code and message. One statement.
func InvalidUnchangedSample(ctx context.Context, q Querier, limit int) ([]DomainStatus, error) {
	return statusSample(ctx, q, sqlInvalidUnchangedSample, "invalid unchanged", limit)
}

func statusSample(ctx context.Context, q Querier, sql, what string, limit int) ([]DomainStatus, error) {
	if limit < 0 {
		return nil, fmt.Errorf("db: %s sample: limit %d: %w", what, limit, ErrInvalidArgument)
	}
	if limit == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, sql, limit)
	if err != nil {
		return nil, fmt.Errorf("db: %s sample: %w", what, err)
	}
	out, err := scanStatuses(rows)
	if err != nil {
		return nil, fmt.Errorf("db: %s sample: %w", what, err)
	}
	return out, nil
}

// LastOutcomes returns the latest outcome of each of domains that is a
// desired row, keyed by domain (a domain never attempted maps to a
// DomainStatus with an empty Outcome; one not desired is absent). Meant for a
// handful of domains; one statement.
func LastOutcomes(ctx context.Context, q Querier, domains []string) (map[string]DomainStatus, error) {
	out := make(map[string]DomainStatus, len(domains))
	if len(domains) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, sqlLastOutcomes, domains)
	if err != nil {
		return nil, fmt.Errorf("db: last outcomes: %w", err)
	}
	list, err := scanStatuses(rows)
	if err != nil {
		return nil, fmt.Errorf("db: last outcomes: %w", err)
	}
	for _, s := range list {
		out[s.Domain] = s
	}
	return out, nil
}

func scanStatuses(rows pgx.Rows) ([]DomainStatus, error) {
	var out []DomainStatus
	var s DomainStatus
	_, err := pgx.ForEachRow(rows, []any{&s.Domain, &s.Outcome, &s.RunID, &s.ErrorCode, &s.ErrorMessage, &s.Account}, func() error {
		out = append(out, s)
		return nil
	})
	return out, err
}
