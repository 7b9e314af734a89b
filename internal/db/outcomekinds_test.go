package db_test

import (
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

var quoted = regexp.MustCompile(`'([a-z_]+)'`)

// outcomesIn returns the sorted quoted outcome names in a SQL definition.
func outcomesIn(def string) []string {
	var out []string
	for _, m := range quoted.FindAllStringSubmatch(def, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func names(os []model.Outcome) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = string(o)
	}
	slices.Sort(out)
	return out
}

// TestOutcomeKindsMatchTheSchema: the database agrees with model.Outcomes,
// the one definition of every outcome and its properties. A new outcome, or
// a changed property, that is not carried into the migrations fails here.
func TestOutcomeKindsMatchTheSchema(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	all := names(model.OutcomesWhere(func(model.OutcomeKind) bool { return true }))
	notDone := names(model.OutcomesWhere(func(k model.OutcomeKind) bool { return k.NotDone }))

	var check string
	if err := pool.QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conname = 'reconcile_outcomes_outcome_check'`).Scan(&check); err != nil {
		t.Fatal(err)
	}
	if got := outcomesIn(check); !slices.Equal(got, all) {
		t.Errorf("CHECK constraint allows %v, model.Outcomes has %v", got, all)
	}
	var index string
	if err := pool.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'reconcile_outcomes_not_done_idx'`).Scan(&index); err != nil {
		t.Fatal(err)
	}
	if got := outcomesIn(index); !slices.Equal(got, notDone) {
		t.Errorf("not-done index covers %v, NotDone outcomes are %v", got, notDone)
	}

	// Every outcome has a run counter, and the summary view's totals add
	// the Done and NotDone ones.
	run := beginRun(t, pool)
	var c db.RunCounters
	var wantDone, wantNotDone int64
	sets := ""
	for i, k := range model.Outcomes() {
		v := int64(1) << i
		sets += fmt.Sprintf(", %s = %d", k.Outcome, v)
		if k.Done {
			wantDone += v
		}
		if k.NotDone {
			wantNotDone += v
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE reconcile_runs SET requests = 0`+sets+` WHERE id = $1`, run); err != nil {
		t.Fatal(err)
	}
	r, err := db.Run(ctx, pool, run)
	if err != nil {
		t.Fatal(err)
	}
	c = r.Counts
	for i, k := range model.Outcomes() {
		if got := c.Count(k.Outcome); got != int64(1)<<i {
			t.Errorf("RunCounters.Count(%s) = %d, want %d", k.Outcome, got, int64(1)<<i)
		}
	}
	var done, notDoneN int64
	if err := pool.QueryRow(ctx, `SELECT done, not_done FROM reconcile_run_summary WHERE run_id = $1`, run).Scan(&done, &notDoneN); err != nil {
		t.Fatal(err)
	}
	if done != wantDone || notDoneN != wantNotDone {
		t.Errorf("reconcile_run_summary done %b, not_done %b; want %b, %b", done, notDoneN, wantDone, wantNotDone)
	}

	// One outcome of each kind, each for a domain whose write was marked
	// first: the status view and the failures view follow the properties.
	run = beginRun(t, pool)
	var rs []model.Result
	var intents []model.Intent
	for _, k := range model.Outcomes() {
		d := string(k.Outcome) + ".example.com"
		upsertDesired(t, pool, desired{domain: d, url: "https://h.example.com/" + d})
		rs = append(rs, model.Result{Domain: d, Outcome: k.Outcome, Fingerprint: fingerprintOf(t, pool, d),
			ErrorCode: "Code", ErrorMessage: "message", Attempts: 1})
		intents = append(intents, model.Intent{Domain: d, Fingerprint: fingerprintOf(t, pool, d)})
	}
	if err := db.MarkSending(ctx, pool, intents); err != nil {
		t.Fatal(err)
	}
	w, err := db.WriteOutcomes(ctx, pool, run, rs, db.RunCounters{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range model.Outcomes() {
		d := string(k.Outcome) + ".example.com"
		if w[k.Outcome] != 1 {
			t.Errorf("Written[%s] = %d, want 1", k.Outcome, w[k.Outcome])
		}
		var isDone, pending, remote, unconfirmed bool
		if err := pool.QueryRow(ctx, `SELECT done, pending, remote_exists, unconfirmed FROM snapshot_callback_status
			WHERE domain_name = $1`, d).Scan(&isDone, &pending, &remote, &unconfirmed); err != nil {
			t.Fatal(err)
		}
		wantRemote := k.Remote == model.RemoteExists // a marked domain without a state before: unknown is false
		if isDone != k.Done || pending != k.Pending || remote != wantRemote || unconfirmed == k.Confirms {
			t.Errorf("%s: done %v pending %v remote_exists %v unconfirmed %v; want %v %v %v %v",
				k.Outcome, isDone, pending, remote, unconfirmed, k.Done, k.Pending, wantRemote, !k.Confirms)
		}
	}
	rows, err := pool.Query(ctx, `SELECT DISTINCT outcome FROM reconcile_failures_by_code WHERE run_id = $1`, run)
	if err != nil {
		t.Fatal(err)
	}
	var failing []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			t.Fatal(err)
		}
		failing = append(failing, o)
	}
	slices.Sort(failing)
	if !slices.Equal(failing, notDone) {
		t.Errorf("reconcile_failures_by_code lists %v, NotDone outcomes are %v", failing, notDone)
	}
}

// TestMarkSendingAndWritten: a marked domain is not done until an answer
// proves its values, and WriteOutcomes reports what the run holds, not what
// it was handed.
func TestMarkSendingAndWritten(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	const d = "m.example.com"
	upsertDesired(t, pool, desired{domain: d, url: "https://h.example.com/1"})
	record(t, pool, d, model.OutcomeApplied)
	fp1 := fingerprintOf(t, pool, d)
	upsertDesired(t, pool, desired{domain: d, url: "https://h.example.com/2"})
	fp2 := fingerprintOf(t, pool, d)
	if err := db.MarkSending(ctx, pool, []model.Intent{{Domain: d, Fingerprint: fp2}}); err != nil {
		t.Fatal(err)
	}
	upsertDesired(t, pool, desired{domain: d, url: "https://h.example.com/1"}) // reverted
	rows := allPending(t, pool, 10)
	if len(rows) != 1 || !rows[0].OtherUnconfirmed || !rows[0].Applied {
		t.Fatalf("after a marked write and a revert: pending rows %+v, want the row, Applied and OtherUnconfirmed", rows)
	}
	if err := db.MarkSending(ctx, pool, []model.Intent{{Domain: d, Fingerprint: fp1}, {Domain: d, Fingerprint: fp1}}); err == nil {
		t.Fatal("MarkSending accepted a domain twice")
	}

	run := beginRun(t, pool)
	res := model.Result{Domain: d, Outcome: model.OutcomeUpdated, Fingerprint: fp1, Attempts: 1}
	if _, err := db.WriteOutcomes(ctx, pool, run, []model.Result{res}, db.RunCounters{}); err != nil {
		t.Fatal(err)
	}
	if rows := allPending(t, pool, 10); len(rows) != 0 {
		t.Fatalf("after updated: pending %+v, want none", rows)
	}
	// A second outcome for the domain in the same run is not stored; what
	// the run holds is reported.
	del := model.Result{Domain: d, Outcome: model.OutcomeDeleted, Fingerprint: fp1, Attempts: 1}
	w, err := db.WriteOutcomes(ctx, pool, run, []model.Result{del}, db.RunCounters{})
	if err != nil {
		t.Fatal(err)
	}
	if w[model.OutcomeDeleted] != 0 || w[model.OutcomeUpdated] != 1 {
		t.Fatalf("Written = %v, want the stored updated, no deleted", w)
	}
	r, err := db.Run(ctx, pool, run)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.Deleted != 0 || r.Counts.Updated != 1 {
		t.Fatalf("run counts %+v", r.Counts)
	}
	if n, err := db.CountPrune(ctx, pool, run); err != nil || n != 0 {
		t.Fatalf("CountPrune = %d, %v", n, err)
	}
}
