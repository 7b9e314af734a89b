package main

// TestCrashAnywhere: one logical run, SIGKILLed again and again at seeded
// points (and while it writes an outcome batch), then finished; the database
// and the simulator must agree row by row.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/livesim"
)

// EnvLongTests, when "1", selects the long sizes of the tests that have one
// (scripts/long-tests.sh sets it).
const EnvLongTests = "RECONCILE_LONG_TESTS"

// EnvCrashSeed overrides the seed of TestCrashAnywhere (to replay a failure).
const EnvCrashSeed = "RECONCILE_CRASH_SEED"

// crashDefaultSeed is TestCrashAnywhere's seed unless EnvCrashSeed is set.
const crashDefaultSeed = 20240611

// flushSQLPrefix is how the outcome batch statement (internal/db/outcomes.go,
// sqlWriteOutcomes) starts.
const flushSQLPrefix = "WITH input AS"

// crashSize is one size of TestCrashAnywhere.
type crashSize struct {
	rows       int
	countKills int // kills at seeded outcome-count thresholds
	flushKills int // kills aimed at an outcome flush (at least minFlush must land in one)
	minFlush   int
}

var (
	crashCI   = crashSize{rows: 600, countKills: 16, flushKills: 7, minFlush: 5}
	crashLong = crashSize{rows: 3000, countKills: 40, flushKills: 15, minFlush: 10}
)

// maxFlushAttempts bounds the kills spent trying to land in a flush.
const maxFlushAttempts = 60

// crashArgs: frequent, small outcome flushes; fast retries.
var crashArgs = []string{"run", "--rate", "200", "--allow-rate-above-limit", "--backoff-base", "10ms",
	"--backoff-max", "100ms", "--request-timeout", "2s", "--grace", "5s", "--flush-size", "5",
	"--flush-interval", "20ms", "--max-attempts", "5"}

func crashSeed(t *testing.T) uint64 {
	t.Helper()
	s := os.Getenv(EnvCrashSeed)
	if s == "" {
		return crashDefaultSeed
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", EnvCrashSeed, s, err)
	}
	return v
}

// flushSeen is an outcome batch statement of the job seen running.
type flushSeen struct {
	pid   int32
	start time.Time // query_start
}

// activeFlush returns the job's outcome write running now, if any.
func activeFlush(ctx context.Context, conn *pgx.Conn) (flushSeen, bool, error) {
	var f flushSeen
	err := conn.QueryRow(ctx, `SELECT pid, query_start FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'reconcile' AND state = 'active'
		  AND starts_with(query, $1) LIMIT 1`, flushSQLPrefix).Scan(&f.pid, &f.start)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, false, nil
	}
	return f, err == nil, err
}

