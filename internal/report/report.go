// Package report builds the audit report of one run (`reconcile report`):
// its summary, counts per outcome with the attempts they cost and when they
// were recorded, and the outcomes that left rows not done grouped by error
// code with sample domains. It reads the views of migration 003
// (reconcile_run_summary, reconcile_failures_by_code), so the report and SQL
// users see the same numbers, and it writes nothing.
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
// same error code.
type Failure struct {
	Outcome       string   `json:"outcome"`
	ErrorCode     string   `json:"error_code"`
	Count         int64    `json:"count"`
	SampleDomains []string `json:"sample_domains"`
	SampleMessage string   `json:"sample_message"`
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

	r := Report{
		Run: Run{ID: s.ID, Kind: s.Kind, Status: s.Status, StartedAt: s.StartedAt,
			DurationSeconds: s.Duration.Seconds(), Rate: s.Rate, Concurrency: s.Concurrency,
			HostName: s.HostName, Version: s.Version, Note: s.Note},
		Done: s.Done, NotDone: s.NotDone, InvalidUnchanged: s.Counts.InvalidUnchanged,
		Requests: s.Counts.Requests, Throttled: s.Counts.Throttled, RequestsPerSecond: s.RequestsPerSecond,
		Outcomes: []Outcome{}, Failures: []Failure{},
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
			SampleDomains: g.SampleDomains, SampleMessage: g.SampleMessage})
	}
	return r, nil
}
