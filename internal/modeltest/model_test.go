package modeltest

// TestModelRandomized: seeded random sequences of steps over a small set of
// domains — inserts, edits (notify_url, auth and key, region), reverts to an
// earlier value set, deletes of desired rows — interleaved with runs of the
// job under the simulator's fault profiles: lost answers (applied, answer
// lost), 5xx, resets, hangs past a short --request-timeout, SIGKILL of a
// subprocess at a chosen request, a domain-scoped 403 Forbidden.RAM, and
// throttling (simulator limit below --rate); runs use --prune,
// --verify-existing and --max-attempts 1, 2, 3 or 5 at random. Only the job
// writes to the cloud, except that one or two domains may hold their config
// (equal to their first desired values) before the first run.
//
// After every run:
//
//  1. done is true: every row snapshot_callback_status reports done equals
//     the simulator's config of its domain (URL, NotifyReqAuth, and the key
//     when auth is on);
//  2. no row is silently lost: a valid desired row is done or pending; an
//     invalid one is never done and, unless pending, its outcome is
//     invalid; a run that exited 0 left every row done; a run that finished
//     (exit 0 or 1) recorded an outcome for every row pending when it began;
//  3. no domain got two successful Adds, unless its config was deleted in
//     between (Adds <= 1 + successful Deletes; with only the job writing to
//     the simulator this can fail only through a simulator change), and a
//     run sends requests only for rows pending when it began and, with
//     --prune, for domains no longer desired (a done row is left alone);
//  4. the simulator never saw more than --rate requests in one 1-second
//     window of arrivals (less arrivalSkew);
//  6. every failed outcome has an error_code (a failure says why);
//
// and after the last step, with the faults stopped:
//
//  5. at most maxCleanRuns fault-free runs with --max-attempts 5 bring every
//     valid desired row to done, and one more run sends no request.
//
// A run's exit code is information (printed in the trace), not a failure:
// only the invariants fail the test. The sequences are generated from the
// seed alone (gen_test.go), so a seed replays the same steps; what the
// job's worker pool does in what order is up to the scheduler.
//
// Sizes: sequencesCI sequences in the normal test command, sequencesLong
// with RECONCILE_LONG_TESTS=1 (scripts/long-tests.sh). RECONCILE_MODEL_SEED
// replays one sequence; RECONCILE_MODEL_SEQUENCES overrides the count;
// RECONCILE_MODEL_KEEP_GOING=1 runs each sequence to its end after a
// violation (each distinct violation reported once).
//
// TestModelRegressions: the hand-written sequences of the bugs the
// randomized test was written to find, each a named subtest.

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/livesim"
)

const (
	envLongTests = "RECONCILE_LONG_TESTS"
	envSeed      = "RECONCILE_MODEL_SEED"
	envSequences = "RECONCILE_MODEL_SEQUENCES"
	// envKeepGoing=1: a sequence goes on after a violation (reporting each
	// distinct one once) instead of stopping at the first.
	envKeepGoing = "RECONCILE_MODEL_KEEP_GOING"

	// firstSeed is the seed of the first sequence; sequence i has seed
	// firstSeed+i.
	firstSeed     = 1
	sequencesCI   = 8
	sequencesLong = 50
)

func envInt(t *testing.T, name string) (int64, bool) {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return v, true
}

func TestModelRandomized(t *testing.T) {
	t.Parallel()
	size, n := sizeCI, int64(sequencesCI)
	if os.Getenv(envLongTests) == "1" {
		size, n = sizeLong, sequencesLong
	}
	if v, ok := envInt(t, envSequences); ok {
		n = v
	}
	seeds := make([]int64, 0, n)
	for i := range n {
		seeds = append(seeds, firstSeed+i)
	}
	if v, ok := envInt(t, envSeed); ok {
		seeds = []int64{v}
	}
	bin := newBinary(t)
	var failed []int64
	start := time.Now()
	for _, seed := range seeds {
		seq := generate(seed, size)
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d (replay with %s=%d): %d steps", seed, envSeed, seed, len(seq.steps))
			runSequence(t, seq, bin)
		})
		if !ok {
			failed = append(failed, seed)
		}
	}
	t.Logf("%d sequences in %v", len(seeds), time.Since(start).Round(time.Millisecond))
	if len(failed) > 0 {
		t.Logf("failing seeds: %v (replay one with %s=<seed>)", failed, envSeed)
	}
}

// Values of the regression sequences.
var (
	regV1 = vals{URL: "https://hooks.example.com/r/v1"}
	regV2 = vals{URL: "https://hooks.example.com/r/v2", Auth: true, Key: "regressionKeyAbcV2"}
	regV3 = vals{URL: "https://hooks.example.com/r/v3", Auth: true, Key: "regressionKeyAbcV3"}
)

func lostAnswers(d string, action string) map[string][]livesim.DomainFault {
	return map[string][]livesim.DomainFault{d: {{Fault: livesim.FaultLostAnswer, Action: action}}}
}

func regRun(seed int64, maxAttempts int, mod func(*runSpec)) step {
	r := cleanRun(seed)
	r.maxAttempts = maxAttempts
	if mod != nil {
		mod(&r)
	}
	return step{kind: stRun, run: r}
}

