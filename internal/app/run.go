// Package app wires the job's parts together for each subcommand: it opens
// the database, takes the run lock, builds the API client, calls package
// apply, records the run, and returns errors that cmd/reconcile maps to the
// contract's exit codes.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/logging"
	"github.com/reconcile/reconcile/internal/metrics"
	"github.com/reconcile/reconcile/internal/model"
)

// DevVersion is the program version when the build carries none.
const DevVersion = "dev"

// Sentinel errors that decide the exit code (see ExitCode).
var (
	// ErrNotDone: the run finished, and some rows are invalid or failed (exit 1).
	ErrNotDone = errors.New("some rows are not done")
	// ErrSchema: the schema is missing or behind (exit 2).
	ErrSchema = errors.New("schema not ready")
)

// Bounds of the shutdown after SIGTERM/SIGINT, on top of --grace (the
// requests' own time): the process ends within --grace plus their sum plus
// the time to close its sockets, whatever the database is doing.
const (
	// ShutdownWriteTimeout: after --grace, how long writing the finished
	// outcomes may still take. Outcomes not written by then stay pending.
	ShutdownWriteTimeout = 3 * time.Second
	// ShutdownFinishTimeout: then, how long recording the run's end may
	// take. A run row left running is marked abandoned by the next run.
	ShutdownFinishTimeout = 2 * time.Second
	// ShutdownReleaseTimeout: then, how long releasing the run claim may
	// take; a claim not released expires on its own (db.RunLeaseTTL).
	ShutdownReleaseTimeout = time.Second
	// PoolCloseTimeout: last, how long closing the pool may take; a
	// connection stuck on a silent network is left to close in the
	// background (the process exits).
	PoolCloseTimeout = time.Second
	// finishTimeout bounds recording the run's end without a signal.
	finishTimeout = 10 * time.Second
)

// finishContext is the context of the statements that record a run's end:
// they run even after a signal, for finishTimeout or --db-retry-deadline
// (the shorter), and no later than finHalt (the shutdown bound).
func finishContext(ctx, finHalt context.Context, deadline time.Duration) (context.Context, context.CancelFunc) {
	fin, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(finishTimeout, deadline))
	stop := context.AfterFunc(finHalt, cancel)
	return fin, func() { stop(); cancel() }
}

