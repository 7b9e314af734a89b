package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/model"
)

// Run statuses (reconcile_runs.status).
const (
	RunRunning     = "running"
	RunSucceeded   = "succeeded"
	RunFailed      = "failed"
	RunInterrupted = "interrupted"
	RunDryRun      = "dry_run"
)

// AbandonedNote is the note AbandonRunning writes on runs left running by a
// process that ended without finishing them.
const AbandonedNote = "abandoned: the process ended without finishing"

// RunStart is what BeginRun records about a run.
type RunStart struct {
	Status      string // RunRunning or RunDryRun
	Rate        float64
	Concurrency int
	HostName    string
	Version     string // program version
	Kind        string // RunKindRun (default when empty) or RunKindVerify
	// LeaseHolder is the holder token of the process's run claims
	// (RunLock.Holder; reconcile_runs.lease_holder, NULL when empty): while
	// one of its claims is live, AbandonRunning leaves the run alone.
	LeaseHolder string
}

// Run kinds (reconcile_runs.kind).
const (
	RunKindRun    = "run"
	RunKindVerify = "verify"
)

// RunCounters are increments of a run's counters (reconcile_runs). Zero
// fields add nothing.
type RunCounters struct {
	Applied          int64
	AlreadyExists    int64
	Updated          int64
	Invalid          int64
	Failed           int64
	Drifted          int64 // a config exists but differs (verify, --verify-existing --no-fix-drift)
	InSync           int64 // verify found the desired config
	Missing          int64 // verify found no config
	Deleted          int64 // --prune deleted the config of a domain no longer desired
	InvalidUnchanged int64 // rows invalid before with unchanged values: counted, not re-sent
	Requests         int64 // API requests sent, retries included
	Throttled        int64 // requests answered with a throttling error
}

// Count returns the counter of outcome o (0 for an unknown outcome). Every
// outcome of model.Outcomes has a counter (a test checks it).
func (c RunCounters) Count(o model.Outcome) int64 {
	if p := c.field(o); p != nil {
		return *p
	}
	return 0
}

// field is the counter of outcome o (nil for an unknown one): the one place
// that maps outcomes to RunCounters fields; the reconcile_runs column of
// each is named like the outcome. Every SQL column list of the per-outcome
// counters is generated from model.Outcomes through it (outcomeColumns).
func (c *RunCounters) field(o model.Outcome) *int64 {
	switch o {
	case model.OutcomeApplied:
		return &c.Applied
	case model.OutcomeAlreadyExists:
		return &c.AlreadyExists
	case model.OutcomeUpdated:
		return &c.Updated
	case model.OutcomeInvalid:
		return &c.Invalid
	case model.OutcomeFailed:
		return &c.Failed
	case model.OutcomeDrifted:
		return &c.Drifted
	case model.OutcomeInSync:
		return &c.InSync
	case model.OutcomeMissing:
		return &c.Missing
	case model.OutcomeDeleted:
		return &c.Deleted
	}
	return nil
}

// outcomeFields returns pointers to c's per-outcome counters, in
// model.Outcomes order (the order of outcomeColumns).
func (c *RunCounters) outcomeFields() []any {
	kinds := model.Outcomes()
	out := make([]any, len(kinds))
	for i, k := range kinds {
		out[i] = c.field(k.Outcome)
	}
	return out
}

// hasOutcomeCounts reports whether any per-outcome counter is non-zero.
func (c RunCounters) hasOutcomeCounts() bool {
	for _, k := range model.Outcomes() {
		if c.Count(k.Outcome) != 0 {
			return true
		}
	}
	return false
}

// outcomeColumns is the comma-separated list of the per-outcome counter
// columns of reconcile_runs (and reconcile_run_summary), in model.Outcomes
// order.
func outcomeColumns() string {
	kinds := model.Outcomes()
	cols := make([]string, len(kinds))
	for i, k := range kinds {
		cols[i] = string(k.Outcome)
	}
	return strings.Join(cols, ", ")
}

