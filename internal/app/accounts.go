package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reconcile/reconcile/internal/accounts"
	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/model"
)

// ErrAccountsFailed: some accounts of a run with several stopped (their
// credentials were refused or unavailable, or no reconcile_accounts row
// names them) while the others finished; the stopped accounts' rows stay
// pending, with the reason in reconcile_run_accounts (exit
// ExitAccountsFailed).
var ErrAccountsFailed = errors.New("some accounts failed")

// errUnknownAccount: desired rows name an account that no
// reconcile_accounts row describes.
var errUnknownAccount = errors.New("unknown account: no reconcile_accounts row names it")

// errAccountDisabled: the account's reconcile_accounts row is disabled.
var errAccountDisabled = errors.New("disabled in reconcile_accounts")

// minAccountBatch is the smallest page and flush size an account of a
// multi-account pass gets when --page-size and --flush-size are divided
// among the accounts.
const minAccountBatch = 100

// account is one account of a pass: how it is reached, and what its pass did.
type account struct {
	name  string // "" is the default account
	label string // model.AccountLabel(name)
	row   db.Account
	// rate, endpoint and region: the account's own, else the run's flags.
	rate             float64
	endpoint, region string

	client *live.Client
	// err says why the account is not worked (set before any request), or
	// why its pass stopped.
	err                       error
	pending, invalidUnchanged int64
	sum                       apply.Summary
	status                    string
	started                   bool // its pass ran (reconcile_run_accounts row begun)
}

// selectAccounts decides the accounts of the pass: those with desired rows
// (and, with --prune, with configs to prune), narrowed by --accounts and
// --shard. Disabled accounts are logged and left out. An account named by
// --accounts that neither has rows nor a reconcile_accounts row is a
// configuration error.
func (p *passRun) selectAccounts(ctx context.Context) error {
	var all []string
	var known map[string]db.Account
	withPrune := p.mode == apply.ModeApply && p.c.Prune
	err := p.st.retry(ctx, "read the accounts", func(ctx context.Context) (err error) {
		if known, err = db.LoadAccounts(ctx, p.pool); err != nil {
			return err
		}
		all, err = db.WorkAccounts(ctx, p.pool, withPrune)
		return err
	})
	if err != nil {
		return err
	}
	only := p.c.AccountList()
	shard := p.c.ShardSpec()
	if len(all) == 0 && only == nil && shard.Count == 0 {
		// No desired row at all: the pass is the default account's, empty,
		// and records its run (and pushes its metrics) as before.
		all = []string{""}
	}
	for _, a := range only {
		if _, ok := known[a]; a != "" && !ok && !slices.Contains(all, a) {
			return config.Usagef("--accounts: no account %q: no desired row and no reconcile_accounts row names it", a)
		}
	}
	for _, name := range accounts.Select(all, only, shard) {
		a := &account{name: name, label: model.AccountLabel(name), rate: p.c.Rate, endpoint: p.c.Endpoint, region: p.c.Region}
		if name != "" {
			row, ok := known[name]
			switch {
			case !ok:
				a.err = fmt.Errorf("%w: account %s: %w", config.ErrUsage, a.label, errUnknownAccount)
			case row.Disabled:
				p.log.Info("account disabled in reconcile_accounts; its rows stay pending", "account", a.label)
				p.disabled = append(p.disabled, a)
				continue
			}
			a.row = row
			if row.Rate > 0 {
				a.rate = row.Rate
			}
			if row.Endpoint != "" {
				a.endpoint = row.Endpoint
			}
			if row.Region != "" {
				a.region = row.Region
			}
			if a.err == nil && a.rate > config.APIRateLimit && !p.c.AllowRateAboveLimit {
				a.err = fmt.Errorf("%w: reconcile_accounts.rate %v is above the API's limit of %v calls/s per account (--allow-rate-above-limit allows it)",
					config.ErrUsage, a.rate, config.APIRateLimit)
			}
		}
		p.accts = append(p.accts, a)
	}
	attrs := []any{"accounts", accounts.Labels(p.names())}
	if only != nil {
		attrs = append(attrs, "only", accounts.Labels(only))
	}
	if shard.Count > 0 {
		attrs = append(attrs, "shard", shard.String(), "of", len(all))
	}
	p.log.Info("accounts selected", attrs...)
	return nil
}