// closePool closes pool, waiting at most PoolCloseTimeout.
func closePool(pool *pgxpool.Pool) {
	done := make(chan struct{})
	go func() { pool.Close(); close(done) }()
	t := time.NewTimer(PoolCloseTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// ApplicationName is the application_name of the job's pool connections
// (unless the connection string sets one), so that they can be told apart
// in pg_stat_activity; the lock connection's is db.LockApplicationName.
const ApplicationName = "reconcile"

// Env is what a subcommand gets from its process.
type Env struct {
	Stdout, Stderr io.Writer
	// Version is the program version recorded in reconcile_runs and sent in
	// the User-Agent (DevVersion when empty).
	Version  string
	Logger   *slog.Logger
	Redactor *logging.Redactor
	// Credentials overrides the default chain (tests, the demo).
	Credentials live.Credentials
	// Progress, when set, replaces progress log lines (terminal progress bar).
	Progress func(apply.Progress)
	// ProgressDone, when set, is called once the pass ended, before the
	// summary is logged (it ends the progress bar's line).
	ProgressDone func()
	// Accounts, when set, is told how many accounts a run or verify pass
	// works, before any of them starts (cmd/reconcile raises the memory
	// limit with it).
	Accounts func(n int)
}

func (e Env) version() string {
	if e.Version == "" {
		return DevVersion
	}
	return e.Version
}

// Exit codes of the commands (docs/guarantees.md, "Exit codes"). 0–4 are the contract's;
// 5 and above are the project's.
const (
	// ExitOK: every desired row is done (or the command succeeded).
	ExitOK = 0
	// ExitNotDone: the run finished, and some rows are invalid or failed
	// (also: verify found drift, import stopped on bad lines, report found
	// no such run, prune refused by --prune-max).
	ExitNotDone = 1
	// ExitConfig: bad configuration, credentials refused by the API, the
	// schema missing or behind, or Postgres refusing the login or the
	// database named: stopped before or at the first request.
	ExitConfig = 2
	// ExitLocked: another run holds the lock; nothing was done.
	ExitLocked = 3
	// ExitInterrupted: SIGTERM/SIGINT; outcomes so far are recorded.
	ExitInterrupted = 4
	// ExitPending: `reconcile plan` and `reconcile run --dry-run` found
	// work for the next run.
	ExitPending = 5
	// ExitUnavailable: infrastructure failed, not the rows: Postgres
	// unreachable (past --db-retry-deadline during a run) or failing, the
	// run lock lost, the credentials provider unavailable. Rerunning later
	// is the fix (a Kubernetes Job retries it; see deploy/cronjob.yaml).
	ExitUnavailable = 6
	// ExitAccountsFailed: a run over several accounts finished, and some
	// accounts stopped on their own: credentials refused or unavailable, no
	// reconcile_accounts row, a bad account setting. The other accounts'
	// rows were worked; the stopped accounts' rows stay pending, with the
	// reason in reconcile_run_accounts.
	ExitAccountsFailed = 7
)

// ErrUnavailable marks an error as an infrastructure failure (exit
// ExitUnavailable) when nothing more specific says so.
var ErrUnavailable = errors.New("infrastructure unavailable")

// ExitCode maps an error returned by this package to the exit codes above.
// Postgres refusing the login (SQLSTATE class 28) or the database named
// (3D000) is configuration (2); any other database error, a lost run lock
// and an unavailable credentials provider are infrastructure (6).
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrAccountsFailed):
		return ExitAccountsFailed
	case errors.Is(err, config.ErrUsage), errors.Is(err, apply.ErrCredentials), errors.Is(err, ErrSchema),
		errors.Is(err, live.ErrNoCredentials), errors.Is(err, live.ErrInsecureEndpoint), isLoginRefused(err):
		return ExitConfig
	case errors.Is(err, db.ErrLocked):
		return ExitLocked
	case errors.Is(err, apply.ErrInterrupted):
		return ExitInterrupted
	case errors.Is(err, ErrPlanPending):
		return ExitPending
	case isUnavailable(err):
		return ExitUnavailable
	}
	return ExitNotDone
}

// isLoginRefused reports whether Postgres refused the connection's
// configuration: a bad user or password (class 28) or no such database
// (3D000). Retrying cannot help.
func isLoginRefused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "3D000")
}

// isUnavailable reports whether err is an infrastructure failure: a
// database error of any kind (unreachable, connection lost, statement
// refused), the run lock lost, or the credentials provider failing. It
// does not use db.IsRetryable, which takes any syscall.Errno (a missing
// import file, say) for a network error.
func isUnavailable(err error) bool {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, apply.ErrStore) || errors.Is(err, apply.ErrLockLost) ||
		errors.Is(err, apply.ErrCredentialsUnavailable) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	var opErr *net.OpError
	var credErr *live.CredentialsError
	return errors.As(err, &pgErr) || errors.As(err, &connErr) || errors.As(err, &opErr) || errors.As(err, &credErr)
}

// Connect opens a pool on url (libpq defaults when empty) and checks it
// answers. The pool's connections are set up by db.ConfigureConn without
// server-side timeouts: a query mode that works through connection poolers
// (unless url sets default_query_exec_mode), TCP keepalives and
// TCP_USER_TIMEOUT. `reconcile run` uses connectRun instead.
func Connect(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	pc, err := poolConfig(url, maxConns, db.ConnOptions{})
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	return pool, nil
}

func poolConfig(url string, maxConns int32, o db.ConnOptions) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: --database-url: %v", config.ErrUsage, redactURL(err))
	}
	if maxConns > 0 {
		pc.MaxConns = maxConns
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = ApplicationName
	}
	db.ConfigureConn(pc.ConnConfig, url, o)
	return pc, nil
}

