package db

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/reconcile/reconcile/internal/model"
)

// Limits on text that comes from the API, applied by WriteOutcomes (longer
// values are cut at a rune boundary and end with "…").
const (
	MaxErrorMessageLen = 2000 // runes of reconcile_outcomes.error_message
	MaxErrorCodeLen    = 200  // runes of error_code
	MaxRequestIDLen    = 200  // runes of request_id
)

// sqlWriteOutcomes is one statement, hence one transaction:
//  1. ins inserts the batch into reconcile_outcomes, with the values each
//     outcome is about ($15..$17: notify_url, notify_req_auth, region_id;
//     NULL when empty, notify_req_auth NULL without a notify_url) and the
//     account it was for ($18; NULL for the default account, ""); a
//     (run_id, domain_name) already there is skipped (a retried batch, or a
//     domain twice in a batch: the first one wins);
//  2. st upserts reconcile_domain_state from the rows actually inserted:
//     last_* and account always; done_fingerprint, remote_exists and unconfirmed as the
//     outcome's kind says (model.OutcomeKind: Done, Remote, Confirms);
//  3. the final UPDATE adds the per-outcome counts of the inserted rows to
//     the run, and requests/throttled/invalid_unchanged ($12..$14) when at
//     least one row was inserted or the batch was empty, so a retried batch
//     is counted once; it returns the counts it added.
//
// The outcome lists in it are generated from model.Outcomes (see
// writeOutcomesSQL), so a new outcome kind needs no edit here.
//
// Arrays + unnest: one round trip and one statement. BenchmarkWriteOutcomes
// compares it with COPY into a temporary table + INSERT ... SELECT (three
// round trips and catalog churn per batch): on a local PG 15, unnest took
// 10 ms vs 15 ms at 500 rows and 83 ms vs 74 ms at 5,000 (the COPY variant
// doing a simpler upsert), so unnest wins at the flush sizes a run uses and
// keeps the write a single atomic statement.
var sqlWriteOutcomes = writeOutcomesSQL()