// RunRow is one reconcile_runs row.
type RunRow struct {
	ID          int64
	StartedAt   time.Time
	FinishedAt  time.Time // zero while the run has not finished
	Status      string
	Counts      RunCounters
	Rate        float64
	Concurrency int
	HostName    string
	Version     string
	Note        string // empty when NULL
	Kind        string // RunKindRun or RunKindVerify
	// ExitCode is the process's exit code recorded by FinishRun; -1 while
	// the run has none (running, abandoned, or finished before schema 7).
	ExitCode int
}

var runColumns = `id, started_at, finished_at, status, ` + outcomeColumns() + `, invalid_unchanged, requests,
	throttled, rate, concurrency, host_name, program_version, coalesce(note, ''), kind, coalesce(exit_code, -1)`

const (
	// sqlAbandonRunning marks as failed the running runs ($2: the caller's
	// holder token) whose process no longer holds a live claim: a run with
	// a lease_holder when no live claim has that holder (and it is not the
	// caller's); a run without one (begun before schema 7, or by a process
	// without claims) when no live claim exists but the caller's.
	// Their accounts still running fail with the same note.
	sqlAbandonRunning = `WITH gone AS (
    UPDATE reconcile_runs r SET status = 'failed', finished_at = now(), note = $1
    WHERE r.status = 'running'
      AND CASE WHEN r.lease_holder IS NULL
               THEN NOT EXISTS (SELECT FROM reconcile_run_lease l WHERE l.holder <> $2 AND l.expires_at > now())
               ELSE r.lease_holder <> $2
                    AND NOT EXISTS (SELECT FROM reconcile_run_lease l
                                    WHERE l.holder = r.lease_holder AND l.expires_at > now())
          END
    RETURNING r.id
), accounts AS (
    UPDATE reconcile_run_accounts a SET status = 'failed', reason = $1, finished_at = now()
    FROM gone WHERE a.run_id = gone.id AND a.finished_at IS NULL
)
SELECT count(*) FROM gone`

	sqlBeginRun = `INSERT INTO reconcile_runs (status, rate, concurrency, host_name, program_version, kind, lease_holder)
VALUES ($1, $2, $3, $4, $5, coalesce(NULLIF($6, ''), 'run'), NULLIF($7, '')) RETURNING id`

	sqlFinishRun = `UPDATE reconcile_runs SET status = $2, note = NULLIF($3, ''), finished_at = now(), exit_code = $4
WHERE id = $1 AND finished_at IS NULL`

	sqlRunExists = `SELECT EXISTS (SELECT FROM reconcile_runs WHERE id = $1)`
)

var (
	sqlAddRunCounts = addRunCountsSQL()
	sqlRun          = `SELECT ` + runColumns + ` FROM reconcile_runs WHERE id = $1`
	sqlLatestRun    = `SELECT ` + runColumns + ` FROM reconcile_runs ORDER BY id DESC LIMIT 1`
)

// addRunCountsSQL adds $2.. to the run's counters: invalid_unchanged,
// requests, throttled, then the per-outcome ones in model.Outcomes order.
func addRunCountsSQL() string {
	sets := []string{"invalid_unchanged = invalid_unchanged + $2", "requests = requests + $3", "throttled = throttled + $4"}
	for i, k := range model.Outcomes() {
		sets = append(sets, fmt.Sprintf("%s = %s + $%d", k.Outcome, k.Outcome, i+5))
	}
	return "UPDATE reconcile_runs SET " + strings.Join(sets, ", ") + " WHERE id = $1"
}

// AbandonRunning marks as 'failed', with finished_at = now() and note
// AbandonedNote, the runs still 'running' (of any kind) whose process is
// gone, and returns how many it marked. holder is the caller's own holder
// token (RunLock.Holder): its runs are never marked. A run is gone when
//   - its lease_holder is set, is not holder, and no claim of that holder is
//     live (expires_at > now(), the database's clock): the process died or
//     lost every claim. A run of another process that still holds a claim —
//     another shard, working on other accounts — is left alone;
//   - its lease_holder is NULL (begun before schema 7, or without a claim)
//     and no claim is live except holder's: no other process can be
//     working.
//
// Their reconcile_run_accounts rows still running are marked failed with
// the same note. Call it once the caller holds its claims and before its
// own BeginRun. One statement.
func AbandonRunning(ctx context.Context, q Querier, holder string) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, sqlAbandonRunning, AbandonedNote, holder).Scan(&n); err != nil {
		return 0, fmt.Errorf("db: mark abandoned runs: %w", err)
	}
	return n, nil
}