func TestModelRegressions(t *testing.T) {
	t.Parallel()
	const a, b = "a.model.example.com", "b.model.example.com"
	other := map[string]vals{b: {URL: "https://hooks.example.com/b/v1"}}
	tests := []struct {
		name   string
		bug    string
		steps  []step
		strict bool
	}{
		{
			name: "lost_add_then_edit",
			bug: "Add applied but its answer lost (row failed); the row is edited; the next Add answers " +
				"ConfigAlreadyExists and is recorded already_exists (done) while the cloud holds the old values",
			steps: []step{
				{kind: stInsert, domain: a, vals: regV1},
				regRun(1, 1, func(r *runSpec) { r.profile = "lost Add"; r.domainFaults = lostAnswers(a, livesim.ActionAdd) }),
				{kind: stEdit, domain: a, vals: regV2},
				regRun(2, 5, nil),
			},
		},
		{
			name: "lost_update_then_revert",
			bug: "done at v2; edited to v3; Update applied but its answer lost (failed); edited back to v2: " +
				"the next run sends nothing (done_fingerprint is v2's) while the cloud holds v3",
			steps: []step{
				{kind: stInsert, domain: a, vals: regV1},
				regRun(1, 5, nil),
				{kind: stEdit, domain: a, vals: regV2},
				regRun(2, 5, nil),
				{kind: stEdit, domain: a, vals: regV3},
				regRun(3, 2, func(r *runSpec) { r.profile = "lost Update"; r.domainFaults = lostAnswers(a, livesim.ActionUpdate) }),
				{kind: stEdit, domain: a, vals: regV2, note: "revert"},
				regRun(4, 5, nil),
			},
		},
		{
			name: "update_not_found_last_attempt",
			bug: "a pruned domain whose Delete answer was lost comes back with new values: Update answers " +
				"ConfigNotFound on its last allowed attempt (--max-attempts 1), no Add is sent, and the row is " +
				"stored failed with a NULL error_code",
			steps: append(prunedWithLostDelete(a), []step{
				{kind: stInsert, domain: a, vals: regV2, note: "re-insert with new values"},
				regRun(3, 1, nil),
			}...),
		},
		{
			name: "update_not_found_after_5xx",
			bug:  "as update_not_found_last_attempt, with --max-attempts 2: the Update answers 5xx, then ConfigNotFound on attempt 2",
			steps: append(prunedWithLostDelete(a), []step{
				{kind: stInsert, domain: a, vals: regV2, note: "re-insert with new values"},
				regRun(3, 2, func(r *runSpec) {
					r.profile = "one 5xx"
					r.domainFaults = map[string][]livesim.DomainFault{a: {{Fault: livesim.FaultServerError, Action: livesim.ActionUpdate, Times: 1}}}
				}),
			}...),
		},
		{
			name: "lost_delete_then_reinsert_same",
			bug: "a pruned domain whose Delete answer was lost comes back with the same values: it is done at " +
				"once (its old done outcome) while the cloud has no config",
			steps: append(prunedWithLostDelete(a), []step{
				{kind: stInsert, domain: a, vals: regV1, note: "re-insert with the same values"},
				regRun(3, 5, nil),
			}...),
		},
		{
			name: "forbidden_one_domain",
			bug: "a 403 Forbidden.RAM for one domain stops the whole run (exit 2): the other pending rows get " +
				"no outcome (checked strictly here: that row failed, the run goes on)",
			strict: true,
			steps: []step{
				{kind: stInsert, domain: a, vals: regV1},
				regRun(1, 2, func(r *runSpec) {
					r.profile, r.concurrency = "Forbidden.RAM for "+a, 1
					r.force = map[string]livesim.ForcedError{a: {Status: 403, Code: "Forbidden.RAM",
						Message: "User not authorized to operate on the specified resource."}}
				}),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq := sequence{initial: map[string]vals{}, preExist: map[string]vals{}, steps: tt.steps, final: cleanRun(100)}
			for d, v := range other {
				seq.initial[d] = v
			}
			if tt.name == "forbidden_one_domain" {
				// Several other rows, sorted after a: with concurrency 1
				// a's 403 comes first.
				for i := range 6 {
					seq.initial[fmt.Sprintf("c%d.model.example.com", i)] = vals{URL: fmt.Sprintf("https://hooks.example.com/c/%d", i)}
				}
			}
			t.Logf("the bug: %s", tt.bug)
			w := newWorld(t, seq, nil)
			w.strictStops = tt.strict
			for _, st := range seq.steps {
				if !w.step(st) {
					return
				}
			}
			w.finish()
		})
	}
}

// prunedWithLostDelete is the start the Delete-related regressions share:
// domain a is added and done, deleted from the desired table, then pruned
// by a run whose Delete is applied but its answer lost.
func prunedWithLostDelete(a string) []step {
	return []step{
		{kind: stInsert, domain: a, vals: regV1},
		regRun(1, 5, nil),
		{kind: stDelete, domain: a},
		regRun(2, 1, func(r *runSpec) {
			r.profile, r.prune = "lost Delete", true
			r.domainFaults = lostAnswers(a, livesim.ActionDelete)
		}),
	}
}
