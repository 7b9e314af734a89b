// Package apply runs one reconciliation pass: it pages through pending rows,
// validates them, sends the valid ones through one shared Gate and a bounded
// worker pool, classifies every answer, retries what is retryable, and hands
// outcomes to a buffer that writes them in batches. It knows the database and
// the API only through the Store and API interfaces.
package apply

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/model"
)

// Sentinel errors returned by Run; callers branch on them with errors.Is.
var (
	// ErrCredentials: the API refused the credentials, signature or
	// permission; dispatching stopped at once.
	ErrCredentials = errors.New("credentials refused by the API")
	// ErrInterrupted: the run's context was cancelled (SIGTERM/SIGINT).
	ErrInterrupted = errors.New("interrupted")
	// ErrLockLost: the run lock's connection was lost; dispatching stopped.
	ErrLockLost = errors.New("run lock lost")
	// ErrStore: outcomes could not be written (or pending rows read): the
	// database refused, or stayed unreachable past the retry deadline;
	// dispatching stopped.
	ErrStore = errors.New("database error")
	// ErrPruneLimit: --prune found more candidates than --prune-max; nothing
	// was deleted.
	ErrPruneLimit = errors.New("prune refused: more candidates than --prune-max")
)

// Counters are request counts accumulated since the previous write.
type Counters struct {
	Requests  int64
	Throttled int64
	Retries   int64
}

// Store is what a run needs from the database.
type Store interface {
	// PendingPage returns up to limit pending rows with domain_name > after,
	// in domain_name order.
	PendingPage(ctx context.Context, after string, limit int) ([]model.Row, error)
	// DesiredPage is PendingPage over every desired row (verify).
	DesiredPage(ctx context.Context, after string, limit int) ([]model.Row, error)
	// PrunePage returns prune candidates of run runID: domains the job
	// configured that are no longer desired and have no outcome in the run
	// yet (Domain and Fingerprint set).
	PrunePage(ctx context.Context, runID int64, after string, limit int) ([]model.Row, error)
	// CountPrune returns the number of prune candidates of run runID.
	CountPrune(ctx context.Context, runID int64) (int64, error)
	// MarkSending records, durably, that the intents' writes may be about
	// to reach the cloud (see db.MarkSending). Run calls it for every page
	// before the first of its requests is sent.
	MarkSending(ctx context.Context, intents []model.Intent) error
	// WriteOutcomes writes rs and adds c to the run's counters, atomically
	// and idempotently (an outcome already written for the run is skipped).
	// It returns, per outcome, how many of rs's domains the run holds an
	// outcome for afterwards (see db.Written).
	WriteOutcomes(ctx context.Context, runID int64, rs []model.Result, c Counters) (map[model.Outcome]int64, error)
}

// API is what a run needs from the Live API. Implementations must be safe
// for concurrent use, and must return errors that live.Classify understands.
type API interface {
	Add(ctx context.Context, r live.Request) (live.Answer, error)
	Update(ctx context.Context, r live.Request) (live.Answer, error)
	Describe(ctx context.Context, domain, region string) (live.Config, live.Answer, error)
	Delete(ctx context.Context, domain, region string) (live.Answer, error)
}

// Mode is what a pass does with each row.
type Mode int

// Modes of a pass.
const (
	// ModeApply sends Add/Update for pending rows (reconcile run).
	ModeApply Mode = iota
	// ModeVerify describes every desired row and records in_sync, drifted or
	// missing without changing anything (reconcile verify).
	ModeVerify
)

// Options configure Run. The embedded config.Apply is the pass's
// configuration as `reconcile run` parsed and validated it (its zero value
// is not the defaults: start from config.DefaultRun().Apply); the other
// fields are the run's own.
type Options struct {
	config.Apply
	RunID int64
	Mode  Mode
	// Seed seeds the backoff jitter.
	Seed uint64
	// Total is the number of pending rows at start, for progress and ETA.
	Total int64
	// Stop, when closed, stops dispatching with ErrLockLost.
	Stop <-chan struct{}
	// Account is the account the pass works ("": the default account):
	// every result and intent carries it. The Store must return only its
	// rows, and the API must reach it.
	Account string
	// Share, when set, is the account's membership of a worker pool shared
	// with the passes of other accounts (Slots.Join, for every account
	// before any pass starts): each request also holds one of its slots,
	// within the account's fair share. Run leaves it when the pass ends.
	// Nil: the pass has Concurrency workers of its own.
	Share *Share
	// Logger receives progress and per-row warnings.
	Logger *slog.Logger
	// Secrets, when set, is told each row's auth key while the row is being
	// worked on (the log redactor), so that it can scrub it from any log line.
	Secrets interface {
		Hold(key string)
		Release(key string)
	}
	// Progress, when set, is called every ProgressInterval instead of the
	// progress log line (a terminal progress bar).
	Progress func(Progress)
	// Now and Sleep are the clock; nil means the real one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Progress is a snapshot of a running pass.
type Progress struct {
	Done, Total int64
	Requests    int64
	Rate        float64 // requests per second over the last interval
	ETA         time.Duration
	CurrentRate float64 // the gate's rate (lower than --rate after throttling)
}

// Summary is what a pass did.
type Summary struct {
	// Counts are the outcomes stored in the database, per outcome.
	Counts    map[model.Outcome]int64
	Requests  int64
	Throttled int64
	Retries   int64
	// BreakerTrips counts circuit-breaker pauses.
	BreakerTrips int
	// Unfinished counts rows that were read but got no outcome (stopped).
	Unfinished int64
	Elapsed    time.Duration
}

// Done returns the number of rows that ended done (model.OutcomeKind.Done).
func (s Summary) Done() int64 {
	var n int64
	for o, c := range s.Counts {
		if o.Done() {
			n += c
		}
	}
	return n
}

// NotDone returns the number of rows that ended not done
// (model.OutcomeKind.NotDone).
func (s Summary) NotDone() int64 {
	var n int64
	for o, c := range s.Counts {
		if o.NotDone() {
			n += c
		}
	}
	return n
}

func realSleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