// connectRun opens the pool of `reconcile run`: like Connect, plus the
// server-side bounds of db.ConfigureConn (statement_timeout, lock_timeout,
// idle_in_transaction_session_timeout, the server's keepalives). A pooler
// that refuses those startup parameters (PgBouncer does, unless they are in
// its ignore_startup_parameters) gets a second pool without them; then only
// the client-side deadlines bound the waits. An unreachable database is
// retried until c.DBRetryDeadline.
func connectRun(ctx context.Context, c config.Run, log *slog.Logger, st *store) (*pgxpool.Pool, error) {
	pc, err := poolConfig(c.DatabaseURL, int32(max(8, min(c.Concurrency/2, 24))), db.ConnOptions{ServerTimeouts: true})
	if err != nil {
		return nil, err
	}
	var pool *pgxpool.Pool
	err = st.retry(ctx, "connect", func(ctx context.Context) (err error) {
		if pool == nil {
			if pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
				return err
			}
		}
		err = pool.Ping(ctx)
		if db.IsUnsupportedStartupParameter(err) {
			log.Info("the connection pooler refuses server settings at connect; statement and lock waits are bounded by the client only",
				"error", err)
			pool.Close()
			pool = nil
			db.DropServerSettings(pc.ConnConfig, c.DatabaseURL)
			if pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
				return err
			}
			err = pool.Ping(ctx)
		}
		return err
	})
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		return nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	return pool, nil
}

// redactURL keeps a parse error short and never prints the connection
// string (it may hold a password).
func redactURL(error) string {
	return "cannot parse the connection string (expected postgres://user@host:port/db or key=value pairs)"
}

// Run performs `reconcile run` (or `run --dry-run`) with c, which must be
// validated. It returns nil when every desired row is done, ErrNotDone when
// some are invalid or failed (a dry run: ErrPlanPending when some row is
// pending or not done), and otherwise an error that ExitCode maps.
func Run(ctx context.Context, c config.Run, env Env) error {
	return pass(ctx, c, env, apply.ModeApply)
}

// Verify performs `reconcile verify`: it describes every desired domain
// (through the same rate limit) and records in_sync, drifted or missing,
// changing nothing in the cloud. It returns nil when every domain is in
// sync, ErrNotDone otherwise.
func Verify(ctx context.Context, c config.Run, env Env) error {
	c.DryRun = false
	return pass(ctx, c, env, apply.ModeVerify)
}

// clientTarget is what differs between the accounts' clients.
type clientTarget struct {
	endpoint, region string
	creds            live.Credentials
}

// newClient builds the API client of one account and checks its
// credentials (Get once: a RAM role is assumed, a profile read), registering
// their secrets with the redactor.
func newClient(ctx context.Context, c config.Run, env Env, t clientTarget) (*live.Client, error) {
	lo := live.Options{Endpoint: t.endpoint, Region: t.region, RequestTimeout: c.RequestTimeout,
		AllowInsecureEndpoint: c.InsecureEndpoint, SignatureAlgorithm: c.SignatureAlgorithm,
		MaxConns: c.Concurrency, UserAgent: "reconcile/" + env.version()}
	lo.Credentials = live.StaticCredentials("placeholder", "", "") // the real ones are checked below
	if err := lo.Validate(); err != nil {
		if errors.Is(err, live.ErrInsecureEndpoint) {
			return nil, fmt.Errorf("%w: --endpoint: %w; give --insecure-endpoint (or RECONCILE_INSECURE_ENDPOINT=true) to allow it", config.ErrUsage, err)
		}
		return nil, fmt.Errorf("%w: --endpoint: %w", config.ErrUsage, err)
	}
	cred, err := t.creds.Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading credentials: %w", err)
	}
	env.Redactor.Add(live.SecretsOf(cred)...)
	lo.Credentials = t.creds
	client, err := live.New(ctx, lo)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	return client, nil
}

