package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Queries of `reconcile report`. They read the views of migration 003
// (reconcile_run_summary, reconcile_failures_by_code), so the command and
// SQL users see the same numbers, and the accounts of a run from
// reconcile_run_accounts and reconcile_outcomes (schema 7).
const (
	sqlLatestNonDryRunID = `SELECT id FROM reconcile_runs WHERE status <> 'dry_run' ORDER BY id DESC LIMIT 1`

	sqlFailuresByCode = `SELECT outcome, coalesce(error_code, ''), count, sample_domains, coalesce(sample_message, ''),
       coalesce(account, '')
FROM reconcile_failures_by_code WHERE run_id = $1
ORDER BY count DESC, outcome, error_code NULLS LAST, account NULLS FIRST`

	// sqlRunAccounts: the accounts a run took up, the default account
	// (NULL) first.
	sqlRunAccounts = `SELECT coalesce(account, ''), status, coalesce(reason, ''), coalesce(error_code, ''), pending, done,
       not_done, requests, throttled, rate, started_at, finished_at,
       coalesce(extract(epoch FROM finished_at - started_at), 0)::double precision
FROM reconcile_run_accounts WHERE run_id = $1
ORDER BY account NULLS FIRST`

	// sqlAccountOutcomes: a run's outcomes counted per account and outcome.
	// Reads the run's outcomes through the (run_id, domain_name) index.
	sqlAccountOutcomes = `SELECT coalesce(account, ''), outcome, count(*)
FROM reconcile_outcomes WHERE run_id = $1
GROUP BY account, outcome
ORDER BY account NULLS FIRST, outcome`

	// sqlOutcomeTimes: per outcome of one run, the attempts spent and when
	// (seconds after the run started) the first and the last were recorded.
	// Reads the run's outcomes through the (run_id, domain_name) index.
	sqlOutcomeTimes = `SELECT o.outcome, count(*), coalesce(sum(o.attempts), 0), coalesce(max(o.attempts), 0),
       extract(epoch FROM min(o.finished_at) - r.started_at)::double precision,
       extract(epoch FROM max(o.finished_at) - r.started_at)::double precision
FROM reconcile_outcomes o JOIN reconcile_runs r ON r.id = o.run_id
WHERE o.run_id = $1
GROUP BY o.outcome, r.started_at
ORDER BY count(*) DESC, o.outcome`
)

// RunSummary is one row of the reconcile_run_summary view.
type RunSummary struct {
	ID         int64
	Kind       string
	Status     string
	StartedAt  time.Time
	FinishedAt time.Time // zero while the run is running
	// Duration is finished_at - started_at (0 while running).
	Duration time.Duration
	// Counts holds the per-outcome counts, InvalidUnchanged, Requests and
	// Throttled.
	Counts RunCounters
	// Done is applied + already_exists + updated + in_sync; NotDone is
	// invalid + failed + drifted + missing.
	Done, NotDone int64
	// RequestsPerSecond is the rate achieved over the whole run (0 while
	// running).
	RequestsPerSecond float64
	Rate              float64 // the configured --rate
	Concurrency       int
	HostName          string
	Version           string
	Note              string
}

// FailureGroup is one row of the reconcile_failures_by_code view: the
// outcomes of one kind and error code in a run that left rows not done.
type FailureGroup struct {
	Outcome       string
	ErrorCode     string // "" when the outcomes have none
	Count         int64
	SampleDomains []string // up to 5, the first by name
	SampleMessage string   // the error message of the first sample
	Account       string   // the account of the outcomes ("": the default account)
}

// RunAccount is one row of reconcile_run_accounts: an account a run took
// up, its status and counts.
type RunAccount struct {
	Account   string // "": the default account
	Status    string // running, succeeded, failed, interrupted, skipped
	Reason    string // why it failed or was skipped ("" when none)
	ErrorCode string // the API's error code that stopped it ("" when none)
	Pending   int64  // rows pending when it started
	Done      int64
	NotDone   int64
	Requests  int64
	Throttled int64
	// Rate is the rate the account was run at; nil when not recorded.
	Rate       *float64
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
	// Duration is finished_at - started_at (0 while running).
	Duration time.Duration
}

// AccountOutcomeCount is how many outcomes of one kind a run recorded for
// one account.
type AccountOutcomeCount struct {
	Account string // "": the default account
	Outcome string
	Count   int64
}

// OutcomeTiming is what a run's outcomes of one kind cost and when they
// were recorded. Per-request latency is not stored; First and Last are
// offsets from the run's start.
type OutcomeTiming struct {
	Outcome     string
	Count       int64
	Attempts    int64 // requests spent, retries included
	MaxAttempts int64
	First, Last time.Duration
}

// LatestNonDryRunID returns the id of the newest run whose status is not
// dry_run (a real run or a verify run, finished or not); ErrRunNotFound when
// there is none. One statement.
func LatestNonDryRunID(ctx context.Context, q Querier) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, sqlLatestNonDryRunID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("db: latest run: no run other than dry runs: %w", ErrRunNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("db: latest run: %w", err)
	}
	return id, nil
}