// stillRunning reports whether the statement f is still running.
func stillRunning(ctx context.Context, conn *pgx.Conn, f flushSeen) (bool, error) {
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'
		AND query_start = $2 AND starts_with(query, $3)`, f.pid, f.start, flushSQLPrefix).Scan(&n)
	return n == 1, err
}

type crashEvent struct {
	flush bool
	inc   int // count kills: outcome rows this process must add first (0: kill once its run row exists)
}

func TestCrashAnywhere(t *testing.T) {
	t.Parallel()
	size := crashCI
	if os.Getenv(EnvLongTests) == "1" {
		size = crashLong
	}
	seed := crashSeed(t)
	t.Logf("seed %d (replay with %s=%d); %d rows, %d count kills, %d flush kills", seed, EnvCrashSeed, seed,
		size.rows, size.countKills, size.flushKills)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: replay with %s=%d", seed, EnvCrashSeed, seed)
		}
	})
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	f := newFixture(t, livesim.Options{
		Seed:    int64(seed),
		Latency: livesim.Latency{Median: 2 * time.Millisecond, P99: 20 * time.Millisecond},
		Faults:  livesim.Faults{LostAnswer: 0.05, ServerError: 0.05, Reset: 0.02},
	})
	rows := genRows("crash", size.rows)
	f.insert(rows)
	ctx := context.Background()
	watch := f.db.Conn(t) // pg_stat_activity, polled hard while hunting a flush

	// The schedule: count kills whose increments spend about half the rows,
	// and flush kills, in a seeded order.
	var events []crashEvent
	budget := size.rows / 2
	for range size.countKills {
		inc := rng.IntN(2*budget/size.countKills + 1)
		if rng.IntN(8) == 0 {
			inc = 0 // kill as soon as the run has begun
		}
		events = append(events, crashEvent{inc: inc})
	}
	for range size.flushKills {
		events = append(events, crashEvent{flush: true})
	}
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })

	var (
		killed       []int64 // run ids of the killed processes
		kills        int
		flushLanded  int
		flushTries   int
		lastRunID    int64
		outcomesNow  = func() int { return f.count(`SELECT count(*) FROM reconcile_outcomes`) }
		runningRunID = func() int64 { return int64(f.count(`SELECT coalesce(max(id), 0) FROM reconcile_runs`)) }
	)
	for i := 0; i < len(events); i++ {
		ev := events[i]
		p := f.start(nil, crashArgs...)
		// This process's run row: once it exists, the run before it (killed)
		// must already be marked failed (abandoned) by this successor.
		f.waitFor(fmt.Sprintf("kill %d: the run row of the new process", i+1), p, func() bool {
			return runningRunID() > lastRunID
		})
		lastRunID = runningRunID()
		if i == 0 && !runLockHeld(f) {
			t.Fatal("a run has begun, but runLockHeld sees no run lock: the lock query is wrong")
		}
		if n := len(killed); n > 0 {
			var status, note string
			if err := f.db.Pool.QueryRow(ctx, `SELECT status, coalesce(note, '') FROM reconcile_runs WHERE id = $1`,
				killed[n-1]).Scan(&status, &note); err != nil {
				t.Fatal(err)
			}
			if status != db.RunFailed || !strings.Contains(note, "abandoned") {
				t.Errorf("killed run %d when its successor %d began: status %q note %q, want failed/abandoned",
					killed[n-1], lastRunID, status, note)
			}
		}

		landed := false
		if ev.flush {
			flushTries++
			seen, err := huntFlush(ctx, watch, p)
			if err != nil {
				t.Fatalf("kill %d: watching pg_stat_activity: %v\nstderr:\n%s", i+1, err, p.stderr.String())
			}
			p.signal(syscall.SIGKILL)
			if landed, err = stillRunning(ctx, watch, seen); err != nil {
				t.Fatal(err)
			}
		} else {
			target := outcomesNow() + ev.inc
			if ev.inc > 0 {
				f.waitFor(fmt.Sprintf("kill %d: %d outcome rows", i+1, target), p, func() bool {
					return outcomesNow() >= target
				})
			}
			p.signal(syscall.SIGKILL)
		}
		if code := p.wait(); code != -1 {
			t.Fatalf("kill %d: the process exited %d before SIGKILL (the work ran out: too few rows for the schedule?)\nstderr:\n%s",
				i+1, code, p.stderr.String())
		}
		kills++
		// The dead process's claim stays until it expires (db.RunLeaseTTL
		// after its last renewal); until then a successor would rightly exit
		// 3. Expire it, as that much time would.
		if !runLockHeld(f) {
			t.Fatalf("kill %d: the killed process's claim vanished before it expired", i+1)
		}
		f.expireClaim()
		if landed {
			flushLanded++
		}
		killed = append(killed, lastRunID)
		// A flush kill that did not land in a flush is retried, bounded.
		if ev.flush && !landed && flushTries < maxFlushAttempts &&
			flushLanded+countFlushLeft(events[i+1:]) < size.minFlush+1 {
			events = append(events, crashEvent{flush: true})
		}
	}
	t.Logf("%d kills, %d of them while an outcome flush was running (%d flush hunts); %d outcome rows, %d requests so far",
		kills, flushLanded, flushTries, outcomesNow(), f.sim.Stats().Total)
	if kills < 20 {
		t.Errorf("%d kills, want at least 20", kills)
	}
	if flushLanded < size.minFlush {
		t.Errorf("only %d kills landed while an outcome flush was running, want at least %d", flushLanded, size.minFlush)
	}

	// Finish the logical run.
	f.rerunUntilDone(10, nil, crashArgs...)
	checkCrashState(t, f, rows, killed)

	// A rerun after success sends nothing.
	before := f.sim.Stats().Total
	if p, code := f.run(nil, crashArgs...); code != 0 || f.sim.Stats().Total != before {
		t.Errorf("rerun after success: exit %d, %d requests; want 0 and none\nstderr:\n%s", code,
			f.sim.Stats().Total-before, p.stderr.String())
	}
}

// runLockHeld reports whether some process holds a live run claim (a
// reconcile_run_lease row that has not expired) on the fixture's database.
func runLockHeld(f *fixture) bool {
	return f.count(`SELECT count(*) FROM reconcile_run_lease WHERE name = $1 AND expires_at > now()`, db.RunLockName) > 0
}

// expireClaim stands in for the passage of db.RunLeaseTTL after a holder
// died: its claim expires (by the database's clock) and the next run may
// take it over.
func (f *fixture) expireClaim() {
	f.t.Helper()
	f.exec(`UPDATE reconcile_run_lease SET expires_at = now() WHERE expires_at > now()`)
}

func countFlushLeft(evs []crashEvent) int {
	n := 0
	for _, e := range evs {
		if e.flush {
			n++
		}
	}
	return n
}

// huntFlush polls pg_stat_activity as fast as one connection answers (no
// sleeping: a flush of a few rows lasts a few milliseconds) until the
// job's outcome write is seen running. It fails when the job exits first or
// after pollDeadline.
func huntFlush(ctx context.Context, conn *pgx.Conn, p *proc) (flushSeen, error) {
	deadline := time.NewTimer(pollDeadline)
	defer deadline.Stop()
	for {
		s, ok, err := activeFlush(ctx, conn)
		if err != nil || ok {
			return s, err
		}
		select {
		case <-p.done:
			return s, fmt.Errorf("the job exited (%v) before an outcome flush was seen\nstderr:\n%s", p.err, p.stderr.String())
		case <-deadline.C:
			return s, fmt.Errorf("no outcome flush seen within %v", pollDeadline)
		default:
		}
	}
}

// checkCrashState compares the database and the simulator row by row.
func checkCrashState(t *testing.T, f *fixture, rows []row, killed []int64) {
	t.Helper()
	// Every desired row is done, and the simulator holds exactly the desired
	// configs, each created by exactly one successful Add.
	st := f.checkAllDone(rows)
	f.checkSimConfigs(rows)
	for _, r := range rows {
		if n := f.sim.SuccessfulAdds(r.Domain); n != 1 {
			t.Errorf("%s: %d successful Adds, want exactly 1", r.Domain, n)
		}
	}

	// No (run, domain) twice; every run's counters equal its outcome rows.
	if n := f.count(`SELECT count(*) FROM (SELECT 1 FROM reconcile_outcomes GROUP BY run_id, domain_name
		HAVING count(*) > 1) x`); n != 0 {
		t.Errorf("%d (run, domain) pairs with more than one outcome", n)
	}
	type counts struct{ applied, exists, updated, invalid, failed int64 }
	q, err := f.db.Pool.Query(context.Background(), `SELECT r.id, r.applied, r.already_exists, r.updated, r.invalid, r.failed,
		count(o.id) FILTER (WHERE o.outcome = 'applied'), count(o.id) FILTER (WHERE o.outcome = 'already_exists'),
		count(o.id) FILTER (WHERE o.outcome = 'updated'), count(o.id) FILTER (WHERE o.outcome = 'invalid'),
		count(o.id) FILTER (WHERE o.outcome = 'failed'), count(o.id) FILTER (WHERE o.outcome NOT IN
		  ('applied', 'already_exists', 'updated', 'invalid', 'failed'))
		FROM reconcile_runs r LEFT JOIN reconcile_outcomes o ON o.run_id = r.id GROUP BY r.id ORDER BY r.id`)
	if err != nil {
		t.Fatal(err)
	}
	var id, other int64
	var c, o counts
	if _, err := pgx.ForEachRow(q, []any{&id, &c.applied, &c.exists, &c.updated, &c.invalid, &c.failed,
		&o.applied, &o.exists, &o.updated, &o.invalid, &o.failed, &other}, func() error {
		if c != o || other != 0 {
			t.Errorf("run %d: counters %+v, outcome rows %+v (+%d of other kinds)", id, c, o, other)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Every killed run was marked failed (abandoned) and finished.
	runs := map[int64]runRow{}
	for _, r := range f.runs() {
		runs[r.ID] = r
	}
	for _, k := range killed {
		if r := runs[k]; r.Status != db.RunFailed || !r.Finished || !strings.Contains(r.Note, "abandoned") {
			t.Errorf("killed run %d: %+v, want failed, finished, note about abandoned", k, r)
		}
	}

	// Every config the simulator applied has a done outcome; an applied
	// outcome names the request that applied the config; a config applied
	// by a request whose answer never arrived (lost, or the client gone)
	// came back as already_exists.
	applied := appliedEntries(f.sim)
	done := map[string][]outcome{}
	for _, o := range f.outcomes() {
		if isDone(o.Outcome) {
			done[o.Domain] = append(done[o.Domain], o)
		}
	}
	unanswered := 0
	for _, r := range rows {
		e, ok := applied[r.Domain]
		if !ok {
			t.Errorf("%s: the simulator never applied it; status %+v", r.Domain, st[r.Domain])
			continue
		}
		outs := done[r.Domain]
		if len(outs) == 0 {
			t.Errorf("%s: applied by request %s, but no done outcome", r.Domain, e.RequestID)
			continue
		}
		if e.Status != 200 {
			unanswered++
		}
		for _, o := range outs {
			switch {
			case o.Outcome == "applied" && o.RequestID != e.RequestID:
				t.Errorf("%s: applied outcome (run %d) names request %q, the config was applied by %q",
					r.Domain, o.RunID, o.RequestID, e.RequestID)
			case o.Outcome == "applied" && e.Status != 200:
				t.Errorf("%s: outcome applied (run %d), but the applying request got no answer (fault %q)",
					r.Domain, o.RunID, e.Fault)
			case o.Outcome == "updated":
				t.Errorf("%s: outcome updated (run %d); nothing changed, want applied or already_exists", r.Domain, o.RunID)
			}
		}
	}
	byFault := f.sim.Stats().ByFault
	t.Logf("%d configs applied without an answer; faults %v; %d runs", unanswered, byFault, len(runs))
	if byFault[livesim.FaultLostAnswer] == 0 || byFault[livesim.FaultServerError] == 0 || byFault[livesim.FaultReset] == 0 {
		t.Errorf("faults injected %v: want lost answers, server errors and resets", byFault)
	}
}