// writeOutcomesSQL builds sqlWriteOutcomes from the outcome table.
func writeOutcomesSQL() string {
	kinds := model.Outcomes()
	done := sqlList(model.OutcomesWhere(func(k model.OutcomeKind) bool { return k.Done }))
	exists := sqlList(model.OutcomesWhere(func(k model.OutcomeKind) bool { return k.Remote == model.RemoteExists }))
	absent := sqlList(model.OutcomesWhere(func(k model.OutcomeKind) bool { return k.Remote == model.RemoteAbsent }))
	confirms := sqlList(model.OutcomesWhere(func(k model.OutcomeKind) bool { return k.Confirms }))
	forgetsDone := sqlList(model.OutcomesWhere(func(k model.OutcomeKind) bool { return k.Confirms && !k.Done }))
	var filters, storedFilters, sets, returning strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&filters, ",\n           count(*) FILTER (WHERE outcome = '%s') AS %s", k.Outcome, k.Outcome)
		fmt.Fprintf(&storedFilters, ",\n           count(*) FILTER (WHERE outcome = '%s') AS stored_%s", k.Outcome, k.Outcome)
		fmt.Fprintf(&sets, "    %s = r.%s + n.%s,\n", k.Outcome, k.Outcome, k.Outcome)
		fmt.Fprintf(&returning, ", m.stored_%s", k.Outcome)
	}
	return `WITH input AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::int[],
                         $9::text[], $10::timestamptz[], $11::bool[], $15::text[], $16::bool[], $17::text[],
                         $18::text[])
        AS t(domain_name, outcome, error_code, error_message, http_status, request_id, attempts, fingerprint,
             finished_at, possibly_applied, notify_url, notify_req_auth, region_id, account)
), ins AS (
    INSERT INTO reconcile_outcomes (run_id, domain_name, outcome, error_code, error_message, http_status,
                                    request_id, attempts, fingerprint, finished_at, possibly_applied,
                                    notify_url, notify_req_auth, region_id, account)
    SELECT $1, domain_name, outcome, NULLIF(error_code, ''), NULLIF(error_message, ''), NULLIF(http_status, 0),
           NULLIF(request_id, ''), attempts, fingerprint, coalesce(finished_at, now()), possibly_applied,
           NULLIF(notify_url, ''), CASE WHEN notify_url <> '' THEN notify_req_auth END, NULLIF(region_id, ''),
           NULLIF(account, '')
    FROM input
    ON CONFLICT (run_id, domain_name) DO NOTHING
    RETURNING id, run_id, domain_name, outcome, fingerprint, error_code, error_message, finished_at, account
), st AS (
    INSERT INTO reconcile_domain_state AS s (domain_name, last_outcome_id, last_run_id, last_outcome,
        last_fingerprint, last_error_code, last_error_message, last_finished_at, done_fingerprint, remote_exists,
        account)
    SELECT domain_name, id, run_id, outcome, fingerprint, error_code, error_message, finished_at,
           CASE WHEN outcome IN (` + done + `) THEN fingerprint END,
           CASE WHEN outcome IN (` + exists + `) THEN true
                WHEN outcome IN (` + absent + `) THEN false END,
           account
    FROM ins
    ON CONFLICT (domain_name) DO UPDATE SET
        last_outcome_id    = excluded.last_outcome_id,
        last_run_id        = excluded.last_run_id,
        last_outcome       = excluded.last_outcome,
        last_fingerprint   = excluded.last_fingerprint,
        last_error_code    = excluded.last_error_code,
        last_error_message = excluded.last_error_message,
        last_finished_at   = excluded.last_finished_at,
        account            = excluded.account,
        done_fingerprint   = CASE WHEN excluded.last_outcome IN (` + forgetsDone + `) THEN NULL
                                  ELSE coalesce(excluded.done_fingerprint, s.done_fingerprint) END,
        remote_exists      = coalesce(excluded.remote_exists, s.remote_exists),
        unconfirmed        = CASE WHEN excluded.last_outcome IN (` + confirms + `) THEN '{}'::text[]
                                  ELSE s.unconfirmed END
    WHERE s.last_outcome_id IS NULL OR s.last_outcome_id < excluded.last_outcome_id
), n AS (
    SELECT count(*) AS total` + filters.String() + `
    FROM ins
), m AS (
    -- what this run holds for the batch's domains after the statement: the
    -- rows inserted now plus those an earlier attempt of the batch stored
    SELECT count(*) AS stored` + storedFilters.String() + `
    FROM (SELECT outcome FROM ins
          UNION ALL
          SELECT o.outcome FROM reconcile_outcomes o
          WHERE o.run_id = $1 AND o.domain_name IN (SELECT domain_name FROM input)) AS stored
)
UPDATE reconcile_runs r SET
` + sets.String() + `    requests          = r.requests + CASE WHEN n.total > 0 OR cardinality($2::text[]) = 0 THEN $12::bigint ELSE 0 END,
    throttled         = r.throttled + CASE WHEN n.total > 0 OR cardinality($2::text[]) = 0 THEN $13::bigint ELSE 0 END,
    invalid_unchanged = r.invalid_unchanged + CASE WHEN n.total > 0 OR cardinality($2::text[]) = 0 THEN $14::bigint ELSE 0 END
FROM n, m
WHERE r.id = $1
RETURNING n.total` + returning.String()
}

// sqlList renders outcomes as a SQL list of string literals. Outcome names
// are fixed identifiers (lower case letters and '_'), never user input.
func sqlList(os []model.Outcome) string {
	if len(os) == 0 {
		return "NULL"
	}
	parts := make([]string, len(os))
	for i, o := range os {
		parts[i] = "'" + string(o) + "'"
	}
	return strings.Join(parts, ", ")
}