// pass performs one run or verify pass with c (validated). Its steps, in
// order, are the methods of passRun below; the deferred steps (releasing
// the claims, closing the pool, the shutdown bounds, closing the clients)
// run in the reverse order of the steps that set them up.
//
// A pass works accounts (see selectAccounts): each gets its own client,
// run claim, gate and outcome writer; the default account alone, when the
// desired rows name none, is the single-account pass every version before
// accounts ran.
func pass(ctx context.Context, c config.Run, env Env, mode apply.Mode) error {
	p := newPassRun(c, env, mode)
	if err := p.announce(); err != nil {
		return err
	}
	if !c.DryRun {
		p.resolveOwnCredentials()
	}
	defer p.boundShutdown(ctx)()
	if err := p.connect(ctx); err != nil {
		return err
	}
	defer closePool(p.pool)
	if err := p.checkSchema(ctx); err != nil {
		return err
	}
	if err := p.selectAccounts(ctx); err != nil {
		return err
	}
	if len(p.accts) == 0 {
		p.log.Info("no account to work: nothing to do", "shard", c.ShardSpec().String(), "disabled", len(p.disabled))
		return nil
	}
	// A dry run only reads and records its own dry_run row: it neither
	// takes nor needs the run claim, so it never makes a real run exit 3.
	if !c.DryRun {
		if err := p.claim(ctx); err != nil {
			return err
		}
		defer p.release(ctx)
		if err := p.openClients(ctx); err != nil {
			return err
		}
		defer p.closeClients()
		if err := p.markAbandoned(ctx); err != nil {
			return err
		}
	}
	if err := p.beginRun(ctx); err != nil {
		return err
	}
	if err := p.recordAccounts(ctx); err != nil {
		return err
	}
	if err := p.countAccountRows(ctx); err != nil {
		return err
	}
	if c.DryRun {
		return dryRun(ctx, c, env, p.log, p.pool, p.st, p.runID, p.total, p.invalidUnchanged, p.finHalt, p.names())
	}
	sum, runErr := p.apply(ctx)
	fin, cancel := finishContext(ctx, p.finHalt, c.DBRetryDeadline)
	defer cancel()
	p.finishAccounts(fin)
	endStatus, notDone, runErr := p.finish(fin, sum, runErr)
	p.logAccounts()
	p.summarize(endStatus, sum, runErr)
	if mode == apply.ModeApply {
		pushMetrics(ctx, c, p.log, p.accountMetrics(endStatus, runErr == nil && notDone == 0))
	}
	if runErr != nil {
		return runErr
	}
	if notDone > 0 {
		return fmt.Errorf("%w: %s", ErrNotDone, notDoneText(sum.Counts, p.invalidUnchanged))
	}
	return nil
}

// passRun is the state one pass builds up, step by step.
type passRun struct {
	c       config.Run
	env     Env
	mode    apply.Mode
	command string // "run" or "verify", for log lines
	kind    string // the run row's kind
	log     *slog.Logger
	pool    *pgxpool.Pool
	st      *store
	lock    *db.RunLock
	// halt ends the database calls of the pass and finHalt those that record
	// its end, at the shutdown bounds after a signal (see boundShutdown).
	halt, finHalt context.Context
	runID         int64
	// accts are the accounts of the pass (see selectAccounts); disabled
	// those left out because reconcile_accounts disables them.
	accts, disabled []*account
	// source is the job's own credentials (sourceErr: why there are none).
	source    live.Credentials
	sourceErr error
	// total is the rows the pass will take up; invalidUnchanged those
	// counted, not sent (a plain run only).
	total, invalidUnchanged int64
}

func newPassRun(c config.Run, env Env, mode apply.Mode) *passRun {
	p := &passRun{c: c, env: env, mode: mode, command: "run", kind: db.RunKindRun, log: env.Logger}
	if mode == apply.ModeVerify {
		p.command, p.kind = "verify", db.RunKindVerify
	}
	return p
}

// announce logs the starting line: the target and the effective
// configuration.
func (p *passRun) announce() error {
	t, _, err := ParseTarget(p.c.DatabaseURL)
	if err != nil {
		return err
	}
	p.log.Info("starting", "command", p.command, "version", p.env.version(), "target", t, "config", configAttrs(p.c))
	return nil
}

// resolveOwnCredentials finds the job's own credentials: the Env's, else
// the default chain. Failing to find them is not yet an error: only the
// accounts that use them (the default account, credentials "default", and
// ram_role_arn, whose roles are assumed with them) fail for it.
func (p *passRun) resolveOwnCredentials() {
	p.source = p.env.Credentials
	if p.source == nil {
		p.source, p.sourceErr = live.DefaultChain()
	}
}

