package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/model"
)

// Scenario 7: the API fault matrix. One simulator, which keeps
// its configs across runs as the cloud would, injects every fault at once;
// the job is run again and again until it exits 0.
var faultsSim = simSpec{Limit: 250, LatencyMedian: 2 * time.Millisecond, LatencyP99: 20 * time.Millisecond,
	ServerError: 0.15, Reset: 0.05, Hang: 0.02, LostAnswer: 0.05, Seed: 1}

var faultsArgs = []string{"--rate", "250", "--allow-rate-above-limit", "--max-attempts", "3", "--request-timeout", "200ms"}

const (
	faultsMaxRuns   = 20
	faultsAuthEvery = 4 // a quarter of the rows with NotifyReqAuth and a key
	faultsRate      = 250
)

// faultsMeasure is what scenario faults measured over all its runs (each
// run's own figures are in scenarioResult.Runs, from its slice of the
// simulator's log).
type faultsMeasure struct {
	MaxRuns int `json:"max_runs"`
	// LogBounds[i] is the length of the simulator's log after run i+1.
	LogBounds []int `json:"log_bounds"`
	// Requests, Throttled, MaxWindow (most requests in any 1-s window) and
	// the counts per fault, status and error code are over the whole log.
	Requests  int            `json:"requests"`
	Throttled int            `json:"throttled"`
	MaxWindow int            `json:"max_window"`
	ByFault   map[string]int `json:"by_fault,omitempty"`
	ByCode    map[string]int `json:"by_code,omitempty"`
	// PendingAfter and DoneAfter are counted after the last run; Outcomes
	// are the desired rows by latest outcome then.
	PendingAfter int64          `json:"pending_after"`
	DoneAfter    int64          `json:"done_after"`
	Outcomes     map[string]int `json:"outcomes"`
	// From GET /_sim/state at the end: configs held, successful Adds in
	// all, and rows with two or more successful Adds (a sample of them).
	Configs         int      `json:"configs"`
	SuccessfulAdds  int      `json:"successful_adds"`
	DoubleAdds      int      `json:"double_adds"`
	DoubleAddSample []string `json:"double_add_sample,omitempty"`
	// LostAnswers counts requests with fault lost_answer (applied or not:
	// an Add on an existing config applies nothing). LostApplied counts the
	// Adds that created a config whose answer never reached the job
	// (lost_answer, or client_gone: the job gave up while the simulator was
	// still working), LostRows their rows. LostExists is how many of those
	// rows got ConfigAlreadyExists as the next answer the operation itself
	// gave for them and were recorded already_exists; LostOther the rest,
	// by "latest outcome / next answer".
	LostAnswers int            `json:"lost_answers"`
	LostApplied int            `json:"lost_applied"`
	LostRows    int            `json:"lost_rows"`
	LostExists  int            `json:"lost_exists"`
	LostOther   map[string]int `json:"lost_other,omitempty"`
	// Wall, CPU: sums over the runs of the job processes' wall and CPU time.
	Wall time.Duration `json:"wall"`
	CPU  time.Duration `json:"cpu"`
}

func (b *bench) scenarioFaults(ctx context.Context, sr *scenarioResult) error {
	sr.Rows = b.sz.Faults
	d, err := b.freshDBKeys(ctx, sr, "faults", sr.Rows, faultsAuthEvery)
	if err != nil {
		return err
	}
	defer d.drop()
	sim, err := b.startSim(ctx, "faults", faultsSim)
	if err != nil {
		return err
	}
	defer sim.stop()
	fm := &faultsMeasure{MaxRuns: faultsMaxRuns}
	sr.Faults = fm

	var runErr error
	pending := int64(sr.Rows)
	for i := 1; i <= faultsMaxRuns && ctx.Err() == nil; i++ {
		name := fmt.Sprintf("faults-%d", i)
		m, entries, err := b.jobOnSim(ctx, d, sim, name, faultsSim, int(pending), faultsArgs, nil)
		if m != nil {
			sr.Runs = append(sr.Runs, m)
		}
		if err != nil {
			runErr = err
			break
		}
		fm.LogBounds = append(fm.LogBounds, len(entries))
		if m.PendingAfter, m.DoneAfter, err = d.count(ctx); err != nil {
			runErr = err
			break
		}
		b.logf("   run %d: exit %d, %d requests so far, %d rows pending after", i, m.Job.Exit, len(entries), m.PendingAfter)
		pending = m.PendingAfter
		if m.Job.Exit == 0 {
			break
		}
		if m.Job.Exit != 1 {
			// 1 is "some rows failed: run again"; anything else (bad
			// configuration, lock held, interrupted) will not get better.
			runErr = fmt.Errorf("%s: reconcile run exited %d (want 0, or 1 to run again)", name, m.Job.Exit)
			break
		}
	}
	if len(fm.LogBounds) == 0 {
		return runErr
	}
	return errors.Join(runErr, b.faultsFinish(ctx, d, sim, sr, fm))
}

