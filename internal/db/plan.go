package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Queries of `reconcile plan`. The pending rows themselves come from
// PendingPage, the run's own query; these read what PendingPage does not:
// the rows that are not pending (done, invalid and unchanged) through the
// snapshot_callback_status view, and the last error of a few domains.
const (
	sqlStatusCounts = `SELECT count(*), count(*) FILTER (WHERE pending), count(*) FILTER (WHERE done),
       count(*) FILTER (WHERE invalid_unchanged)
FROM snapshot_callback_status`

	statusSampleColumns = `domain_name, coalesce(outcome, ''), coalesce(run_id, 0), coalesce(error_code, ''),
       coalesce(error_message, '')`

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

// DomainStatus is a desired domain's latest outcome, from
// snapshot_callback_status. Outcome is "" (and RunID 0) when the domain was
// never attempted. ErrorMessage never holds an auth key (outcomes never do).
type DomainStatus struct {
	Domain       string
	Outcome      string
	RunID        int64
	ErrorCode    string
	ErrorMessage string
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
	_, err := pgx.ForEachRow(rows, []any{&s.Domain, &s.Outcome, &s.RunID, &s.ErrorCode, &s.ErrorMessage}, func() error {
		out = append(out, s)
		return nil
	})
	return out, err
}
