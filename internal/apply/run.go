package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/validate"
)

// runner is the state of one pass.
type runner struct {
	o        Options
	store    Store
	api      API
	gate     *Gate
	backoff  *Backoff
	log      *slog.Logger
	refusals refusals
	share    *Share // Options.Share

	dispatch    context.Context // cancelled: stop sending new requests
	stop        context.CancelCauseFunc
	requests    context.Context // cancelled: abandon in-flight requests (grace over)
	results     chan model.Result
	flushNow    chan chan struct{} // ask the collector to write what it holds
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
		gate:     NewGate(o.Rate, o.AdaptiveRate, o.BreakerThreshold),
		backoff:  NewBackoff(o.BackoffBase, o.BackoffMax, o.Seed),
		results:  make(chan model.Result, o.FlushSize), // room for one batch while the previous one is written
		flushNow: make(chan chan struct{}),
	}
	if o.Share != nil {
		r.share = o.Share
		defer r.share.Leave()
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

// pageFunc reads one keyset page.
type pageFunc func(ctx context.Context, after string, limit int) ([]model.Row, error)

// produce runs the pass: the rows of the mode, then (ModeApply with Prune)
// the prune candidates. It returns when every dispatched worker finished.
func (r *runner) produce() error {
	if r.o.Mode == ModeVerify {
		p := pool.New().WithMaxGoroutines(r.o.Concurrency)
		defer p.Wait()
		return r.produceFrom(p, r.store.DesiredPage, "desired rows", r.verify, false, nil)
	}
	p := pool.New().WithMaxGoroutines(r.o.Concurrency)
	err := r.produceFrom(p, r.store.PendingPage, "pending rows", r.apply, true, writeIntent)
	p.Wait()
	if err != nil || !r.o.Prune || r.dispatch.Err() != nil {
		return err
	}
	// Deletes start once every pending row has its outcome written, so
	// that a domain handled by the pass (then deleted from the desired
	// table meanwhile) is not also pruned in this run: a run records one
	// outcome per domain, and the prune query skips the domains it has.
	if !r.flushed() {
		return nil
	}
	n, err := r.store.CountPrune(r.dispatch, r.o.RunID)
	if err != nil {
		err = fmt.Errorf("%w: counting prune candidates: %w", ErrStore, err)
		r.stop(err)
		return err
	}
	if n > r.o.PruneMax {
		err := fmt.Errorf("%w: %d domains are no longer desired, --prune-max is %d; nothing deleted", ErrPruneLimit, n, r.o.PruneMax)
		r.log.Error("prune refused", "candidates", n, "prune_max", r.o.PruneMax)
		return err
	}
	r.log.Info("pruning configs of domains no longer desired", "candidates", n)
	pp := pool.New().WithMaxGoroutines(r.o.Concurrency)
	defer pp.Wait()
	prunePage := func(ctx context.Context, after string, limit int) ([]model.Row, error) {
		return r.store.PrunePage(ctx, r.o.RunID, after, limit)
	}
	return r.produceFrom(pp, prunePage, "prune candidates", r.prune, false, deleteIntent)
}

// flushed asks the collector to write every outcome handed to it so far and
// waits for it; false when the pass stopped or the write failed.
func (r *runner) flushed() bool {
	ack := make(chan struct{})
	select {
	case r.flushNow <- ack:
	case <-r.dispatch.Done():
		return false
	}
	<-ack
	return r.dispatch.Err() == nil
}

// writeIntent is what an Add or Update of row may put in the cloud.
func writeIntent(row model.Row) model.Intent {
	return model.Intent{Domain: row.Domain, Fingerprint: row.Fingerprint}
}

// deleteIntent marks a Delete: it puts no values in the cloud.
func deleteIntent(row model.Row) model.Intent { return model.Intent{Domain: row.Domain} }

// produceFrom pages through page and hands each row to do on the pool;
// with validateRows, invalid rows get their outcome without a request.
// With intent set, the page's rows that will be sent are marked (one
// statement, Store.MarkSending) before the first of them is dispatched: the
// job then knows which values may be in the cloud because of its writes,
// whatever happens to their answers or to the process.
func (r *runner) produceFrom(p *pool.Pool, page pageFunc, what string, do func(model.Row), validateRows bool,
	intent func(model.Row) model.Intent) error {
	// The next page is read while this one is dispatched (its keys all sort
	// after this page's, so the two never overlap): a pass does not wait
	// for the database between pages, which matters when many accounts
	// share the pool's connections.
	type pageResult struct {
		rows []model.Row
		err  error
	}
	fetch := func(after string) <-chan pageResult {
		ch := make(chan pageResult, 1) // the reader may be gone: never block
		go func() {
			rows, err := page(r.dispatch, after, r.o.PageSize)
			ch <- pageResult{rows, err}
		}()
		return ch
	}
	next := fetch("")
	for next != nil {
		if r.dispatch.Err() != nil {
			return nil
		}
		res := <-next
		rows, err := res.rows, res.err
		next = nil
		if err == nil && len(rows) == r.o.PageSize {
			next = fetch(rows[len(rows)-1].Domain)
		}
		if err != nil {
			if r.dispatch.Err() != nil {
				return nil
			}
			err = fmt.Errorf("%w: reading %s: %w", ErrStore, what, err)
			r.stop(err)
			return err
		}
		send := rows[:0:0]
		for _, row := range rows {
			r.nDispatched.Add(1)
			if validateRows {
				if err := validate.Row(row); err != nil {
					r.nFinished.Add(1)
					r.results <- invalidResult(r.newResult(row), err, r.o.Now())
					continue
				}
			}
			send = append(send, row)
		}
		if intent != nil && len(send) > 0 {
			intents := make([]model.Intent, len(send))
			for i, row := range send {
				intents[i] = intent(row)
				intents[i].Account = r.o.Account
			}
			if err := r.store.MarkSending(r.dispatch, intents); err != nil {
				r.nDispatched.Add(-int64(len(send)))
				if r.dispatch.Err() != nil {
					return nil
				}
				err = fmt.Errorf("%w: marking %d %s as being sent: %w", ErrStore, len(send), what, err)
				r.stop(err)
				return err
			}
		}
		for i, row := range send {
			if r.dispatch.Err() != nil || (r.share != nil && r.share.Acquire(r.dispatch) != nil) {
				r.nDispatched.Add(-int64(len(send) - i))
				return nil
			}
			p.Go(func() {
				if r.share != nil {
					defer r.share.Release()
				}
				if key := row.AuthKey.Reveal(); key != "" && r.o.Secrets != nil {
					r.o.Secrets.Hold(key)
					defer r.o.Secrets.Release(key)
				}
				do(row)
			})
		}
	}
	return nil
}

func invalidResult(res model.Result, err error, now time.Time) model.Result {
	res.Outcome, res.ErrorMessage, res.ErrorCode, res.FinishedAt = model.OutcomeInvalid, err.Error(), "Invalid", now
	var fe *validate.FieldError
	if errors.As(err, &fe) {
		res.ErrorCode = fe.Code()
	}
	return res
}

// errDeferred is what the send hook returns when the gate's window is full:
// the request is not sent, and call sends it again after the wait.
var errDeferred = errors.New("send deferred by the rate window")

// errNoAnswer stands in for the error of a failed row that has none (a bug:
// every failed row must carry the answer that failed it).
var errNoAnswer = errors.New("the row failed without an error answer (a bug in reconcile)")

const errNoAnswerCode = "InternalError.Reconcile"

// errStopped is returned by call when the pass stopped before the row's
// outcome was known: the row gets no outcome and stays pending.
var errStopped = errors.New("stopped")

// call performs one step of a row (one operation, f) through the gate,
// retrying throttled and transient answers with backoff. A step always gets
// at least one attempt of its own, so a fallback (Add after Update's
// ConfigNotFound, Describe after an unproven ConfigAlreadyExists) is sent
// even when the steps before it used every attempt; otherwise it retries
// while the row's attempts that count stay under MaxAttempts. It returns
// the last answer, its class and error (non-nil whenever the class is not
// ClassOK); errStopped when the pass stopped first (a credentials answer
// stops the pass too).
//
// Throttled answers do not count against MaxAttempts: a throttled attempt
// is the job's fault (its rate is above the budget while it slows down),
// not the row's. They are bounded separately: after MaxThrottledAttempts
// throttled answers in one step the row gives up with the throttling
// error. res.Attempts counts every request sent, throttled ones included
// (res.Throttled of them were throttled). A call that could not get
// credentials sent nothing: it is not an attempt (see
// credentialsUnavailable).
func (r *runner) call(res *model.Result, f func(ctx context.Context) (live.Answer, error)) (live.Answer, live.Class, error) {
	var ans live.Answer
	var err error
	class := live.ClassTransient
	limit := max(r.o.MaxAttempts, res.Attempts-res.Throttled+1) // attempts that count, this step's included
	throttled := 0                                              // throttled answers in this step
	for res.Attempts-res.Throttled < limit && throttled < MaxThrottledAttempts {
		if res.Attempts > 0 {
			r.nRetries.Add(1)
		}
		ticket := r.gate.Reserve(r.o.Now())
		if r.wait(ticket.At) != nil {
			return ans, live.ClassCanceled, errStopped
		}
		// The window guard counts the request from inside the client, right
		// before it is handed to the HTTP client (live.WithSendHook), until
		// it is written to a connection (or never was). When the window is
		// full, or the ticket was booked before a pause or a cut, the
		// request is not sent: wait and build it again.
		var deferBy time.Duration
		var send Send
		ctx := live.WithSendHook(r.requests, live.SendHook{
			Before: func() error {
				d, s := r.gate.Commit(r.o.Now(), &ticket)
				if d > 0 {
					deferBy = d
					return errDeferred
				}
				send = s
				return nil
			},
			Wrote: func() { r.gate.Sent(send, r.o.Now()) },
			NotWritten: func(mayHaveArrived bool) {
				if mayHaveArrived {
					r.gate.Sent(send, r.o.Now())
				} else {
					r.gate.Abort(send)
				}
			},
		})
		for {
			ans, err = f(ctx)
			if deferBy == 0 {
				break
			}
			if r.wait(r.o.Now().Add(deferBy)) != nil {
				return ans, live.ClassCanceled, errStopped
			}
			deferBy = 0
		}
		if live.Classify(err) == live.ClassCredentialsUnavailable {
			// Getting credentials failed before signing: nothing was sent,
			// not an attempt, not an answer.
			r.gate.Abort(send)
			if r.credentialsUnavailable(res, err) != nil {
				return ans, live.ClassCanceled, errStopped
			}
			continue
		}
		now := r.o.Now()
		// A client that ran Before but neither Wrote nor NotWritten: count
		// the request as sent now (the first report of a send wins).
		r.gate.Sent(send, now)
		res.Attempts++
		r.nRequests.Add(1)
		class = live.Classify(err)
		if pause := r.gate.Answered(now, class == live.ClassTransient); pause > 0 {
			r.log.Warn("circuit breaker: too many failed answers, pausing dispatch", "pause", pause)
		}
		res.RequestID, res.HTTPStatus = ans.RequestID, ans.HTTPStatus
		r.permissionAnswer(class, res, err)
		var delay time.Duration
		switch class {
		case live.ClassCanceled:
			return ans, class, errStopped // abandoned after the grace period: outcome unknown
		case live.ClassCredentials:
			r.stop(fmt.Errorf("%w: %s: %w", ErrCredentials, res.Domain, err))
			return ans, class, errStopped
		case live.ClassThrottled:
			r.nThrottled.Add(1)
			throttled++
			res.Throttled++
			var ae *live.APIError
			var hint time.Duration
			if errors.As(err, &ae) {
				hint = ae.RetryAfter
			}
			r.gate.Throttled(now, send, hint)
			delay = max(hint, r.backoff.Delay(throttled))
		case live.ClassTransient:
			if r.requests.Err() != nil {
				return ans, live.ClassCanceled, errStopped
			}
			delay = r.backoff.Delay(res.Attempts - res.Throttled)
		default:
			return ans, class, err
		}
		if res.Attempts-res.Throttled < limit && throttled < MaxThrottledAttempts && r.wait(now.Add(delay)) != nil {
			return ans, live.ClassCanceled, errStopped
		}
	}
	return ans, class, err
}

func (r *runner) request(row model.Row) live.Request {
	req := live.Request{Domain: row.Domain, NotifyURL: row.NotifyURL, ReqAuth: row.ReqAuth,
		AuthKey: row.AuthKey, Region: row.Region}
	if req.Region == "" {
		req.Region = r.o.Region
	}
	return req
}

// apply brings one pending row to its desired state (ModeApply) and sends
// its result, unless the pass stopped first.
//
// Done is recorded only on an answer that proves the cloud holds the row's
// values: an OK answer to Add or Update, a Describe that matches, or a
// ConfigAlreadyExists when the job cannot have written other values for the
// domain (row.OtherUnconfirmed false); otherwise a ConfigAlreadyExists is
// followed by a Describe (see describeAndDecide).
func (r *runner) apply(row model.Row) {
	req := r.request(row)
	res := r.newResult(row)
	// A write whose answer proves nothing (5xx, reset, timeout) may have
	// been applied: the row's failed outcome says so.
	write := func(op func(context.Context, live.Request) (live.Answer, error)) func(context.Context) (live.Answer, error) {
		return func(ctx context.Context) (live.Answer, error) {
			ans, err := op(ctx, req)
			switch live.Classify(err) {
			case live.ClassTransient:
				res.PossiblyApplied = true
			case live.ClassOK, live.ClassDuplicate, live.ClassNotFound:
				res.PossiblyApplied = false
			}
			return ans, err
		}
	}
	add, update := write(r.api.Add), write(r.api.Update)

	if row.Applied && r.o.NoFixDrift && r.o.VerifyExisting && row.LastOutcome == model.OutcomeDrifted {
		// Drift is to be reported, not fixed: look again instead of updating.
		r.describeAndDecide(row, &res, add, update)
		return
	}
	var err error
	var class live.Class
	if row.Applied {
		_, class, err = r.call(&res, update)
		switch class {
		case live.ClassOK:
			res.Outcome = model.OutcomeUpdated
			r.finish(res, nil)
			return
		case live.ClassNotFound:
			// Update's target is gone (deleted outside the job): Add it, with
			// an attempt of its own.
			r.log.Info("update target not found, adding instead", "domain", row.Domain)
			_, class, err = r.call(&res, add)
		}
	} else {
		_, class, err = r.call(&res, add)
	}
	switch {
	case errors.Is(err, errStopped):
		return
	case class == live.ClassOK:
		res.Outcome = model.OutcomeApplied
		r.finish(res, nil)
	case class == live.ClassDuplicate && (r.o.VerifyExisting || row.OtherUnconfirmed):
		// With OtherUnconfirmed, the config there may be other values the
		// job itself wrote earlier (an answer lost, a process killed):
		// ConfigAlreadyExists proves nothing about this row's values.
		r.describeAndDecide(row, &res, add, update)
	case class == live.ClassDuplicate:
		res.Outcome = model.OutcomeAlreadyExists
		r.finish(res, err)
	default:
		res.Outcome = model.OutcomeFailed
		r.finish(res, err)
	}
}

// describeAndDecide describes an existing config and compares it with the
// row: equal → already_exists (in_sync when it was drifted before); differs
// → Update (unless NoFixDrift) or drifted; absent → Add. Each step gets at least one
// attempt of its own.
func (r *runner) describeAndDecide(row model.Row, res *model.Result, add, update func(context.Context) (live.Answer, error)) {
	cfg, state, err := r.describe(row, res)
	if errors.Is(err, errStopped) {
		return
	}
	if err != nil {
		res.Outcome = model.OutcomeFailed
		r.finish(*res, err)
		return
	}
	var class live.Class
	switch {
	case state == model.OutcomeInSync && row.LastOutcome == model.OutcomeDrifted:
		res.Outcome = model.OutcomeInSync
		r.finish(*res, nil)
		return
	case state == model.OutcomeInSync:
		res.Outcome, res.ErrorCode = model.OutcomeAlreadyExists, "ConfigAlreadyExists"
		res.ErrorMessage = "a config already exists and matches the desired values"
		res.PossiblyApplied = false
		r.finish(*res, nil)
		return
	case state == model.OutcomeMissing:
		_, class, err = r.call(res, add)
		if class == live.ClassOK {
			res.Outcome = model.OutcomeApplied
			r.finish(*res, nil)
			return
		}
	case r.o.NoFixDrift:
		res.Outcome, res.ErrorCode = model.OutcomeDrifted, "Drifted"
		res.ErrorMessage = driftMessage(row, cfg)
		res.PossiblyApplied = false
		r.finish(*res, nil)
		return
	default:
		r.log.Info("config differs, updating", "domain", row.Domain, "drift", driftMessage(row, cfg))
		_, class, err = r.call(res, update)
		if class == live.ClassOK {
			res.Outcome = model.OutcomeUpdated
			r.finish(*res, nil)
			return
		}
	}
	if errors.Is(err, errStopped) {
		return
	}
	res.Outcome = model.OutcomeFailed
	r.finish(*res, err)
}

// describe calls Describe through the gate and classifies the config
// against row: OutcomeInSync, OutcomeDrifted or OutcomeMissing.
func (r *runner) describe(row model.Row, res *model.Result) (live.Config, model.Outcome, error) {
	var cfg live.Config
	region := row.Region
	if region == "" {
		region = r.o.Region
	}
	_, class, err := r.call(res, func(ctx context.Context) (live.Answer, error) {
		c, ans, err := r.api.Describe(ctx, row.Domain, region)
		cfg = c
		return ans, err
	})
	if err != nil || class != live.ClassOK {
		return cfg, "", err
	}
	switch {
	case !cfg.Exists:
		return cfg, model.OutcomeMissing, nil
	case driftMessage(row, cfg) != "":
		return cfg, model.OutcomeDrifted, nil
	}
	return cfg, model.OutcomeInSync, nil
}

// driftMessage says how cfg differs from row ("" when it does not). It
// names fields, never the auth key's value.
func driftMessage(row model.Row, cfg live.Config) string {
	if !cfg.Exists {
		return "no config exists"
	}
	var diffs []string
	if cfg.NotifyURL != row.NotifyURL {
		diffs = append(diffs, fmt.Sprintf("notify_url is %q, desired %q", cfg.NotifyURL, row.NotifyURL))
	}
	if cfg.ReqAuth != row.ReqAuth {
		diffs = append(diffs, fmt.Sprintf("notify_req_auth is %v, desired %v", cfg.ReqAuth, row.ReqAuth))
	}
	if row.ReqAuth && cfg.AuthKey.Reveal() != row.AuthKey.Reveal() {
		diffs = append(diffs, "notify_auth_key differs")
	}
	return strings.Join(diffs, "; ")
}

// verify describes one desired row and records in_sync, drifted or missing
// (ModeVerify). Nothing is changed in the cloud.
func (r *runner) verify(row model.Row) {
	res := r.newResult(row)
	cfg, state, err := r.describe(row, &res)
	switch {
	case errors.Is(err, errStopped):
		return
	case err != nil:
		res.Outcome = model.OutcomeFailed
		r.finish(res, err)
		return
	}
	res.Outcome = state
	if state == model.OutcomeDrifted {
		res.ErrorCode, res.ErrorMessage = "Drifted", driftMessage(row, cfg)
	}
	r.finish(res, nil)
}

// prune deletes the config of a domain that is no longer desired.
func (r *runner) prune(row model.Row) {
	res := r.newResult(row)
	_, class, err := r.call(&res, func(ctx context.Context) (live.Answer, error) {
		return r.api.Delete(ctx, row.Domain, r.o.Region)
	})
	switch {
	case errors.Is(err, errStopped):
		return
	case class == live.ClassOK:
		res.Outcome = model.OutcomeDeleted
		r.finish(res, nil)
	case class == live.ClassNotFound:
		// Nothing to delete: the goal is reached.
		res.Outcome = model.OutcomeDeleted
		res.ErrorCode, res.ErrorMessage = live.ErrorCode(err), "no config was there to delete"
		r.finish(res, nil)
	default:
		res.Outcome = model.OutcomeFailed
		r.finish(res, err)
	}
}

// finish records err's details on res and hands it to the collector.
// A failed result always carries an error code and message.
func (r *runner) finish(res model.Result, err error) {
	res.FinishedAt = r.o.Now()
	if res.Outcome == model.OutcomeFailed && err == nil && res.ErrorCode == "" {
		// Every path to failed passes the answer's error; this is a guard.
		res.ErrorCode, res.ErrorMessage = errNoAnswerCode, errNoAnswer.Error()
	}
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

// wait blocks until at, or until dispatching stops (then it returns an error).
func (r *runner) wait(at time.Time) error {
	if d := at.Sub(r.o.Now()); d > 0 {
		return r.o.Sleep(r.dispatch, d)
	}
	return r.dispatch.Err()
}