// sqlMarkSending records, before a run sends writes for a page of rows, that
// each row's values (fingerprint; empty for a Delete) may be about to reach
// the cloud in the account the write goes to ($3; NULL for the default
// account, ""): the fingerprint joins unconfirmed, done_fingerprint is
// cleared, since the cloud's config is no longer known until an answer
// proves it, and account becomes the write's. A domain without a state row
// gets one (last_* NULL); a domain already marked with the same values in
// the same account is not written again.
const sqlMarkSending = `INSERT INTO reconcile_domain_state AS s (domain_name, unconfirmed, account)
SELECT domain_name, CASE WHEN fingerprint = '' THEN '{}'::text[] ELSE ARRAY[fingerprint] END, NULLIF(account, '')
FROM unnest($1::text[], $2::text[], $3::text[]) AS t(domain_name, fingerprint, account)
ON CONFLICT (domain_name) DO UPDATE SET
    done_fingerprint = NULL,
    unconfirmed      = CASE WHEN excluded.unconfirmed <@ s.unconfirmed THEN s.unconfirmed
                            ELSE s.unconfirmed || excluded.unconfirmed END,
    account          = excluded.account
WHERE s.done_fingerprint IS NOT NULL OR NOT (excluded.unconfirmed <@ s.unconfirmed)
   OR s.account IS DISTINCT FROM excluded.account`

// MarkSending records intents in one statement, before their requests are
// sent (see sqlMarkSending): from then on, until an answer proves what the
// cloud holds, the domains are not done and a ConfigAlreadyExists is
// trusted only for the values in their unconfirmed set. It must commit
// before the first of the requests leaves; a process killed after it leaves
// at most a harmless extra request or Describe for the next run. A domain
// may appear only once in intents (ErrInvalidArgument otherwise). Marking a
// domain again is idempotent. Each intent's Account ("": the default
// account) is stored as the domain's reconcile_domain_state.account: the
// account that may now hold the domain's config, where --prune deletes.
func MarkSending(ctx context.Context, q Querier, intents []model.Intent) error {
	if len(intents) == 0 {
		return nil
	}
	domains := make([]string, len(intents))
	fps := make([]string, len(intents))
	accounts := make([]string, len(intents))
	seen := make(map[string]struct{}, len(intents))
	for i, in := range intents {
		if in.Domain == "" {
			return fmt.Errorf("db: mark sending: intent %d has no domain: %w", i, ErrInvalidArgument)
		}
		if _, dup := seen[in.Domain]; dup {
			return fmt.Errorf("db: mark sending: domain %q twice: %w", in.Domain, ErrInvalidArgument)
		}
		seen[in.Domain] = struct{}{}
		domains[i], fps[i], accounts[i] = in.Domain, in.Fingerprint, in.Account
	}
	if _, err := q.Exec(ctx, sqlMarkSending, domains, fps, accounts); err != nil {
		return fmt.Errorf("db: mark %d domains as sending: %w", len(intents), err)
	}
	return nil
}