// sqlRunSummary reads one run of reconcile_run_summary, its per-outcome
// counters in model.Outcomes order.
var sqlRunSummary = `SELECT run_id, kind, status, started_at, finished_at, coalesce(duration_seconds, 0),
       ` + outcomeColumns() + `, invalid_unchanged,
       done, not_done, requests, throttled, coalesce(requests_per_second, 0), rate, concurrency, host_name,
       program_version, coalesce(note, '')
FROM reconcile_run_summary WHERE run_id = $1`

// ReadRunSummary reads run id from reconcile_run_summary; ErrRunNotFound
// when there is no such run. One statement.
func ReadRunSummary(ctx context.Context, q Querier, id int64) (RunSummary, error) {
	var s RunSummary
	var finished *time.Time
	var seconds float64
	c := &s.Counts
	dest := append([]any{&s.ID, &s.Kind, &s.Status, &s.StartedAt, &finished, &seconds}, c.outcomeFields()...)
	dest = append(dest, &c.InvalidUnchanged, &s.Done, &s.NotDone, &c.Requests, &c.Throttled, &s.RequestsPerSecond,
		&s.Rate, &s.Concurrency, &s.HostName, &s.Version, &s.Note)
	err := q.QueryRow(ctx, sqlRunSummary, id).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return RunSummary{}, fmt.Errorf("db: run %d: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return RunSummary{}, fmt.Errorf("db: read run %d summary: %w", id, err)
	}
	if finished != nil {
		s.FinishedAt = *finished
	}
	s.Duration = secondsToDuration(seconds)
	return s, nil
}

// FailuresByCode returns the failure groups of run id, largest first (an
// empty slice when nothing failed; an unknown run has none either). One
// statement; memory is the groups, not the outcomes.
func FailuresByCode(ctx context.Context, q Querier, id int64) ([]FailureGroup, error) {
	rows, err := q.Query(ctx, sqlFailuresByCode, id)
	if err != nil {
		return nil, fmt.Errorf("db: failures of run %d: %w", id, err)
	}
	out := []FailureGroup{}
	var g FailureGroup
	_, err = pgx.ForEachRow(rows, []any{&g.Outcome, &g.ErrorCode, &g.Count, &g.SampleDomains, &g.SampleMessage, &g.Account}, func() error {
		out = append(out, g)
		g.SampleDomains = nil // ForEachRow scans into the same slice otherwise
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: failures of run %d: %w", id, err)
	}
	return out, nil
}

// RunAccounts returns the accounts run id took up (reconcile_run_accounts),
// the default account first and then by name; an empty slice for a run
// from before schema 7, or an unknown run. One statement.
func RunAccounts(ctx context.Context, q Querier, id int64) ([]RunAccount, error) {
	rows, err := q.Query(ctx, sqlRunAccounts, id)
	if err != nil {
		return nil, fmt.Errorf("db: accounts of run %d: %w", id, err)
	}
	out := []RunAccount{}
	var (
		a        RunAccount
		finished *time.Time
		seconds  float64
	)
	_, err = pgx.ForEachRow(rows, []any{&a.Account, &a.Status, &a.Reason, &a.ErrorCode, &a.Pending, &a.Done, &a.NotDone,
		&a.Requests, &a.Throttled, &a.Rate, &a.StartedAt, &finished, &seconds}, func() error {
		a.FinishedAt = time.Time{}
		if finished != nil {
			a.FinishedAt = *finished
		}
		a.Duration = secondsToDuration(seconds)
		out = append(out, a)
		a.Rate = nil // ForEachRow scans into the same pointer otherwise
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: accounts of run %d: %w", id, err)
	}
	return out, nil
}

// AccountOutcomes counts the outcomes of run id per account and outcome
// (from reconcile_outcomes), the default account first; an empty slice
// when the run recorded none. One statement over the run's outcomes.
func AccountOutcomes(ctx context.Context, q Querier, id int64) ([]AccountOutcomeCount, error) {
	rows, err := q.Query(ctx, sqlAccountOutcomes, id)
	if err != nil {
		return nil, fmt.Errorf("db: outcomes per account of run %d: %w", id, err)
	}
	out := []AccountOutcomeCount{}
	var c AccountOutcomeCount
	_, err = pgx.ForEachRow(rows, []any{&c.Account, &c.Outcome, &c.Count}, func() error {
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: outcomes per account of run %d: %w", id, err)
	}
	return out, nil
}

// OutcomeTimes returns, per outcome recorded by run id, the count, the
// attempts and when the first and last were recorded; most frequent first.
// One statement over the run's outcomes.
func OutcomeTimes(ctx context.Context, q Querier, id int64) ([]OutcomeTiming, error) {
	rows, err := q.Query(ctx, sqlOutcomeTimes, id)
	if err != nil {
		return nil, fmt.Errorf("db: outcome times of run %d: %w", id, err)
	}
	out := []OutcomeTiming{}
	var t OutcomeTiming
	var first, last float64
	_, err = pgx.ForEachRow(rows, []any{&t.Outcome, &t.Count, &t.Attempts, &t.MaxAttempts, &first, &last}, func() error {
		t.First, t.Last = secondsToDuration(first), secondsToDuration(last)
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: outcome times of run %d: %w", id, err)
	}
	return out, nil
}

func secondsToDuration(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond)
}