// BeginRun inserts a run row with started_at = now() and zero counters and
// returns its id. s.Status must be RunRunning or RunDryRun (else an error
// wrapping ErrInvalidArgument, nothing written). One statement.
func BeginRun(ctx context.Context, q Querier, s RunStart) (int64, error) {
	if s.Status != RunRunning && s.Status != RunDryRun {
		return 0, fmt.Errorf("db: begin run: status %q is not %q or %q: %w", s.Status, RunRunning, RunDryRun, ErrInvalidArgument)
	}
	var id int64
	if err := q.QueryRow(ctx, sqlBeginRun, s.Status, s.Rate, s.Concurrency, s.HostName, s.Version, s.Kind,
		s.LeaseHolder).Scan(&id); err != nil {
		return 0, fmt.Errorf("db: begin run: %w", err)
	}
	return id, nil
}

// FinishRun sets the run's final status, note (NULL when empty), the exit
// code the process ends with (reconcile_runs.exit_code: 0 only when every
// desired row is done) and finished_at = now(), in one statement. It changes only an unfinished run: for a run that
// already has finished_at it returns an error wrapping ErrRunFinished (for
// example when, after losing the lock, another process marked it abandoned),
// and ErrRunNotFound for an unknown id. status must be one of the Run*
// constants other than RunRunning, and exitCode 0 to 255 (else
// ErrInvalidArgument, nothing written).
func FinishRun(ctx context.Context, q Querier, id int64, status, note string, exitCode int) error {
	switch status {
	case RunSucceeded, RunFailed, RunInterrupted, RunDryRun:
	default:
		return fmt.Errorf("db: finish run %d: status %q: %w", id, status, ErrInvalidArgument)
	}
	if exitCode < 0 || exitCode > 255 {
		return fmt.Errorf("db: finish run %d: exit code %d: %w", id, exitCode, ErrInvalidArgument)
	}
	tag, err := q.Exec(ctx, sqlFinishRun, id, status, note, exitCode)
	if err != nil {
		return fmt.Errorf("db: finish run %d: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := q.QueryRow(ctx, sqlRunExists, id).Scan(&exists); err != nil {
		return fmt.Errorf("db: finish run %d: %w", id, err)
	}
	if exists {
		return fmt.Errorf("db: finish run %d: %w", id, ErrRunFinished)
	}
	return fmt.Errorf("db: finish run %d: %w", id, ErrRunNotFound)
}

// AddRunCounts adds c to the run's counters in one statement (atomic with
// respect to concurrent increments). ErrRunNotFound for an unknown id.
func AddRunCounts(ctx context.Context, q Querier, runID int64, c RunCounters) error {
	args := []any{runID, c.InvalidUnchanged, c.Requests, c.Throttled}
	for _, k := range model.Outcomes() {
		args = append(args, c.Count(k.Outcome))
	}
	tag, err := q.Exec(ctx, sqlAddRunCounts, args...)
	if err != nil {
		return fmt.Errorf("db: add run %d counts: %w", runID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("db: add run %d counts: %w", runID, ErrRunNotFound)
	}
	return nil
}

// Run reads one run row; ErrRunNotFound when there is none with id.
func Run(ctx context.Context, q Querier, id int64) (RunRow, error) {
	r, err := scanRun(q.QueryRow(ctx, sqlRun, id))
	if err != nil {
		return RunRow{}, fmt.Errorf("db: read run %d: %w", id, err)
	}
	return r, nil
}

// LatestRun reads the run with the highest id; ErrRunNotFound when the table
// is empty.
func LatestRun(ctx context.Context, q Querier) (RunRow, error) {
	r, err := scanRun(q.QueryRow(ctx, sqlLatestRun))
	if err != nil {
		return RunRow{}, fmt.Errorf("db: read latest run: %w", err)
	}
	return r, nil
}

func scanRun(row pgx.Row) (RunRow, error) {
	var r RunRow
	var finished *time.Time
	dest := append([]any{&r.ID, &r.StartedAt, &finished, &r.Status}, r.Counts.outcomeFields()...)
	dest = append(dest, &r.Counts.InvalidUnchanged, &r.Counts.Requests, &r.Counts.Throttled, &r.Rate,
		&r.Concurrency, &r.HostName, &r.Version, &r.Note, &r.Kind, &r.ExitCode)
	err := row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return RunRow{}, ErrRunNotFound
	}
	if err != nil {
		return RunRow{}, err
	}
	if finished != nil {
		r.FinishedAt = *finished
	}
	return r, nil
}

// Statuses of a run's account (reconcile_run_accounts.status).
const (
	RunAccountRunning     = "running"
	RunAccountSucceeded   = "succeeded"   // its pass completed
	RunAccountFailed      = "failed"      // it stopped: credentials refused or unavailable, unknown account ...
	RunAccountInterrupted = "interrupted" // the run was interrupted (signal, lost claim)
	RunAccountSkipped     = "skipped"     // not taken up: another run held its claim, or disabled
)

// RunAccountEnd is what FinishRunAccount records about an account's pass.
type RunAccountEnd struct {
	// Status is one of the RunAccount* constants other than
	// RunAccountRunning.
	Status string
	// Reason says why the account failed, was interrupted or skipped (""
	// when it succeeded). It is stored as given (cut to MaxErrorMessageLen
	// runes): the caller must have scrubbed it — no credentials, tokens,
	// keys or signed URLs.
	Reason string
	// ErrorCode is the API's error code that stopped the account ("": none).
	ErrorCode string
	// Done and NotDone count the account's rows that ended done and not
	// done (invalid, failed, drifted, missing) in the run; Requests and
	// Throttled its API requests and throttled answers. Not negative.
	Done, NotDone, Requests, Throttled int64
}

const (
	// The run accounts' unique index is on (run_id, coalesce(account, '')):
	// ON CONFLICT and the lookups name that expression.
	sqlBeginRunAccount = `INSERT INTO reconcile_run_accounts AS a (run_id, account, pending, rate)
VALUES ($1, NULLIF($2, ''), $3, NULLIF($4::double precision, 0))
ON CONFLICT (run_id, (coalesce(account, ''))) DO UPDATE SET pending = excluded.pending, rate = excluded.rate
WHERE a.status = 'running' AND a.finished_at IS NULL`

	sqlFinishRunAccount = `UPDATE reconcile_run_accounts SET status = $3, reason = NULLIF($4, ''),
    error_code = NULLIF($5, ''), done = $6, not_done = $7, requests = $8, throttled = $9, finished_at = now()
WHERE run_id = $1 AND coalesce(account, '') = $2 AND finished_at IS NULL`

	sqlSkipRunAccount = `INSERT INTO reconcile_run_accounts AS a (run_id, account, status, reason, finished_at)
VALUES ($1, NULLIF($2, ''), 'skipped', NULLIF($3, ''), now())
ON CONFLICT (run_id, (coalesce(account, ''))) DO UPDATE SET reason = excluded.reason
WHERE a.status = 'skipped'`

	sqlRunAccountFinished = `SELECT finished_at IS NOT NULL FROM reconcile_run_accounts
WHERE run_id = $1 AND coalesce(account, '') = $2`
)

// BeginRunAccount records that run runID took account up ("": the default
// account): a reconcile_run_accounts row with status running, started_at
// now(), pending (the account's pending rows) and rate (requests per
// second; 0 stores NULL). Calling it again for an account still running
// (a retry after an error around COMMIT) only sets pending and rate again.
// Errors: ErrRunNotFound for an unknown run, ErrRunFinished when the
// account already has a finished row in the run (finished or skipped),
// ErrInvalidArgument for a negative pending (nothing written). One
// statement.
func BeginRunAccount(ctx context.Context, q Querier, runID int64, account string, pending int64, rate float64) error {
	what := fmt.Sprintf("begin account %s of run %d", model.AccountLabel(account), runID)
	if pending < 0 || rate < 0 {
		return fmt.Errorf("db: %s: pending %d, rate %g: %w", what, pending, rate, ErrInvalidArgument)
	}
	tag, err := q.Exec(ctx, sqlBeginRunAccount, runID, account, pending, rate)
	if err != nil {
		if isForeignKeyViolation(err) {
			return fmt.Errorf("db: %s: %w", what, ErrRunNotFound)
		}
		return fmt.Errorf("db: %s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("db: %s: %w", what, ErrRunFinished)
	}
	return nil
}

// FinishRunAccount records the end of account's pass in run runID: status,
// reason, error code and counts (see RunAccountEnd), finished_at = now().
// It changes only a row BeginRunAccount wrote that has not finished:
// ErrRunFinished when it has (a retry after an error around COMMIT ends
// here too), ErrRunNotFound when the run has no row for the account.
// ErrInvalidArgument, with nothing written, for a status that is not a
// final one or a negative count. Reason is not scrubbed here: see
// RunAccountEnd. One statement (two when it fails).
func FinishRunAccount(ctx context.Context, q Querier, runID int64, account string, end RunAccountEnd) error {
	what := fmt.Sprintf("finish account %s of run %d", model.AccountLabel(account), runID)
	switch end.Status {
	case RunAccountSucceeded, RunAccountFailed, RunAccountInterrupted, RunAccountSkipped:
	default:
		return fmt.Errorf("db: %s: status %q: %w", what, end.Status, ErrInvalidArgument)
	}
	if end.Done < 0 || end.NotDone < 0 || end.Requests < 0 || end.Throttled < 0 {
		return fmt.Errorf("db: %s: negative count in %+v: %w", what, end, ErrInvalidArgument)
	}
	tag, err := q.Exec(ctx, sqlFinishRunAccount, runID, account, end.Status, clean(end.Reason, MaxErrorMessageLen),
		clean(end.ErrorCode, MaxErrorCodeLen), end.Done, end.NotDone, end.Requests, end.Throttled)
	if err != nil {
		return fmt.Errorf("db: %s: %w", what, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var finished bool
	err = q.QueryRow(ctx, sqlRunAccountFinished, runID, account).Scan(&finished)
	switch {
	case isNoRows(err):
		return fmt.Errorf("db: %s: the run did not take the account up: %w", what, ErrRunNotFound)
	case err != nil:
		return fmt.Errorf("db: %s: %w", what, err)
	}
	return fmt.Errorf("db: %s: %w", what, ErrRunFinished)
}

// SkipRunAccount records that run runID did not take account up ("": the
// default account): a reconcile_run_accounts row with status skipped, the
// reason and finished_at = now(). The reason is stored as given (cut to
// MaxErrorMessageLen runes): the caller must have scrubbed it, see
// RunAccountEnd.Reason. Skipping an account again only replaces the
// reason; an account the run took up (BeginRunAccount) cannot be skipped
// (ErrInvalidArgument). ErrRunNotFound for an unknown run. One statement.
func SkipRunAccount(ctx context.Context, q Querier, runID int64, account, reason string) error {
	what := fmt.Sprintf("skip account %s of run %d", model.AccountLabel(account), runID)
	tag, err := q.Exec(ctx, sqlSkipRunAccount, runID, account, clean(reason, MaxErrorMessageLen))
	if err != nil {
		if isForeignKeyViolation(err) {
			return fmt.Errorf("db: %s: %w", what, ErrRunNotFound)
		}
		return fmt.Errorf("db: %s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("db: %s: the run took the account up already: %w", what, ErrInvalidArgument)
	}
	return nil
}
