package model

import "time"

// Outcome is the recorded result of one row in one run
// (reconcile_outcomes.outcome).
type Outcome string

// Outcomes of the contract, plus the ones the project added (see README).
// Their properties are defined once, in Outcomes; everything that lists
// outcomes (the SQL that writes them, the counters, metrics, reports) derives
// from that table or is tested against it.
const (
	// OutcomeApplied: Add succeeded. Done.
	OutcomeApplied Outcome = "applied"
	// OutcomeAlreadyExists: Add answered ConfigAlreadyExists and the config
	// there is known to hold the row's values. Done.
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
	// OutcomeInSync: a Describe found the desired config. Done.
	OutcomeInSync Outcome = "in_sync"
	// OutcomeMissing: reconcile verify found no config. Not done.
	OutcomeMissing Outcome = "missing"
	// OutcomeDeleted: run --prune deleted the config of a domain that is no
	// longer desired (or found it already gone).
	OutcomeDeleted Outcome = "deleted"
)

// Remote is what an outcome proves about whether the cloud holds a config
// for the domain.
type Remote int

// Values of OutcomeKind.Remote.
const (
	// RemoteUnknown: the outcome proves nothing; what was known stays.
	RemoteUnknown Remote = iota
	// RemoteExists: the cloud holds a config (a pending row is sent as Update).
	RemoteExists
	// RemoteAbsent: the cloud holds no config (a pending row is sent as Add).
	RemoteAbsent
)

// OutcomeKind is one outcome with its properties: the one definition that
// every list of outcomes derives from (see Outcomes).
type OutcomeKind struct {
	Outcome Outcome
	// Done: the row is done for the fingerprint recorded with the outcome
	// (the cloud is known to hold those values); it is not sent again
	// until it is edited.
	Done bool
	// NotDone: the outcome leaves a desired row not done and needing
	// attention; it counts in a run's not_done total and in
	// reconcile_failures_by_code. Deleted is neither Done nor NotDone: it
	// is about a domain that is no longer desired.
	NotDone bool
	// Remote: what the outcome proves about the config's existence. A
	// domain whose latest knowledge is RemoteExists is a prune candidate
	// once it is no longer desired.
	Remote Remote
	// Confirms: the outcome comes from an answer that proves what the
	// cloud holds (an OK answer to a write, a Describe, a Delete), so the
	// job's earlier writes whose answers were lost no longer matter.
	Confirms bool
	// Pending: the row is sent again by the next run even when its values
	// are unchanged. Invalid is not (it is counted, not re-sent, until the
	// row is edited).
	Pending bool
	// Contract: one of the five outcomes every user relies on; summaries,
	// reports and metrics show it even when its count is 0.
	Contract bool
}

// outcomeKinds is the table. Order: the order reports and summaries list
// outcomes in.
var outcomeKinds = [...]OutcomeKind{
	{Outcome: OutcomeApplied, Done: true, Remote: RemoteExists, Confirms: true, Contract: true},
	{Outcome: OutcomeAlreadyExists, Done: true, Remote: RemoteExists, Confirms: true, Contract: true},
	{Outcome: OutcomeUpdated, Done: true, Remote: RemoteExists, Confirms: true, Contract: true},
	{Outcome: OutcomeInvalid, NotDone: true, Contract: true},
	{Outcome: OutcomeFailed, NotDone: true, Pending: true, Contract: true},
	{Outcome: OutcomeDrifted, NotDone: true, Remote: RemoteExists, Confirms: true, Pending: true},
	{Outcome: OutcomeInSync, Done: true, Remote: RemoteExists, Confirms: true},
	{Outcome: OutcomeMissing, NotDone: true, Remote: RemoteAbsent, Confirms: true, Pending: true},
	{Outcome: OutcomeDeleted, Remote: RemoteAbsent, Confirms: true, Pending: true},
}

// Outcomes returns every outcome with its properties, in report order. The
// slice is a fresh copy: callers may keep or change it.
func Outcomes() []OutcomeKind {
	out := make([]OutcomeKind, len(outcomeKinds))
	copy(out, outcomeKinds[:])
	return out
}

// OutcomesWhere returns, in report order, the outcomes whose kind satisfies
// keep.
func OutcomesWhere(keep func(OutcomeKind) bool) []Outcome {
	var out []Outcome
	for _, k := range outcomeKinds {
		if keep(k) {
			out = append(out, k.Outcome)
		}
	}
	return out
}

// Kind returns o's properties; ok is false for an unknown outcome.
func (o Outcome) Kind() (k OutcomeKind, ok bool) {
	for _, k := range outcomeKinds {
		if k.Outcome == o {
			return k, true
		}
	}
	return OutcomeKind{}, false
}

// Valid reports whether o is one of Outcomes.
func (o Outcome) Valid() bool {
	_, ok := o.Kind()
	return ok
}

// Done reports whether the outcome makes its row done (for its fingerprint).
func (o Outcome) Done() bool {
	k, _ := o.Kind()
	return k.Done
}

// NotDone reports whether the outcome leaves a desired row not done (see
// OutcomeKind.NotDone).
func (o Outcome) NotDone() bool {
	k, _ := o.Kind()
	return k.NotDone
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
	// Throttled is how many of Attempts were answered with throttling (they
	// do not count against --max-attempts). Not stored.
	Throttled   int
	Fingerprint string
	FinishedAt  time.Time
	// PossiblyApplied: the last write sent for the row got an answer that
	// proves nothing (timeout, 5xx or reset after the request was written),
	// so its values may be in the cloud. Only with a not-done outcome.
	PossiblyApplied bool
	// NotifyURL and ReqAuth are the desired values the outcome is about,
	// as sent (for invalid: as refused; empty and false for a Delete). The
	// auth key is never part of a Result.
	NotifyURL string
	ReqAuth   bool
	// Region is the RegionId sent (the row's, else the run's --region).
	Region string
	// Account is the account the requests went to ("": the default account).
	Account string
}

// Intent is one write a run is about to send: the domain, and the
// fingerprint of the values it carries ("" for a Delete). Intents are
// recorded before the requests leave (see db.MarkSending), so that the
// job knows which values may be in the cloud because of its own writes,
// whatever happens to their answers.
type Intent struct {
	Domain      string
	Fingerprint string
	// Account is the account the write goes to ("": the default account).
	Account string
}
