// Package report builds the audit report of one run (`reconcile report`):
// its summary, counts per outcome with the attempts they cost and when they
// were recorded, and the outcomes that left rows not done grouped by error
// code with sample domains. It reads the views of migration 003
// (reconcile_run_summary, reconcile_failures_by_code), so the report and SQL
// users see the same numbers, and it writes nothing.
//
// Since schema 7 a run records every account it took up
// (reconcile_run_accounts): the report then has a section per account (its
// status, why it stopped, its counts, and its outcomes from
// reconcile_outcomes), and each failure group names its account. A run from
// before schema 7 has no such rows: its report has no accounts.
package report

import (
	"context"
	"fmt"
	"time"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
)

// Run is the run's summary.
type Run struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	Status     string     `json:"status"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"` // null while running
	// DurationSeconds is finished_at - started_at; 0 while running.
	DurationSeconds float64 `json:"duration_seconds"`
	Rate            float64 `json:"rate"` // the configured --rate
	Concurrency     int     `json:"concurrency"`
	HostName        string  `json:"host_name"`
	Version         string  `json:"program_version"`
	Note            string  `json:"note"`
}

// Outcome is the count of one outcome in the run, with what it cost and
// when it was recorded. Per-request latency is not stored; FirstSeconds and
// LastSeconds are the offsets from the run's start of the first and last
// outcome recorded (null when there is none).
type Outcome struct {
	Outcome      string   `json:"outcome"`
	Count        int64    `json:"count"`
	Attempts     int64    `json:"attempts"`
	MaxAttempts  int64    `json:"max_attempts"`
	FirstSeconds *float64 `json:"first_seconds"`
	LastSeconds  *float64 `json:"last_seconds"`
}

// Failure is one group of outcomes that left rows not done: same outcome,
// same error code, same account.
type Failure struct {
	Outcome       string   `json:"outcome"`
	ErrorCode     string   `json:"error_code"`
	Count         int64    `json:"count"`
	SampleDomains []string `json:"sample_domains"`
	SampleMessage string   `json:"sample_message"`
	// Account is the outcomes' account: its name, or "default" for the
	// default account (model.AccountLabel).
	Account string `json:"account"`
}

// Account is one account the run took up (reconcile_run_accounts), with
// its outcomes.
type Account struct {
	// Account is the account's name, or "default" for the default account
	// (model.AccountLabel).
	Account string `json:"account"`
	// Status is running, succeeded (its pass completed), failed,
	// interrupted or skipped.
	Status string `json:"status"`
	// Reason says why the account failed or was skipped; ErrorCode is the
	// API's error code that stopped it. Both "" when none.
	Reason    string `json:"reason"`
	ErrorCode string `json:"error_code"`
	// Pending is the rows of the account pending when it started; Done and
	// NotDone the rows that ended done and not done.
	Pending int64 `json:"pending"`
	Done    int64 `json:"done"`
	NotDone int64 `json:"not_done"`
	// Requests and Throttled count the API requests sent to the account
	// and the throttled answers.
	Requests  int64 `json:"requests"`
	Throttled int64 `json:"throttled"`
	// Rate is the rate the account was run at (requests per second); null
	// when not recorded.
	Rate       *float64   `json:"rate"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"` // null while running
	// DurationSeconds is finished_at - started_at; 0 while running.
	DurationSeconds float64 `json:"duration_seconds"`
	// Outcomes counts the run's outcomes for the account, per outcome
	// (only the outcomes it had).
	Outcomes map[string]int64 `json:"outcomes"`
}

// Report is the audit report of one run.
type Report struct {
	Run      Run       `json:"run"`
	Outcomes []Outcome `json:"outcomes"`
	// Done and NotDone total the outcomes that made rows done (applied,
	// already_exists, updated, in_sync) and those that did not (invalid,
	// failed, drifted, missing).
	Done    int64 `json:"done"`
	NotDone int64 `json:"not_done"`
	// InvalidUnchanged counts rows still invalid from an earlier run: the
	// run counted them and sent nothing.
	InvalidUnchanged  int64     `json:"invalid_unchanged"`
	Requests          int64     `json:"requests"`
	Throttled         int64     `json:"throttled"`
	RequestsPerSecond float64   `json:"requests_per_second"`
	Failures          []Failure `json:"failures"`
	// Accounts are the accounts the run took up, the default account first
	// and then by name; empty for a run from before schema 7.
	Accounts []Account `json:"accounts"`
}

// MultiAccount reports whether the run is about some account other than
// the default one (an account it took up, or a failure group): then the
// table shows the accounts. A run of the default account alone gets the
// table it got before accounts existed.
func (r *Report) MultiAccount() bool {
	for _, a := range r.Accounts {
		if a.Account != model.DefaultAccountLabel {
			return true
		}
	}
	for _, f := range r.Failures {
		if f.Account != model.DefaultAccountLabel {
			return true
		}
	}
	return false
}

