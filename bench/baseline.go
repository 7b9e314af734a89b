package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/model"
)

// baselineMeasure is what the naive reference did.
type baselineMeasure struct {
	Available     int           `json:"available"` // pending rows in its table
	Rows          int           `json:"rows"`      // rows it finished within Budget
	Failed        int           `json:"failed"`
	Budget        time.Duration `json:"budget"`
	Elapsed       time.Duration `json:"elapsed"`
	RowsPerSecond float64       `json:"rows_per_second"`
	CPU           time.Duration `json:"cpu"` // RUSAGE_SELF over the loop: the naive loop plus the bench's /proc sampler
	PG            cpuUsage      `json:"pg"`
	Run           *runMeasure   `json:"run"` // the simulator's view (requests, rate, window)
}

// sqlNaiveOutcome is the naive reference's one statement per outcome
// (autocommit): the outcome row and the domain's state.
const sqlNaiveOutcome = `WITH o AS (
    INSERT INTO reconcile_outcomes (run_id, domain_name, outcome, error_code, http_status, request_id, attempts, fingerprint)
    VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5::int, 0), NULLIF($6, ''), 1, $7)
    RETURNING id, run_id, domain_name, outcome, fingerprint, error_code, finished_at
)
INSERT INTO reconcile_domain_state AS s (domain_name, last_outcome_id, last_run_id, last_outcome, last_fingerprint,
    last_error_code, last_finished_at, done_fingerprint)
SELECT domain_name, id, run_id, outcome, fingerprint, error_code, finished_at,
       CASE WHEN outcome IN ('applied', 'already_exists') THEN fingerprint END
FROM o
ON CONFLICT (domain_name) DO UPDATE SET
    last_outcome_id = excluded.last_outcome_id, last_run_id = excluded.last_run_id,
    last_outcome = excluded.last_outcome, last_fingerprint = excluded.last_fingerprint,
    last_error_code = excluded.last_error_code, last_finished_at = excluded.last_finished_at,
    done_fingerprint = coalesce(excluded.done_fingerprint, s.done_fingerprint)`

// scenarioBaseline runs a naive reconciler in-process over scenario rate's
// rows and simulator: one goroutine, one row at a time, a 30/s ticker, one
// autocommitted statement per outcome, the same live.Client. It runs for
// at most b.sz.BaselineFor (at its speed the whole table would take many
// minutes) and reports rows per second.
func (b *bench) scenarioBaseline(ctx context.Context, sr *scenarioResult, res *result) error {
	sr.Rows = b.sz.Rate
	d, err := b.freshDB(ctx, sr, "baseline", sr.Rows)
	if err != nil {
		return err
	}
	defer d.drop()
	sim, err := b.startSim(ctx, "baseline", rateSim)
	if err != nil {
		return err
	}
	defer sim.stop()
	bm := &baselineMeasure{Budget: b.sz.BaselineFor}
	sr.Baseline = bm
	if b.o.quietWait > 0 {
		b.waitQuiet(ctx)
	}

	sampler := startSampler(d.name) // before connecting: the loop's backend counts
	simBefore, ok1 := sim.cpu()
	conn, err := d.conn(ctx)
	if err != nil {
		sampler.finish()
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	client, err := live.New(ctx, live.Options{Endpoint: sim.url, Region: "cn-shanghai", MaxConns: 1,
		Credentials: live.StaticCredentials(simKeyID, simKeySecret, "")})
	if err != nil {
		sampler.finish()
		return err
	}
	defer client.Close()

	// Every pending row, in memory.
	rows, err := conn.Query(ctx, `SELECT d.domain_name, d.notify_url, d.notify_req_auth, coalesce(d.notify_auth_key, ''),
		coalesce(d.region_id, ''), d.fingerprint
		FROM desired_snapshot_callbacks d JOIN snapshot_callback_status s USING (domain_name)
		WHERE s.pending ORDER BY d.domain_name`)
	if err != nil {
		sampler.finish()
		return err
	}
	type row struct {
		domain, url, key, region, fp string
		auth                         bool
	}
	var pending []row
	var r row
	if _, err := pgx.ForEachRow(rows, []any{&r.domain, &r.url, &r.auth, &r.key, &r.region, &r.fp}, func() error {
		pending = append(pending, r)
		return nil
	}); err != nil {
		sampler.finish()
		return err
	}
	bm.Available = len(pending)
	var runID int64
	if err := conn.QueryRow(ctx, `INSERT INTO reconcile_runs (rate, concurrency, host_name, program_version, note)
		VALUES (30, 1, 'bench', 'bench-naive', 'bench: naive reference') RETURNING id`).Scan(&runID); err != nil {
		sampler.finish()
		return err
	}

	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	start := time.Now()
	deadline := start.Add(bm.Budget)
	var loopErr error
	for _, p := range pending {
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		<-tick.C
		ans, err := client.Add(ctx, live.Request{Domain: p.domain, NotifyURL: p.url, ReqAuth: p.auth,
			AuthKey: model.Secret(p.key), Region: p.region})
		outcome, status := "applied", ans.HTTPStatus
		switch live.Classify(err) {
		case live.ClassOK:
		case live.ClassDuplicate:
			outcome = "already_exists"
		default:
			outcome = "failed"
			bm.Failed++
			var ae *live.APIError
			if errors.As(err, &ae) {
				status = ae.HTTPStatus
			}
		}
		if _, err := conn.Exec(ctx, sqlNaiveOutcome, runID, p.domain, outcome, live.ErrorCode(err), status,
			ans.RequestID, p.fp); err != nil {
			loopErr = fmt.Errorf("naive outcome insert: %w", err)
			break
		}
		bm.Rows++
	}
	bm.Elapsed = time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	bm.CPU = time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
	conn.Close(ctx)
	bm.PG = sampler.finish()
	if bm.Elapsed > 0 {
		bm.RowsPerSecond = float64(bm.Rows) / bm.Elapsed.Seconds()
	}
	simAfter, ok2 := sim.cpu()
	m := &runMeasure{Name: "baseline", Sim: rateSim, Rows: bm.Rows, SimCPU: simAfter - simBefore, SimCPUOK: ok1 && ok2}
	entries, err := sim.fetchLog(ctx)
	if err != nil {
		return err
	}
	m.analyse(entries)
	bm.Run = m
	b.logf("   naive: %d rows in %s (%.2f rows/s), %d requests, %.2f req/s",
		bm.Rows, bm.Elapsed.Round(time.Millisecond), bm.RowsPerSecond, m.Requests, m.Rate)
	return loopErr
}