// names returns the accounts of the pass.
func (p *passRun) names() []string {
	out := make([]string, len(p.accts))
	for i, a := range p.accts {
		out[i] = a.name
	}
	return out
}

// single reports whether the pass works one account: that account's error
// is then the run's error, as it was before accounts existed.
func (p *passRun) single() bool { return len(p.accts) == 1 }

// openClients builds each account's API client and checks its credentials
// (assuming its RAM role, reading its profile). An account that cannot be
// reached is marked failed and left out; in a single-account pass its
// error is returned.
func (p *passRun) openClients(ctx context.Context) error {
	source, sourceErr := p.source, p.sourceErr
	var wg sync.WaitGroup
	for _, a := range p.accts {
		if a.err != nil {
			continue
		}
		wg.Go(func() {
			creds, err := p.accountCredentials(a, source, sourceErr)
			if err == nil {
				a.client, err = newClient(ctx, p.c, p.env, clientTarget{endpoint: a.endpoint, region: a.region, creds: creds})
			}
			if err != nil {
				a.err = fmt.Errorf("account %s: %w", a.label, err)
			}
		})
	}
	wg.Wait()
	for _, a := range p.accts {
		if a.err == nil {
			continue
		}
		if p.single() {
			return a.err
		}
		p.log.Error("account cannot be worked; its rows stay pending", "account", a.label, "error", a.err)
	}
	return nil
}

// accountCredentials returns how a's requests are signed: the job's own
// credentials for the default account and credentials "default", else the
// role or profile its reconcile_accounts row names.
func (p *passRun) accountCredentials(a *account, source live.Credentials, sourceErr error) (live.Credentials, error) {
	if a.name == "" || a.row.Credentials == db.CredentialsDefault {
		return source, sourceErr
	}
	if a.row.Credentials == db.CredentialsRAMRoleARN && sourceErr != nil {
		return nil, fmt.Errorf("assuming %s needs the job's own credentials: %w", a.row.RoleARN, sourceErr)
	}
	return live.AccountCredentials(live.AccountCredentialsSpec{
		Account: a.name, Method: a.row.Credentials, RoleARN: a.row.RoleARN, ExternalID: a.row.ExternalID,
		SessionName: a.row.SessionName, Profile: a.row.Profile, STSEndpoint: p.c.STSEndpoint,
	}, source)
}

// closeClients closes the accounts' clients.
func (p *passRun) closeClients() {
	for _, a := range p.accts {
		if a.client != nil {
			a.client.Close()
		}
	}
}

// working returns the accounts the pass sends requests for: held by this
// process and reachable.
func (p *passRun) working() []*account {
	var out []*account
	for _, a := range p.accts {
		if a.err == nil && a.status != db.RunAccountSkipped {
			out = append(out, a)
		}
	}
	return out
}