// Build reads the report of run runID through q; runID 0 means the latest
// run that is not a dry run. Errors wrap db.ErrRunNotFound when there is no
// such run. Run it in one REPEATABLE READ transaction for a report of a
// running run that is consistent with itself.
func Build(ctx context.Context, q db.Querier, runID int64) (Report, error) {
	if runID < 0 {
		return Report{}, fmt.Errorf("report: run id %d: %w", runID, db.ErrInvalidArgument)
	}
	if runID == 0 {
		id, err := db.LatestNonDryRunID(ctx, q)
		if err != nil {
			return Report{}, fmt.Errorf("report: %w", err)
		}
		runID = id
	}
	s, err := db.ReadRunSummary(ctx, q, runID)
	if err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	times, err := db.OutcomeTimes(ctx, q, runID)
	if err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	groups, err := db.FailuresByCode(ctx, q, runID)
	if err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	accounts, err := db.RunAccounts(ctx, q, runID)
	if err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	var perAccount []db.AccountOutcomeCount
	if len(accounts) > 0 {
		if perAccount, err = db.AccountOutcomes(ctx, q, runID); err != nil {
			return Report{}, fmt.Errorf("report: %w", err)
		}
	}

	r := Report{
		Run: Run{ID: s.ID, Kind: s.Kind, Status: s.Status, StartedAt: s.StartedAt,
			DurationSeconds: s.Duration.Seconds(), Rate: s.Rate, Concurrency: s.Concurrency,
			HostName: s.HostName, Version: s.Version, Note: s.Note},
		Done: s.Done, NotDone: s.NotDone, InvalidUnchanged: s.Counts.InvalidUnchanged,
		Requests: s.Counts.Requests, Throttled: s.Counts.Throttled, RequestsPerSecond: s.RequestsPerSecond,
		Outcomes: []Outcome{}, Failures: []Failure{}, Accounts: []Account{},
	}
	if !s.FinishedAt.IsZero() {
		f := s.FinishedAt
		r.Run.FinishedAt = &f
	}
	byOutcome := map[string]db.OutcomeTiming{}
	for _, t := range times {
		byOutcome[t.Outcome] = t
	}
	for _, k := range model.Outcomes() {
		oc := struct {
			o      model.Outcome
			n      int64
			always bool
		}{k.Outcome, s.Counts.Count(k.Outcome), k.Contract}
		t, seen := byOutcome[string(oc.o)]
		if !oc.always && oc.n == 0 && !seen {
			continue
		}
		line := Outcome{Outcome: string(oc.o), Count: oc.n, Attempts: t.Attempts, MaxAttempts: t.MaxAttempts}
		if seen {
			first, last := t.First.Seconds(), t.Last.Seconds()
			line.FirstSeconds, line.LastSeconds = &first, &last
		}
		r.Outcomes = append(r.Outcomes, line)
		delete(byOutcome, string(oc.o))
	}
	// Outcomes this program does not know (a newer version recorded them).
	for _, t := range times {
		if _, left := byOutcome[t.Outcome]; left {
			first, last := t.First.Seconds(), t.Last.Seconds()
			r.Outcomes = append(r.Outcomes, Outcome{Outcome: t.Outcome, Count: t.Count, Attempts: t.Attempts,
				MaxAttempts: t.MaxAttempts, FirstSeconds: &first, LastSeconds: &last})
		}
	}
	for _, g := range groups {
		r.Failures = append(r.Failures, Failure{Outcome: g.Outcome, ErrorCode: g.ErrorCode, Count: g.Count,
			SampleDomains: g.SampleDomains, SampleMessage: g.SampleMessage, Account: model.AccountLabel(g.Account)})
	}
	r.Accounts = accountsOf(accounts, perAccount)
	return r, nil
}

// accountsOf joins the run's accounts with their outcome counts. An account
// with outcomes but no reconcile_run_accounts row (which a run does not
// leave) is listed too, after the others, with an empty status, so that no
// outcome is lost.
func accountsOf(accounts []db.RunAccount, counts []db.AccountOutcomeCount) []Account {
	out := make([]Account, 0, len(accounts))
	index := map[string]int{}
	for _, a := range accounts {
		acc := Account{Account: model.AccountLabel(a.Account), Status: a.Status, Reason: a.Reason,
			ErrorCode: a.ErrorCode, Pending: a.Pending, Done: a.Done, NotDone: a.NotDone, Requests: a.Requests,
			Throttled: a.Throttled, Rate: a.Rate, StartedAt: a.StartedAt, DurationSeconds: a.Duration.Seconds(),
			Outcomes: map[string]int64{}}
		if !a.FinishedAt.IsZero() {
			f := a.FinishedAt
			acc.FinishedAt = &f
		}
		index[a.Account] = len(out)
		out = append(out, acc)
	}
	for _, c := range counts {
		i, ok := index[c.Account]
		if !ok {
			i = len(out)
			index[c.Account] = i
			out = append(out, Account{Account: model.AccountLabel(c.Account), Outcomes: map[string]int64{}})
		}
		out[i].Outcomes[c.Outcome] = c.Count
	}
	return out
}