// holder is the token of the pass's run claims ("" without them).
func (p *passRun) holder() string {
	if p.lock == nil {
		return ""
	}
	return p.lock.Holder()
}

// boundShutdown sets the contexts that bound database calls after a
// signal: they get --grace plus ShutdownWriteTimeout (outcome writes) and
// then ShutdownFinishTimeout (the run's end), so a stuck database cannot
// hold the process past them; outcomes not written by then stay pending
// for the next run. It also builds the store on them, and returns the
// cleanup.
func (p *passRun) boundShutdown(ctx context.Context) (cleanup func()) {
	halt, haltNow := context.WithCancel(context.WithoutCancel(ctx))
	finHalt, finHaltNow := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		time.AfterFunc(p.c.Grace+ShutdownWriteTimeout, haltNow)
		time.AfterFunc(p.c.Grace+ShutdownWriteTimeout+ShutdownFinishTimeout, finHaltNow)
	})
	p.halt, p.finHalt = halt, finHalt
	log := p.log
	p.st = &store{deadline: p.c.DBRetryDeadline, halt: halt,
		onRetry: func(op string, err error) { log.Warn("database call failed; retrying", "op", op, "error", err) }}
	return func() { stop(); finHaltNow(); haltNow() }
}

// connect opens the pool, retrying an unreachable database.
func (p *passRun) connect(ctx context.Context) error {
	pool, err := connectRun(ctx, p.c, p.log, p.st)
	if err != nil {
		return err
	}
	p.pool, p.st.pool = pool, pool
	return nil
}

// checkSchema refuses a schema that is missing or behind (ErrSchema) and
// warns about one that is ahead.
func (p *passRun) checkSchema(ctx context.Context) error {
	pool := p.pool
	err := p.st.retry(ctx, "check the schema", func(ctx context.Context) error { return db.CheckSchema(ctx, pool) })
	switch {
	case err == nil:
		return nil
	case errors.Is(err, db.ErrSchemaAhead):
		p.log.Warn("the schema is newer than this program; continuing", "error", err)
		return nil
	case errors.Is(err, db.ErrSchemaMissing), errors.Is(err, db.ErrSchemaBehind):
		return fmt.Errorf("%w: %w", ErrSchema, err)
	}
	return err
}

// claim takes the run claim of every account of the pass that can be
// worked (db.AcquireRunLease): accounts another run holds are skipped and
// logged; db.ErrLocked when it holds them all.
func (p *passRun) claim(ctx context.Context) error {
	var names []string
	for _, a := range p.accts {
		if a.err == nil {
			names = append(names, a.name)
		}
	}
	if len(names) == 0 {
		if p.single() {
			return p.accts[0].err
		}
		return nil // every account failed already: recorded, exit 7
	}
	cfg := p.pool.Config().ConnConfig
	err := p.st.retry(ctx, "take the run lock", func(ctx context.Context) (err error) {
		p.lock, err = db.AcquireRunLease(ctx, cfg.Copy(), names, db.RunLockOptions{})
		return err
	})
	if err != nil {
		return err
	}
	for _, h := range p.lock.Skipped() {
		for _, a := range p.accts {
			if a.name == h.Account {
				a.status = db.RunAccountSkipped
				a.err = fmt.Errorf("held by another run on %s (pid %d), expires in %s unless renewed",
					h.Host, h.PID, h.ExpiresIn.Round(time.Second))
				p.log.Warn("account held by another run; skipped", "account", a.label, "holder", h.Host, "pid", h.PID)
			}
		}
	}
	return nil
}

// release gives the run lock back, within ShutdownReleaseTimeout after a
// signal; a lock not released expires on its own.
func (p *passRun) release(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), db.RunLeaseCallTimeout)
	if ctx.Err() != nil {
		rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), ShutdownReleaseTimeout)
	}
	defer cancel()
	if p.lock == nil {
		return
	}
	if err := p.lock.Release(rctx); err != nil {
		p.log.Warn("cannot release the run lock; it expires on its own", "error", err, "ttl", db.RunLeaseTTL)
	}
}

