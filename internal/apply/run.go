package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/validate"
)

// runner is the state of one pass.
type runner struct {
	o       Options
	store   Store
	api     API
	gate    *Gate
	backoff *Backoff
	log     *slog.Logger

	dispatch    context.Context // cancelled: stop sending new requests
	stop        context.CancelCauseFunc
	requests    context.Context // cancelled: abandon in-flight requests (grace over)
	results     chan model.Result
	nRequests   atomic.Int64
	nThrottled  atomic.Int64
	nRetries    atomic.Int64
	nDispatched atomic.Int64
	nFinished   atomic.Int64 // rows with an outcome handed to the collector
}

// Run performs one pass over the pending rows and returns what it did.
//
// It blocks until every dispatched row has an outcome written or the pass
// was stopped. Cancelling ctx (a signal) stops dispatching at once; requests
// in flight get o.Grace to finish, their outcomes are written, and Run
// returns ErrInterrupted. A credentials error, a lost lock (o.Stop) or an
// unreachable database also stop dispatching, and Run returns an error
// wrapping ErrCredentials, ErrLockLost or ErrStore. Rows stopped before
// their outcome was known get none and stay pending for the next run. No
// database transaction is open while a request is in flight.
func Run(ctx context.Context, o Options, store Store, api API) (Summary, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = realSleep
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	start := o.Now()
	r := &runner{
		o: o, store: store, api: api, log: o.Logger,
		gate:    NewGate(o.Rate, o.Adaptive, o.BreakerThreshold),
		backoff: NewBackoff(o.BackoffBase, o.BackoffMax, o.Seed),
		results: make(chan model.Result, 4*o.FlushSize),
	}
	r.dispatch, r.stop = context.WithCancelCause(context.WithoutCancel(ctx))
	requests, abandon := context.WithCancel(context.WithoutCancel(ctx))
	r.requests = requests
	defer abandon()

	// Signals and the lock watcher stop dispatching; the grace timer starts
	// when a signal arrives.
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		select {
		case <-ctx.Done():
			r.stop(ErrInterrupted)
			t := time.NewTimer(o.Grace)
			defer t.Stop()
			select {
			case <-t.C:
				abandon()
			case <-watchDone:
			}
		case <-o.Stop:
			r.stop(ErrLockLost)
		case <-watchDone:
		}
	}()

	col := newCollector(r)
	colDone := make(chan struct{})
	go func() { defer close(colDone); col.loop() }()

	progDone := make(chan struct{})
	progStop := make(chan struct{})
	go func() { defer close(progDone); r.progress(progStop) }()

	produceErr := r.produce()
	close(r.results)
	<-colDone
	close(progStop)
	<-progDone

	sum := Summary{
		Counts:       col.counts,
		Requests:     r.nRequests.Load(),
		Throttled:    r.nThrottled.Load(),
		Retries:      r.nRetries.Load(),
		BreakerTrips: r.gate.Trips(),
		Elapsed:      o.Now().Sub(start),
	}
	sum.Unfinished = r.nDispatched.Load() - col.written
	if produceErr != nil && context.Cause(r.dispatch) == nil {
		r.stop(produceErr)
	}
	if col.err != nil {
		return sum, col.err
	}
	if cause := context.Cause(r.dispatch); cause != nil {
		return sum, cause
	}
	return sum, nil
}

// produce pages through pending rows and dispatches them; it returns when
// every dispatched worker has finished.
func (r *runner) produce() error {
	p := pool.New().WithMaxGoroutines(r.o.Concurrency)
	defer p.Wait()
	after := ""
	for {
		if r.dispatch.Err() != nil {
			return nil
		}
		rows, err := r.store.PendingPage(r.dispatch, after, r.o.PageSize)
		if err != nil {
			if r.dispatch.Err() != nil {
				return nil
			}
			err = fmt.Errorf("%w: reading pending rows: %w", ErrStore, err)
			r.stop(err)
			return err
		}
		for _, row := range rows {
			if r.dispatch.Err() != nil {
				return nil
			}
			r.nDispatched.Add(1)
			if err := validate.Row(row); err != nil {
				r.nFinished.Add(1)
				r.results <- invalidResult(row, err, r.o.Now())
				continue
			}
			p.Go(func() { r.apply(row) })
		}
		if len(rows) < r.o.PageSize {
			return nil
		}
		after = rows[len(rows)-1].Domain
	}
}

func invalidResult(row model.Row, err error, now time.Time) model.Result {
	res := model.Result{Domain: row.Domain, Outcome: model.OutcomeInvalid, Fingerprint: row.Fingerprint,
		ErrorMessage: err.Error(), ErrorCode: "Invalid", FinishedAt: now}
	var fe *validate.FieldError
	if errors.As(err, &fe) {
		res.ErrorCode = fe.Code()
	}
	return res
}