// recordAccounts records the run's accounts that will not be worked:
// skipped (held by another run, disabled) or failed before any request.
func (p *passRun) recordAccounts(ctx context.Context) error {
	for _, a := range append(slices.Clone(p.accts), p.disabled...) {
		var err error
		switch {
		case a.status == db.RunAccountSkipped:
			err = p.st.retry(ctx, "record a skipped account", func(ctx context.Context) error {
				return db.SkipRunAccount(ctx, p.pool, p.runID, a.name, p.env.Redactor.Scrub(a.err.Error()))
			})
		case slices.Contains(p.disabled, a):
			err = p.st.retry(ctx, "record a disabled account", func(ctx context.Context) error {
				return db.SkipRunAccount(ctx, p.pool, p.runID, a.name, errAccountDisabled.Error())
			})
		case a.err != nil:
			a.status = db.RunAccountFailed
			err = p.st.retry(ctx, "record a failed account", func(ctx context.Context) error {
				if err := db.BeginRunAccount(ctx, p.pool, p.runID, a.name, 0, a.rate); err != nil {
					return err
				}
				return db.FinishRunAccount(ctx, p.pool, p.runID, a.name, db.RunAccountEnd{Status: db.RunAccountFailed,
					Reason: p.env.Redactor.Scrub(a.err.Error()), ErrorCode: accountErrorCode(a.err)})
			})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// accountErrorCode is the code of the answer (or local failure) that
// stopped an account: the API's or STS's error code, "NoCredentials",
// "CredentialsUnavailable"; "" when err is not about the API.
func accountErrorCode(err error) string {
	if code := live.ErrorCode(err); code != "Error" {
		return code
	}
	return ""
}

// countAccountRows counts each working account's rows (see countRows).
func (p *passRun) countAccountRows(ctx context.Context) error {
	p.total, p.invalidUnchanged = 0, 0
	for _, a := range p.working() {
		err := p.st.retry(ctx, "count pending rows", func(ctx context.Context) (err error) {
			if p.mode == apply.ModeVerify {
				a.pending, err = db.CountDesiredIn(ctx, p.pool, a.name)
				return err
			}
			if a.pending, err = db.CountPendingIn(ctx, p.pool, a.name); err == nil {
				a.invalidUnchanged, err = db.CountInvalidUnchangedIn(ctx, p.pool, a.name)
			}
			return err
		})
		if err != nil {
			return err
		}
		p.total += a.pending
		p.invalidUnchanged += a.invalidUnchanged
	}
	return nil
}

// runAccounts runs the pass of every working account at once: each with its
// own gate (rate, adaptive rate, breaker), client and outcome writer, all
// on one worker pool shared fairly (apply.Slots). It returns the summed
// summary and the run's error (see accountsError).
func (p *passRun) runAccounts(ctx context.Context) (apply.Summary, error) {
	work := p.working()
	if p.env.Accounts != nil {
		p.env.Accounts(len(work))
	}
	// Every account's start is recorded before any pass starts, so that a
	// database that fails here leaves no pass running.
	for _, a := range work {
		err := p.st.retry(ctx, "record the account's start", func(ctx context.Context) error {
			return db.BeginRunAccount(ctx, p.pool, p.runID, a.name, a.pending, a.rate)
		})
		if err != nil {
			return apply.Summary{}, err
		}
		a.started = true
	}
	slots := apply.NewSlots(p.c.WorkersFor(len(work)), p.c.Concurrency)
	seed := uint64(time.Now().UnixNano())
	var prog *accountProgress
	if len(work) > 1 {
		prog = newAccountProgress(p.log, p.env.Progress)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); prog.loop(p.c.ProgressInterval, p.total, len(work), stop) }()
		defer func() { close(stop); <-done }()
	}
	shares := make([]*apply.Share, len(work))
	if len(work) > 1 { // one account has its --concurrency workers to itself
		for i := range work {
			shares[i] = slots.Join() // all before any pass starts
		}
	}
	var wg sync.WaitGroup
	for i, a := range work {
		o := apply.Options{Apply: p.c.Apply, RunID: p.runID, Mode: p.mode, Seed: seed + uint64(i), Total: a.pending,
			Stop: p.lock.Lost(), Logger: p.log, Secrets: p.env.Redactor, Account: a.name, Share: shares[i]}
		o.Rate, o.Region = a.rate, a.region
		// The accounts share the memory one pass had: each reads and
		// buffers its part of --page-size and --flush-size (at least 100,
		// three seconds at the API's limit).
		o.PageSize = max(p.c.PageSize/len(work), min(p.c.PageSize, minAccountBatch))
		o.FlushSize = max(p.c.FlushSize/len(work), min(p.c.FlushSize, minAccountBatch))
		if prog == nil {
			o.Progress = p.env.Progress
		} else {
			o.Logger = p.log.With("account", a.label)
			o.Progress = prog.reporter(a.name)
		}
		wg.Go(func() {
			a.sum, a.err = apply.Run(ctx, o, p.st.forAccount(a.name), a.client)
		})
	}
	wg.Wait()
	var sum apply.Summary
	sum.Counts = map[model.Outcome]int64{}
	for _, a := range work {
		for o, n := range a.sum.Counts {
			sum.Counts[o] += n
		}
		sum.Requests += a.sum.Requests
		sum.Throttled += a.sum.Throttled
		sum.Retries += a.sum.Retries
		sum.BreakerTrips += a.sum.BreakerTrips
		sum.Unfinished += a.sum.Unfinished
		sum.Elapsed = max(sum.Elapsed, a.sum.Elapsed)
	}
	return sum, p.accountsError()
}

// accountKind sorts an account's error: how it ended, and whether it
// stops the whole run.
func accountKind(err error) (status string, runWide bool) {
	switch {
	case err == nil, errors.Is(err, apply.ErrPruneLimit):
		return db.RunAccountSucceeded, false
	case errors.Is(err, apply.ErrInterrupted):
		return db.RunAccountInterrupted, true
	case errors.Is(err, apply.ErrStore), errors.Is(err, apply.ErrLockLost):
		return db.RunAccountFailed, true
	}
	return db.RunAccountFailed, false
}

// accountsError is the run's error from its accounts' errors. An error
// that is the run's (a signal, the database, the run claim) wins, the
// first in account order; a single-account pass returns its account's
// error as it is; otherwise accounts that failed on their own (credentials,
// unknown account) make ErrAccountsFailed, naming them, unless a prune was
// refused (that error is kept, with the run's note).
func (p *passRun) accountsError() error {
	var failed []string
	var runErr, pruneErr error
	for _, a := range p.accts {
		if a.status == db.RunAccountSkipped {
			continue
		}
		status, runWide := accountKind(a.err)
		a.status = status
		switch {
		case runWide && runErr == nil:
			runErr = a.err
		case errors.Is(a.err, apply.ErrPruneLimit) && pruneErr == nil:
			pruneErr = a.err
		case status == db.RunAccountFailed && !runWide:
			failed = append(failed, fmt.Sprintf("%s (%v)", a.label, a.err))
		}
	}
	switch {
	case runErr != nil:
		return runErr
	case p.single():
		return p.accts[0].err
	case len(failed) > 0:
		return fmt.Errorf("%w: %d of %d: %s", ErrAccountsFailed, len(failed), len(p.accts), strings.Join(failed, "; "))
	}
	return pruneErr
}

// finishAccounts records the end of each account whose pass ran
// (reconcile_run_accounts).
func (p *passRun) finishAccounts(fin context.Context) {
	for _, a := range p.accts {
		if !a.started {
			continue
		}
		if a.status == "" { // the run stopped before the account's pass
			a.status = db.RunAccountFailed
		}
		end := db.RunAccountEnd{Status: a.status, Done: a.sum.Done(), NotDone: a.sum.NotDone() + a.invalidUnchanged,
			Requests: a.sum.Requests, Throttled: a.sum.Throttled}
		if a.err != nil {
			end.Reason, end.ErrorCode = p.env.Redactor.Scrub(a.err.Error()), accountErrorCode(a.err)
		}
		if err := db.FinishRunAccount(fin, p.pool, p.runID, a.name, end); err != nil {
			p.log.Error("cannot record the end of an account", "account", a.label, "error", err)
		}
	}
}

// logAccounts logs one summary line per account of a multi-account pass.
func (p *passRun) logAccounts() {
	if p.single() {
		return
	}
	for _, a := range p.accts {
		attrs := []any{"account", a.label, "status", a.status, "pending", a.pending,
			"done", a.sum.Done(), "not_done", a.sum.NotDone() + a.invalidUnchanged,
			"requests", a.sum.Requests, "throttled", a.sum.Throttled}
		if a.err != nil {
			attrs = append(attrs, "error", a.err.Error())
		}
		level := slog.LevelInfo
		if a.status == db.RunAccountFailed {
			level = slog.LevelError
		}
		p.log.Log(context.Background(), level, "account summary", attrs...)
	}
}