// markAbandoned marks runs left running by a dead process as failed. Only
// with the claim held: no live process owns a running run.
func (p *passRun) markAbandoned(ctx context.Context) error {
	var n int64
	err := p.st.retry(ctx, "mark abandoned runs", func(ctx context.Context) (err error) {
		n, err = db.AbandonRunning(ctx, p.pool, p.holder())
		return err
	})
	if err != nil {
		return err
	}
	if n > 0 {
		p.log.Warn("marked runs left running by a dead process as failed", "runs", n)
	}
	return nil
}

// beginRun records the run row (status running, or dry_run).
func (p *passRun) beginRun(ctx context.Context) error {
	host, _ := os.Hostname()
	status := db.RunRunning
	if p.c.DryRun {
		status = db.RunDryRun
	}
	// Not idempotent: retried only when the statement surely was not sent.
	err := p.st.retryIf(ctx, "begin the run", pgconn.SafeToRetry, func(ctx context.Context) (err error) {
		p.runID, err = db.BeginRun(ctx, p.pool, db.RunStart{Status: status, Rate: p.c.Rate, Concurrency: p.c.Concurrency,
			HostName: host, Version: p.env.version(), Kind: p.kind, LeaseHolder: p.holder()})
		return err
	})
	if err != nil {
		return err
	}
	p.log = p.log.With("run_id", p.runID)
	return nil
}

// apply runs the pass itself (package apply) and ends the progress
// display. A lost lock's error says why it was lost.
func (p *passRun) apply(ctx context.Context) (apply.Summary, error) {
	p.log.Info(p.command+" started", "rows", p.total, "invalid_unchanged", p.invalidUnchanged)
	stopWatch := watchSignal(ctx, p.log, p.c.Grace)
	sum, runErr := p.runAccounts(ctx)
	stopWatch()
	if p.env.Progress != nil {
		p.env.Progress(apply.Progress{Done: sum.Done() + sum.NotDone(),
			Total: p.total, Requests: sum.Requests, Rate: float64(sum.Requests) / max(sum.Elapsed.Seconds(), 1e-9)})
	}
	if p.env.ProgressDone != nil {
		p.env.ProgressDone()
	}
	if errors.Is(runErr, apply.ErrLockLost) && p.lock != nil && p.lock.Err() != nil {
		runErr = fmt.Errorf("%w: %w", runErr, p.lock.Err()) // the note says why
	}
	return sum, runErr
}

// finish records the end of the run on fin (which outlives a signal, for
// its own short deadline): the invalid_unchanged count, the status, the
// note and the exit code. It returns the status, the rows not done, and
// runErr, or the error recording the end when runErr is nil.
func (p *passRun) finish(fin context.Context, sum apply.Summary, runErr error) (status string, notDone int64, _ error) {
	if p.invalidUnchanged > 0 {
		if err := db.AddRunCounts(fin, p.pool, p.runID, db.RunCounters{InvalidUnchanged: p.invalidUnchanged}); err != nil {
			p.log.Error("cannot record the invalid_unchanged count", "error", err)
		}
	}
	status, note := db.RunSucceeded, ""
	switch {
	case errors.Is(runErr, apply.ErrInterrupted):
		status, note = db.RunInterrupted, "interrupted by a signal"
	case errors.Is(runErr, apply.ErrPruneLimit):
		note = runErr.Error() // the pass itself completed
	case runErr != nil:
		status, note = db.RunFailed, runErr.Error()
	}
	notDone = p.invalidUnchanged + sum.NotDone()
	exitCode := ExitCode(runErr) // what pass's error will map to
	if runErr == nil && notDone > 0 {
		exitCode = ExitCode(ErrNotDone)
	}
	if err := db.FinishRun(fin, p.pool, p.runID, status, p.env.Redactor.Scrub(note), exitCode); err != nil {
		p.log.Error("cannot record the end of the run", "error", err)
		if runErr == nil {
			runErr = err
		}
	}
	return status, notDone, runErr
}