// apply sends one row until it has an outcome, runs out of attempts, or the
// pass stops. It sends its result (if any) to r.results.
func (r *runner) apply(row model.Row) {
	req := live.Request{Domain: row.Domain, NotifyURL: row.NotifyURL, ReqAuth: row.ReqAuth,
		AuthKey: row.AuthKey, Region: row.Region}
	if req.Region == "" {
		req.Region = r.o.Region
	}
	update := row.Applied
	res := model.Result{Domain: row.Domain, Fingerprint: row.Fingerprint}
	var lastErr error
	for res.Attempts < r.o.MaxAttempts {
		if res.Attempts > 0 {
			r.nRetries.Add(1)
		}
		if err := r.acquire(); err != nil {
			return // stopped before sending: the row stays pending
		}
		res.Attempts++
		r.nRequests.Add(1)
		var ans live.Answer
		var err error
		if update {
			ans, err = r.api.Update(r.requests, req)
		} else {
			ans, err = r.api.Add(r.requests, req)
		}
		now := r.o.Now()
		class := live.Classify(err)
		if pause := r.gate.Answered(now, class == live.ClassTransient); pause > 0 {
			r.log.Warn("circuit breaker: too many failed answers, pausing dispatch", "pause", pause)
		}
		res.RequestID, res.HTTPStatus = ans.RequestID, ans.HTTPStatus
		switch class {
		case live.ClassOK:
			res.Outcome = model.OutcomeApplied
			if update {
				res.Outcome = model.OutcomeUpdated
			}
			r.finish(res, nil)
			return
		case live.ClassDuplicate:
			if !update {
				res.Outcome = model.OutcomeAlreadyExists
				r.finish(res, err)
				return
			}
		case live.ClassNotFound:
			if update {
				// Update's target is gone (deleted outside the job): Add it.
				update = false
				r.log.Info("update target not found, adding instead", "domain", row.Domain)
				continue
			}
		case live.ClassCanceled:
			return // abandoned after the grace period: outcome unknown, stays pending
		case live.ClassCredentials:
			r.stop(fmt.Errorf("%w: %s: %w", ErrCredentials, row.Domain, err))
			return
		case live.ClassThrottled:
			r.nThrottled.Add(1)
			var ae *live.APIError
			var hint time.Duration
			if errors.As(err, &ae) {
				hint = ae.RetryAfter
			}
			r.gate.Throttled(now, hint)
			lastErr = err
			if res.Attempts < r.o.MaxAttempts && r.wait(now.Add(max(hint, r.backoff.Delay(res.Attempts)))) != nil {
				return
			}
			continue
		case live.ClassTransient:
			if r.requests.Err() != nil {
				return // abandoned after the grace period: outcome unknown, stays pending
			}
			lastErr = err
			if res.Attempts < r.o.MaxAttempts && r.wait(now.Add(r.backoff.Delay(res.Attempts))) != nil {
				return
			}
			continue
		}
		// A row error (or an answer that makes no sense for the operation).
		res.Outcome = model.OutcomeFailed
		r.finish(res, err)
		return
	}
	res.Outcome = model.OutcomeFailed
	r.finish(res, lastErr)
}

// finish records err's details on res and hands it to the collector.
func (r *runner) finish(res model.Result, err error) {
	res.FinishedAt = r.o.Now()
	if err != nil {
		res.ErrorCode = live.ErrorCode(err)
		res.ErrorMessage = err.Error()
		var ae *live.APIError
		if errors.As(err, &ae) {
			res.HTTPStatus, res.RequestID = ae.HTTPStatus, ae.RequestID
		}
		if res.Outcome == model.OutcomeFailed {
			r.log.Warn("row failed", "domain", res.Domain, "error_code", res.ErrorCode,
				"http_status", res.HTTPStatus, "request_id", res.RequestID, "attempts", res.Attempts, "error", res.ErrorMessage)
		}
	}
	r.nFinished.Add(1)
	r.results <- res
}

// acquire blocks until the gate lets one request go, or dispatching stops.
func (r *runner) acquire() error {
	if err := r.wait(r.gate.Reserve(r.o.Now())); err != nil {
		return err
	}
	for {
		now := r.o.Now()
		d := r.gate.Commit(now)
		if d == 0 {
			return nil
		}
		if err := r.wait(now.Add(d)); err != nil {
			return err
		}
	}
}

// wait blocks until at, or until dispatching stops (then it returns an error).
func (r *runner) wait(at time.Time) error {
	if d := at.Sub(r.o.Now()); d > 0 {
		return r.o.Sleep(r.dispatch, d)
	}
	return r.dispatch.Err()
}
