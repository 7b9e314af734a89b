package model

import "time"

// Outcome is the recorded result of one row in one run.
type Outcome string

// Outcomes of the contract, plus the ones the project added (see README).
const (
	// OutcomeApplied: Add succeeded. Done.
	OutcomeApplied Outcome = "applied"
	// OutcomeAlreadyExists: Add answered ConfigAlreadyExists. Done.
	OutcomeAlreadyExists Outcome = "already_exists"
	// OutcomeUpdated: Update succeeded after the desired values changed. Done.
	OutcomeUpdated Outcome = "updated"
	// OutcomeInvalid: the row breaks the API's rules; nothing was sent. Not done.
	OutcomeInvalid Outcome = "invalid"
	// OutcomeFailed: a permanent error, or retries ran out. Not done.
	OutcomeFailed Outcome = "failed"
	// OutcomeDrifted: a config exists but differs from the desired values
	// (reconcile verify; run --verify-existing --no-fix-drift). Not done.
	OutcomeDrifted Outcome = "drifted"
	// OutcomeInSync: reconcile verify found the desired config. Done.
	OutcomeInSync Outcome = "in_sync"
	// OutcomeMissing: reconcile verify found no config. Not done.
	OutcomeMissing Outcome = "missing"
	// OutcomeDeleted: run --prune deleted the config of a domain that is no
	// longer desired.
	OutcomeDeleted Outcome = "deleted"
)

// Done reports whether the outcome makes its row done (for its fingerprint).
func (o Outcome) Done() bool {
	switch o {
	case OutcomeApplied, OutcomeAlreadyExists, OutcomeUpdated, OutcomeInSync:
		return true
	}
	return false
}

// Result is one row's outcome in one run, as written to reconcile_outcomes.
// It never carries the auth key.
type Result struct {
	Domain       string
	Outcome      Outcome
	ErrorCode    string // API error code, or a local code such as "Invalid.NotifyUrl"
	ErrorMessage string // scrubbed of secrets
	HTTPStatus   int    // 0 when no HTTP answer was received
	RequestID    string // the API's RequestId, when an answer carried one
	Attempts     int    // requests sent for this row in this run
	Fingerprint  string
	FinishedAt   time.Time
}