// summarize logs the summary line: the status, the count of every outcome
// the run had (and of the contract's and the done ones, zero or not), and
// the request counters.
func (p *passRun) summarize(status string, sum apply.Summary, runErr error) {
	counts := make([]any, 0, 2*len(sum.Counts)+20)
	counts = append(counts, "status", status)
	for _, k := range model.Outcomes() {
		if n, ok := sum.Counts[k.Outcome]; ok || k.Contract || k.Done {
			counts = append(counts, string(k.Outcome), n)
		}
	}
	counts = append(counts, "invalid_unchanged", p.invalidUnchanged, "unfinished", sum.Unfinished,
		"requests", sum.Requests, "throttled", sum.Throttled, "retries", sum.Retries,
		"breaker_trips", sum.BreakerTrips, "elapsed", sum.Elapsed.Round(time.Millisecond).String(),
		"error", errString(runErr))
	p.log.Info("summary", counts...)
}

// pushMetrics pushes the run's metrics when --pushgateway-url is set, one
// set per account the run took up (metrics.Push groups them by account);
// also after a signal (the push has its own deadline). A failed push is
// logged and never changes the exit code.
func pushMetrics(ctx context.Context, c config.Run, log *slog.Logger, ms []metrics.RunMetrics) {
	if c.PushgatewayURL == "" || len(ms) == 0 {
		return
	}
	if err := metrics.Push(context.WithoutCancel(ctx), c.PushgatewayURL, "", ms, metricsGrouping(c)...); err != nil {
		log.Warn("cannot push metrics to the Pushgateway", "url", metrics.SafeURL(c.PushgatewayURL), "error", err)
		return
	}
	log.Info("metrics pushed", "url", metrics.SafeURL(c.PushgatewayURL), "accounts", len(ms))
}

// accountMetrics returns the metrics of each account the pass took up
// (skipped ones have none: another run pushes theirs). A single-account
// pass's account has the run's status and success.
func (p *passRun) accountMetrics(runStatus string, runSuccess bool) []metrics.RunMetrics {
	var ms []metrics.RunMetrics
	for _, a := range p.accts {
		if a.status == db.RunAccountSkipped {
			continue
		}
		outcomes := make(map[string]int64, len(a.sum.Counts))
		for o, n := range a.sum.Counts {
			outcomes[string(o)] = n
		}
		status, success := a.status, a.err == nil && a.sum.NotDone()+a.invalidUnchanged == 0
		if p.single() {
			status, success = runStatus, runSuccess
		}
		ms = append(ms, metrics.RunMetrics{Account: a.name, RunID: p.runID, Status: status, Outcomes: outcomes,
			InvalidUnchanged: a.invalidUnchanged, Requests: a.sum.Requests, Throttled: a.sum.Throttled,
			Retries: a.sum.Retries, BreakerTrips: a.sum.BreakerTrips, Duration: a.sum.Elapsed, Rate: a.rate,
			Success: success, Finished: time.Now()})
	}
	return ms
}

func notDoneText(counts map[model.Outcome]int64, invalidUnchanged int64) string {
	var parts []string
	for _, o := range model.OutcomesWhere(func(k model.OutcomeKind) bool { return k.NotDone }) {
		if n := counts[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, o))
		}
	}
	if invalidUnchanged > 0 {
		parts = append(parts, fmt.Sprintf("%d invalid and unchanged since an earlier run", invalidUnchanged))
	}
	return strings.Join(parts, ", ")
}