// WriteOutcomes records a batch of results of run runID in one statement
// (one transaction, or part of the caller's when q is a pgx.Tx):
// it inserts them into reconcile_outcomes (with each result's NotifyURL,
// ReqAuth and Region: the values sent, never the key; and its Account, NULL
// for the default account ""), updates reconcile_domain_state for their
// domains (last outcome and account always; done_fingerprint when the
// outcome is done, kept otherwise) and adds to the run's counters the per-outcome counts
// of the rows it inserted plus c.Requests, c.Throttled and
// c.InvalidUnchanged. c's per-outcome fields must be zero: they are derived
// from rs.
//
// It is idempotent: a result whose (run, domain) is already recorded is
// skipped and not counted, and c is added only when the batch inserted at
// least one row, so retrying a batch whose first attempt committed (the
// error came around COMMIT, see IsRetryable) changes nothing. An empty rs
// with non-zero counters is simply added (not idempotent: do not retry it
// blindly). A domain appearing twice in rs is recorded once (the first).
//
// Text from the API is made storable: NUL bytes removed, invalid UTF-8
// replaced, and error_message/error_code/request_id cut to the Max*Len
// limits. A zero FinishedAt becomes the server's now(). Results with an empty
// Domain or Fingerprint, an unknown Outcome, or a failed outcome without an
// error code and message are refused before anything is written
// (ErrInvalidArgument); an unknown runID gives ErrRunNotFound and
// writes nothing when q is not inside a larger transaction (the statement
// fails on the foreign key).
func WriteOutcomes(ctx context.Context, q Querier, runID int64, rs []model.Result, c RunCounters) (Written, error) {
	if c.hasOutcomeCounts() {
		return nil, fmt.Errorf("db: write outcomes: per-outcome counters are derived from the results: %w", ErrInvalidArgument)
	}
	if len(rs) == 0 {
		if c == (RunCounters{}) {
			return Written{}, nil
		}
		return Written{}, AddRunCounts(ctx, q, runID, c)
	}
	n := len(rs)
	var (
		domains   = make([]string, n)
		outcomes  = make([]string, n)
		codes     = make([]string, n)
		messages  = make([]string, n)
		statuses  = make([]int32, n)
		reqIDs    = make([]string, n)
		attempts  = make([]int32, n)
		fps       = make([]string, n)
		finishedA = make([]pgtype.Timestamptz, n)
		possibly  = make([]bool, n)
		urls      = make([]string, n)
		reqAuths  = make([]bool, n)
		regions   = make([]string, n)
		accounts  = make([]string, n)
	)
	for i, r := range rs {
		switch {
		case r.Domain == "":
			return nil, fmt.Errorf("db: write outcomes: result %d has no domain: %w", i, ErrInvalidArgument)
		case r.Fingerprint == "":
			return nil, fmt.Errorf("db: write outcomes: result for %q has no fingerprint: %w", r.Domain, ErrInvalidArgument)
		case !r.Outcome.Valid():
			return nil, fmt.Errorf("db: write outcomes: result for %q has outcome %q: %w", r.Domain, r.Outcome, ErrInvalidArgument)
		case r.Outcome == model.OutcomeFailed && (r.ErrorCode == "" || r.ErrorMessage == ""):
			return nil, fmt.Errorf("db: write outcomes: failed result for %q has no error code or message: %w", r.Domain, ErrInvalidArgument)
		}
		domains[i] = r.Domain
		outcomes[i] = string(r.Outcome)
		codes[i] = clean(r.ErrorCode, MaxErrorCodeLen)
		messages[i] = clean(r.ErrorMessage, MaxErrorMessageLen)
		statuses[i] = int32(r.HTTPStatus)
		reqIDs[i] = clean(r.RequestID, MaxRequestIDLen)
		attempts[i] = int32(r.Attempts)
		fps[i] = r.Fingerprint
		if !r.FinishedAt.IsZero() {
			finishedA[i] = pgtype.Timestamptz{Time: r.FinishedAt, Valid: true}
		}
		possibly[i] = r.PossiblyApplied
		urls[i], reqAuths[i], regions[i] = r.NotifyURL, r.ReqAuth, r.Region
		accounts[i] = r.Account
	}
	kinds := model.Outcomes()
	counts := make([]int64, 1+len(kinds))
	dest := make([]any, len(counts))
	for i := range counts {
		dest[i] = &counts[i]
	}
	err := q.QueryRow(ctx, sqlWriteOutcomes, runID, domains, outcomes, codes, messages, statuses, reqIDs,
		attempts, fps, finishedA, possibly, c.Requests, c.Throttled, c.InvalidUnchanged, urls, reqAuths, regions, accounts).Scan(dest...)
	if err != nil {
		if isForeignKeyViolation(err) || isNoRows(err) {
			return nil, fmt.Errorf("db: write %d outcomes of run %d: %w", n, runID, ErrRunNotFound)
		}
		return nil, fmt.Errorf("db: write %d outcomes of run %d: %w", n, runID, err)
	}
	w := make(Written, len(kinds))
	for i, k := range kinds {
		if counts[i+1] > 0 {
			w[k.Outcome] = counts[i+1]
		}
	}
	return w, nil
}

// Written counts, per outcome, the batch's outcomes that the run holds once
// a WriteOutcomes call returns: those it inserted, plus those an earlier
// attempt of the same batch had stored (a retry after a commit whose answer
// was lost). A result dropped because its domain already had another
// outcome in the run counts as that stored outcome, never as its own.
// Counts shown for a run must be built from it: nothing is counted that is
// not stored.
type Written map[model.Outcome]int64

// clean makes s storable as text: no NUL bytes, valid UTF-8, at most max
// runes (cut ones end with "…").
func clean(s string, max int) string {
	if s == "" {
		return s
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == max-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}