// faultsFinish reads the simulator's whole log and state and the rows'
// outcomes after the last run, splits the log by run and computes the
// totals.
func (b *bench) faultsFinish(ctx context.Context, d *database, sim *simProc, sr *scenarioResult, fm *faultsMeasure) error {
	entries, err := sim.fetchLog(ctx)
	if err != nil {
		return err
	}
	st, err := sim.fetchState(ctx)
	if err != nil {
		return err
	}
	outcomes, err := d.latestOutcomes(ctx)
	if err != nil {
		return err
	}
	if fm.PendingAfter, fm.DoneAfter, err = d.count(ctx); err != nil {
		return err
	}
	sim.stop()

	lo := 0
	for i, m := range sr.Runs {
		if i >= len(fm.LogBounds) {
			break
		}
		hi := min(fm.LogBounds[i], len(entries))
		m.analyse(entries[lo:hi])
		lo = hi
		if m.Job != nil {
			fm.Wall += m.Job.Wall
			fm.CPU += m.Job.CPU()
		}
	}
	if last := sr.Runs[len(sr.Runs)-1]; last != nil {
		last.SimRusage = sim.rusage
	}

	fm.Requests = len(entries)
	fm.MaxWindow = livesim.MaxInWindow(entries, time.Second)
	fm.ByFault, fm.ByCode = map[string]int{}, map[string]int{}
	// waiting: rows whose config an unanswered Add created, until the
	// operation itself answers a later request for them.
	waiting, nextCode := map[string]bool{}, map[string]string{}
	for _, e := range entries {
		if e.Fault != "" {
			fm.ByFault[e.Fault]++
		}
		if e.Code != "" && e.Status != 0 {
			fm.ByCode[e.Code]++
		}
		if e.Fault == livesim.FaultThrottled {
			fm.Throttled++
		}
		if e.Fault == livesim.FaultLostAnswer {
			fm.LostAnswers++
		}
		switch {
		case e.Action == livesim.ActionAdd && e.Applied && e.Status == 0:
			fm.LostApplied++
			waiting[e.Domain] = true
			delete(nextCode, e.Domain)
		case waiting[e.Domain] && e.Fault == "" && e.Status != 0:
			waiting[e.Domain] = false
			code := e.Code
			if code == "" {
				code = "success"
			}
			nextCode[e.Domain] = code
		}
	}
	fm.LostRows = len(waiting)
	for domain := range waiting {
		outcome := outcomes[domain]
		if nextCode[domain] == "ConfigAlreadyExists" && outcome == string(model.OutcomeAlreadyExists) {
			fm.LostExists++
			continue
		}
		if fm.LostOther == nil {
			fm.LostOther = map[string]int{}
		}
		next := nextCode[domain]
		if next == "" {
			next = "none"
		}
		if outcome == "" {
			outcome = "none"
		}
		fm.LostOther[outcome+" / "+next]++
	}

	fm.Outcomes = map[string]int{}
	for _, o := range outcomes {
		if o == "" {
			o = "never attempted"
		}
		fm.Outcomes[o]++
	}
	fm.Configs = len(st.Configs)
	for domain, n := range st.SuccessfulAdds {
		fm.SuccessfulAdds += n
		if n >= 2 {
			fm.DoubleAdds++
			fm.DoubleAddSample = append(fm.DoubleAddSample, domain)
		}
	}
	sort.Strings(fm.DoubleAddSample)
	if len(fm.DoubleAddSample) > 5 {
		fm.DoubleAddSample = fm.DoubleAddSample[:5]
	}
	b.logf("   %d runs: %d requests (%d throttled), max %d in 1 s, %d pending, %d rows with two successful Adds, %d of %d lost-answer rows already_exists",
		len(fm.LogBounds), fm.Requests, fm.Throttled, fm.MaxWindow, fm.PendingAfter, fm.DoubleAdds, fm.LostExists, fm.LostRows)
	return nil
}