func dryRun(ctx context.Context, c config.Run, env Env, log *slog.Logger, pool *pgxpool.Pool, st *store,
	runID, total, invalidUnchanged int64, finHalt context.Context, accts []string) error {
	log.Info("dry run: nothing will be called", "pending", total, "invalid_unchanged", invalidUnchanged)
	var sum apply.DryRunSummary
	var prune int64
	var err error
	for _, a := range accts {
		ast := st.forAccount(a)
		var s apply.DryRunSummary
		if s, err = apply.DryRun(ctx, ast, c.PageSize, env.Stdout); err != nil {
			break
		}
		sum.Add, sum.Update, sum.Invalid = sum.Add+s.Add, sum.Update+s.Update, sum.Invalid+s.Invalid
		if c.Prune {
			var n int64
			if n, err = apply.DryRunPrune(ctx, ast, c.PageSize, c.PruneMax, env.Stdout); err != nil {
				break
			}
			prune += n
		}
	}
	fin, cancel := finishContext(ctx, finHalt, c.DBRetryDeadline)
	defer cancel()
	note := fmt.Sprintf("would add %d, update %d; %d invalid; %d invalid and unchanged", sum.Add, sum.Update, sum.Invalid, invalidUnchanged)
	if c.Prune {
		note += fmt.Sprintf("; %d to prune (--prune-max %d)", prune, c.PruneMax)
	}
	pending := sum.Add+sum.Update+sum.Invalid+invalidUnchanged+prune > 0
	exitCode := ExitCode(err)
	if err == nil && pending {
		exitCode = ExitCode(ErrPlanPending)
	}
	if ferr := db.FinishRun(fin, pool, runID, db.RunDryRun, note, exitCode); ferr != nil && err == nil {
		err = ferr
	}
	log.Info("dry run summary", "add", sum.Add, "update", sum.Update, "invalid", sum.Invalid,
		"invalid_unchanged", invalidUnchanged, "prune", prune, "error", errString(err))
	if err != nil {
		return err
	}
	if pending {
		return fmt.Errorf("%w: dry run: %s", ErrPlanPending, note)
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// configAttrs is the effective configuration for the start line. It holds
// no secret: the database URL's password is removed.
func configAttrs(c config.Run) slog.Value {
	return slog.GroupValue(
		slog.String("database", safeDatabaseURL(c.DatabaseURL)),
		slog.String("endpoint", c.Endpoint), slog.String("region", c.Region),
		slog.Float64("rate", c.Rate), slog.Bool("adaptive_rate", c.AdaptiveRate),
		slog.Int("concurrency", c.Concurrency), slog.Int("max_attempts", c.MaxAttempts),
		slog.Duration("request_timeout", c.RequestTimeout), slog.Duration("grace", c.Grace),
		slog.Bool("dry_run", c.DryRun), slog.Bool("insecure_endpoint", c.InsecureEndpoint),
		slog.String("signature_algorithm", c.SignatureAlgorithm), slog.Int("page_size", c.PageSize),
		slog.Duration("flush_interval", c.FlushInterval), slog.Int("flush_size", c.FlushSize),
		slog.Float64("breaker_threshold", c.BreakerThreshold),
		slog.Bool("verify_existing", c.VerifyExisting), slog.Bool("no_fix_drift", c.NoFixDrift),
		slog.Bool("prune", c.Prune), slog.Int64("prune_max", c.PruneMax),
		slog.String("pushgateway_url", metrics.SafeURL(c.PushgatewayURL)),
		slog.String("metrics_grouping", c.MetricsGrouping),
		slog.String("accounts", c.Accounts), slog.String("shard", c.Shard), slog.Int("workers", c.Workers),
		slog.String("sts_endpoint", c.STSEndpoint),
	)
}

// metricsGrouping returns the Pushgateway grouping options of c:
// --metrics-grouping's labels, else instance=<database name> (the database
// Connect opens for c.DatabaseURL, libpq defaults included). c is validated.
func metricsGrouping(c config.Run) []metrics.Option {
	labels, _ := metrics.ParseGrouping(c.MetricsGrouping)
	if labels == nil {
		if cc, err := pgx.ParseConfig(c.DatabaseURL); err == nil && cc.Database != "" {
			labels = map[string]string{metrics.DefaultGroupingLabel: cc.Database}
		}
	}
	opts := make([]metrics.Option, 0, len(labels))
	for name, value := range labels {
		opts = append(opts, metrics.Grouping(name, value))
	}
	return opts
}

// safeDatabaseURL returns the connection target without its password.
func safeDatabaseURL(s string) string {
	cc, err := pgx.ParseConfig(s)
	if err != nil {
		return "(unparseable)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cc.User, cc.Host, cc.Port, cc.Database)
}
