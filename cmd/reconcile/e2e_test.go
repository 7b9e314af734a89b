package main

// End-to-end tests: the real binary (built by TestMain) against a real
// Postgres database and the in-process simulator, checked against
// the behaviour docs/ describes. No test sleeps to synchronise: each waits for an
// observable condition (database rows, log lines, process exit).

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/app"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/testdb"
)

// fastArgs make a run quick against an unlimited simulator.
var fastArgs = []string{"--rate", "200", "--allow-rate-above-limit", "--backoff-base", "20ms", "--backoff-max", "200ms",
	"--request-timeout", "2s", "--grace", "5s", "--flush-interval", "100ms"}

func runArgs(extra ...string) []string {
	return append(append([]string{"run"}, fastArgs...), extra...)
}

// inFlightDomain returns the domain of a request the simulator is working
// on (no answer and no fault yet), or "".
func inFlightDomain(sim *livesim.Server) string {
	log := sim.Log()
	for i := len(log) - 1; i >= 0; i-- {
		if e := log[i]; e.Status == 0 && e.Fault == livesim.FaultNone {
			return e.Domain
		}
	}
	return ""
}

// appliedEntries returns, per domain, the simulator log entry of the request
// that created or changed its config.
func appliedEntries(sim *livesim.Server) map[string]livesim.Entry {
	out := map[string]livesim.Entry{}
	for _, e := range sim.Log() {
		if e.Applied {
			out[e.Domain] = e
		}
	}
	return out
}

func TestKill9AndRerun(t *testing.T) {
	t.Parallel()
	for _, killAt := range []int{50, 200, 400} {
		t.Run(fmt.Sprintf("after_%d_outcomes", killAt), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, livesim.Options{
				Seed:    int64(1000 + killAt),
				Latency: livesim.Latency{Median: 5 * time.Millisecond, P99: 50 * time.Millisecond},
				Faults:  livesim.Faults{LostAnswer: 0.05, ServerError: 0.05, Reset: 0.02},
			})
			rows := genRows("k", 600)
			f.insert(rows)
			args := []string{"run", "--rate", "150", "--allow-rate-above-limit", "--backoff-base", "20ms",
				"--backoff-max", "200ms", "--request-timeout", "2s", "--grace", "5s", "--flush-interval", "100ms"}

			p := f.start(nil, args...)
			f.waitFor(fmt.Sprintf("%d outcomes", killAt), p, func() bool {
				return f.count(`SELECT count(*) FROM reconcile_outcomes`) >= killAt
			})
			p.signal(syscall.SIGKILL)
			if code := p.wait(); code != -1 {
				t.Fatalf("killed run exited %d before SIGKILL took effect; the kill point was missed", code)
			}

			runs := f.runs()
			if len(runs) != 1 || runs[0].Status != db.RunRunning || runs[0].Finished {
				t.Fatalf("after SIGKILL: runs %+v, want one unfinished run with status running", runs)
			}
			killed := runs[0].ID
			atKill := f.count(`SELECT count(*) FROM reconcile_outcomes WHERE run_id = $1`, killed)
			if atKill >= len(rows) {
				t.Fatalf("the killed run had recorded all %d outcomes: the kill came too late to test anything", atKill)
			}
			t.Logf("killed run %d with %d outcomes recorded, %d requests seen by the simulator", killed, atKill, f.sim.Stats().Total)

			// The dead process's claim holds until it expires: a run started
			// at once exits 3 and sends nothing.
			sentAtKill := f.sim.Stats().Total
			if p, code := f.run(nil, args...); code != 3 || f.sim.Stats().Total != sentAtKill {
				t.Fatalf("run right after the kill: exit %d, %d requests; want 3 and none\nstderr:\n%s",
					code, f.sim.Stats().Total-sentAtKill, p.stderr.String())
			}
			f.expireClaim() // as db.RunLeaseTTL would
			f.rerunUntilDone(5, nil, args...)

			st := f.checkAllDone(rows)
			f.checkSimConfigs(rows)

			// The killed run was marked failed (abandoned) by the next run,
			// and its outcomes are kept.
			runs = f.runs()
			if k := runs[0]; k.ID != killed || k.Status != db.RunFailed || !k.Finished || !strings.Contains(k.Note, "abandoned") {
				t.Errorf("killed run after reruns: %+v, want status failed, finished, note about abandoned", k)
			}
			if n := f.count(`SELECT count(*) FROM reconcile_outcomes WHERE run_id = $1`, killed); n != atKill {
				t.Errorf("the killed run's outcomes went from %d to %d; outcomes are append-only", atKill, n)
			}
			if last := runs[len(runs)-1]; last.Status != db.RunSucceeded {
				t.Errorf("last run: %+v, want succeeded", last)
			}

			// Every config the simulator applied is accounted for: an answer
			// that never arrived (lost, or the process killed) must come back
			// as already_exists; an applied outcome names the request that
			// applied it.
			applied := appliedEntries(f.sim)
			outs := f.outcomes()
			doneOutcome := map[string]outcome{}
			for _, o := range outs {
				if isDone(o.Outcome) {
					if prev, dup := doneOutcome[o.Domain]; dup {
						t.Errorf("%s: done twice: %+v and %+v", o.Domain, prev, o)
					}
					doneOutcome[o.Domain] = o
				}
			}
			lost := 0
			for _, r := range rows {
				e, ok := applied[r.Domain]
				o := doneOutcome[r.Domain]
				if !ok {
					t.Errorf("%s: no request applied its config, yet its outcome is %q", r.Domain, st[r.Domain].Outcome)
					continue
				}
				if e.Status != 200 {
					lost++
					if o.Outcome != "already_exists" {
						t.Errorf("%s: the applying request got no answer (fault %q), outcome %+v, want already_exists",
							r.Domain, e.Fault, o)
					}
				}
				if o.Outcome == "applied" && o.RequestID != e.RequestID {
					t.Errorf("%s: applied outcome has request_id %q, the simulator applied it with %q", r.Domain, o.RequestID, e.RequestID)
				}
			}
			t.Logf("%d configs applied without an answer; %d runs", lost, len(runs))

			// A rerun after success sends nothing.
			before := f.sim.Stats().Total
			p, code := f.run(nil, args...)
			if code != 0 {
				t.Errorf("rerun after success: exit %d, want 0\nstderr:\n%s", code, p.stderr.String())
			}
			if after := f.sim.Stats().Total; after != before {
				t.Errorf("rerun after success sent %d requests, want 0", after-before)
			}
		})
	}
}

func TestConcurrentRunsSecondExits3(t *testing.T) {
	t.Parallel()
	t.Run("lock_held_by_test", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, livesim.Options{})
		rows := genRows("l", 10)
		f.insert(rows)
		ctx := context.Background()
		lock, err := db.AcquireRunLock(ctx, f.db.Config(t))
		if err != nil {
			t.Fatalf("AcquireRunLock: %v", err)
		}
		p, code := f.run(nil, runArgs()...)
		if code != 3 {
			t.Errorf("run while the lock is held: exit %d, want 3\nstderr:\n%s", code, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), "holds the lock") {
			t.Errorf("stderr does not say another run holds the lock:\n%s", p.stderr.String())
		}
		if n := f.sim.Stats().Total; n != 0 {
			t.Errorf("run while the lock is held sent %d requests, want 0", n)
		}
		if n := f.count(`SELECT count(*) FROM reconcile_runs`); n != 0 {
			t.Errorf("run while the lock is held created %d run rows, want 0", n)
		}
		if n := f.count(`SELECT count(*) FROM reconcile_outcomes`); n != 0 {
			t.Errorf("run while the lock is held wrote %d outcomes, want 0", n)
		}
		if err := lock.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		// Once the lock is free the same command works.
		p, code = f.run(nil, runArgs()...)
		if code != 0 {
			t.Fatalf("run after the lock was released: exit %d, want 0\nstderr:\n%s", code, p.stderr.String())
		}
		f.checkAllDone(rows)
	})

	t.Run("two_processes", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, livesim.Options{})
		rows := genRows("c", 40)
		f.insert(rows)
		a := f.start(nil, "run", "--rate", "5", "--flush-interval", "100ms", "--grace", "5s")
		f.waitFor("run A's row to be running", a, func() bool {
			return f.count(`SELECT count(*) FROM reconcile_runs WHERE status = 'running'`) == 1
		})
		a.waitLog("run started", func(l logLine) bool { return l.msg() == "run started" })

		b, code := f.run(nil, "run", "--rate", "5")
		if code != 3 {
			t.Errorf("second run: exit %d, want 3\nstderr:\n%s", code, b.stderr.String())
		}
		if a.exited() {
			t.Fatalf("run A ended before run B did: the runs did not overlap\nA's stderr:\n%s", a.stderr.String())
		}
		if n := f.count(`SELECT count(*) FROM reconcile_runs`); n != 1 {
			t.Errorf("%d run rows while A runs and after B, want 1 (B must create none)", n)
		}

		a.signal(syscall.SIGTERM)
		a.expectExit(4)
		runs := f.runs()
		if len(runs) != 1 || runs[0].Status != db.RunInterrupted || !runs[0].Finished {
			t.Fatalf("runs %+v, want A's only, interrupted and finished", runs)
		}
		ra := runs[0]
		// Everything the simulator saw was A's: B sent nothing.
		if total := f.sim.Stats().Total; int64(total) != ra.Requests {
			t.Errorf("simulator saw %d requests, run A counted %d (B must send none)", total, ra.Requests)
		}
		outs := f.outcomes()
		if len(outs) == 0 || int64(len(outs)) != ra.Applied {
			t.Errorf("%d outcomes, run A counted %d applied; want the same, above 0", len(outs), ra.Applied)
		}
		applied := appliedEntries(f.sim)
		for _, o := range outs {
			if o.RunID != ra.ID || o.Outcome != "applied" || o.RequestID != applied[o.Domain].RequestID {
				t.Errorf("outcome %+v: want run %d, applied, request_id %q", o, ra.ID, applied[o.Domain].RequestID)
			}
		}
		if len(applied) != len(outs) {
			t.Errorf("simulator applied %d configs, %d outcomes recorded", len(applied), len(outs))
		}
	})
}

func TestSIGTERMMidRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, livesim.Options{Seed: 3, Latency: livesim.Latency{Median: 20 * time.Millisecond, P99: 100 * time.Millisecond}})
	rows := genRows("s", 200)
	f.insert(rows)
	p := f.start(nil, "run", "--rate", "20", "--grace", "5s", "--flush-interval", "200ms")
	f.waitFor("20 outcomes", p, func() bool { return f.count(`SELECT count(*) FROM reconcile_outcomes`) >= 20 })
	// Signal while a request is in flight, so that the grace period matters.
	var inFlight string
	f.waitFor("a request in flight", p, func() bool {
		inFlight = inFlightDomain(f.sim)
		return inFlight != ""
	})
	p.signal(syscall.SIGTERM)
	p.expectExit(4)

	runs := f.runs()
	if len(runs) != 1 {
		t.Fatalf("runs %+v, want 1", runs)
	}
	r := runs[0]
	if r.Status != db.RunInterrupted || !r.Finished {
		t.Errorf("run after SIGTERM: %+v, want status interrupted with finished_at set", r)
	}
	summary := p.waitLog("the summary", func(l logLine) bool { return l.msg() == "summary" })
	if summary["status"] != db.RunInterrupted {
		t.Errorf("summary line %v, want status interrupted", summary)
	}
	sig := p.waitLog("the signal line", func(l logLine) bool { return l.msg() == app.MsgSignal })
	if sig["signal"] != "terminated signal received" || sig["grace"] != "5s" || sig["grace_deadline"] == nil {
		t.Errorf("signal line %v, want SIGTERM with grace 5s and its deadline", sig)
	}

	// Every request the simulator applied has its outcome: finished
	// requests are recorded.
	applied := appliedEntries(f.sim)
	outs := map[string]outcome{}
	for _, o := range f.outcomes() {
		outs[o.Domain] = o
	}
	if len(outs) >= len(rows) {
		t.Fatalf("all %d rows have outcomes: SIGTERM did not interrupt anything", len(outs))
	}
	for d, e := range applied {
		o, ok := outs[d]
		if !ok || o.Outcome != "applied" || o.RequestID != e.RequestID || o.RunID != r.ID {
			t.Errorf("%s: the simulator applied it (request %s), outcome %+v (present %v), want applied in run %d",
				d, e.RequestID, o, ok, r.ID)
		}
	}
	if len(applied) != len(outs) {
		t.Errorf("simulator applied %d configs, %d outcomes recorded", len(applied), len(outs))
	}
	if o := outs[inFlight]; o.Outcome != "applied" {
		t.Errorf("%s was in flight at SIGTERM; its outcome is %+v, want applied (in-flight requests may finish within --grace)", inFlight, o)
	}
	if total := f.sim.Stats().Total; int64(total) != r.Requests || r.Applied != int64(len(outs)) {
		t.Errorf("run counters %+v; simulator saw %d requests, %d outcomes recorded", r, total, len(outs))
	}
	for d, s := range f.statuses() {
		_, has := outs[d]
		if has == s.Pending {
			t.Errorf("%s: has outcome %v, pending %v; want pending exactly when no outcome", d, has, s.Pending)
		}
	}

	// A rerun does the rest, sending one request per remaining row.
	before := f.sim.Stats().Total
	p2, code := f.run(nil, runArgs()...)
	if code != 0 {
		t.Fatalf("rerun: exit %d, want 0\nstderr:\n%s", code, p2.stderr.String())
	}
	if sent := f.sim.Stats().Total - before; sent != len(rows)-len(outs) {
		t.Errorf("rerun sent %d requests, want %d (one per row without an outcome)", sent, len(rows)-len(outs))
	}
	f.checkAllDone(rows)
	f.checkSimConfigs(rows)
}

func TestWrongSecretExits2(t *testing.T) {
	t.Parallel()
	const right, wrong = "RightSecretValue0123456789xyz", "WrongSecretValue0123456789xyz"
	for _, alg := range []string{"", "v2"} {
		t.Run("signature_"+orDefault(alg, "v3"), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, livesim.Options{AccessKeyID: testKeyID, AccessKeySecret: right})
			f.secret = wrong
			rows := genRows("w", 500)
			f.insert(rows)
			// The default --rate (25/s: a request every 40 ms) with full
			// concurrency: the first refusal must stop the rest.
			p := f.start(nil, "run", "--concurrency", "32", "--signature-algorithm", alg)
			// Fail fast rather than wait for a job that goes on sending.
			f.waitFor("the run to end", nil, func() bool { return p.exited() || f.sim.Stats().Total > 5 })
			if n := f.sim.Stats().Total; n > 5 {
				t.Fatalf("simulator received %d requests (and counting), want 1 to 5", n)
			}
			code := p.wait()
			stderr := p.stderr.String()
			if code != 2 {
				t.Errorf("exit %d, want 2\nstderr:\n%s", code, stderr)
			}
			if n := f.sim.Stats().Total; n < 1 || n > 5 {
				t.Errorf("simulator received %d requests, want 1 to 5", n)
			}
			if !strings.Contains(strings.ToLower(stderr), "credentials refused") {
				t.Errorf("stderr does not say the credentials were refused:\n%s", stderr)
			}
			leaks := []string{right, wrong}
			for _, r := range rows {
				if r.Key != "" {
					leaks = append(leaks, r.Key)
				}
			}
			runs := f.runs()
			texts := map[string]string{"stderr": stderr, "stdout": p.stdout.String()}
			for _, r := range runs {
				texts[fmt.Sprintf("run %d note", r.ID)] = r.Note
			}
			checkNoLeak(t, texts, leaks)
			if n := f.count(`SELECT count(*) FROM reconcile_outcomes WHERE outcome = 'failed'`); n != 0 {
				t.Errorf("%d rows got outcome failed because of refused credentials, want 0", n)
			}
			if n := f.count(`SELECT count(*) FROM snapshot_callback_status WHERE pending`); n != len(rows) {
				t.Errorf("%d rows pending after the refused run, want all %d", n, len(rows))
			}
		})
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// secretForms returns s and the encodings it could leak in.
func secretForms(s string) []string {
	b := []byte(s)
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s),
		base64.StdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// checkNoLeak fails the test for every text (by name) that holds a form of
// a secret.
func checkNoLeak(t *testing.T, texts map[string]string, secrets []string) {
	t.Helper()
	var forms []string
	for _, s := range secrets {
		forms = append(forms, secretForms(s)...)
	}
	for name, text := range texts {
		for _, form := range forms {
			if i := strings.Index(text, form); i >= 0 {
				lo, hi := max(0, i-80), min(len(text), i+len(form)+80)
				t.Errorf("%s contains a secret (%q): ...%s...", name, form, text[lo:hi])
			}
		}
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	const authKey = "LeakCheckKey0123456789"
	const secret = "Leak/AK+Secret=0123456789abcdEF"
	const forced = "leak0007.e2e.example.com"
	f := newFixture(t, livesim.Options{
		AccessKeyID: testKeyID, AccessKeySecret: secret, Seed: 5,
		Latency: livesim.Latency{Median: 2 * time.Millisecond, P99: 20 * time.Millisecond},
		Faults:  livesim.Faults{Hang: 0.05, Reset: 0.1, ServerError: 0.1, LostAnswer: 0.05},
		ForceErrors: map[string]livesim.ForcedError{forced: {Status: 400, Code: "InvalidParameter", Times: 1,
			// An API that echoes the parameter it refuses.
			Message: "The NotifyAuthKey " + authKey + " (NotifyAuthKey=" + authKey + ") is not accepted."}},
	})
	rows := genRows("leak", 150)
	for i := range rows {
		rows[i].ReqAuth, rows[i].Key = true, authKey
	}
	f.insert(rows)
	args := runArgs("--request-timeout", "300ms")

	var procs []*proc
	p, code := f.run(nil, append(args, "--log-level", "debug")...)
	procs = append(procs, p)
	if code != 1 {
		t.Errorf("first run (debug): exit %d, want 1 (the forced error fails one row)\nstderr:\n%s", code, p.stderr.String())
	}
	procs = append(procs, f.rerunUntilDone(5, nil, args...)...)
	f.checkAllDone(rows)

	// The forced error was recorded, so its message went through the job.
	if n := f.count(`SELECT count(*) FROM reconcile_outcomes WHERE domain_name = $1 AND outcome = 'failed'
		AND error_code = 'InvalidParameter'`, forced); n != 1 {
		t.Errorf("%d failed InvalidParameter outcomes for %s, want 1", n, forced)
	}
	if st := f.sim.Stats(); st.ByFault[livesim.FaultHang] == 0 || st.ByFault[livesim.FaultReset] == 0 ||
		st.ByFault[livesim.FaultLostAnswer] == 0 || st.ByFault[livesim.FaultServerError] == 0 {
		t.Errorf("faults injected %v: want every kind at least once", st.ByFault)
	}

	texts := map[string]string{}
	for i, p := range procs {
		texts[fmt.Sprintf("run %d stderr", i+1)] = p.stderr.String()
		texts[fmt.Sprintf("run %d stdout", i+1)] = p.stdout.String()
	}
	for _, table := range []string{"reconcile_outcomes", "reconcile_runs", "snapshot_callback_status", "reconcile_domain_state"} {
		var dump string
		err := f.db.Pool.QueryRow(context.Background(),
			`SELECT coalesce(string_agg(row_to_json(x)::text, E'\n'), '') FROM `+table+` x`).Scan(&dump)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		if dump == "" && table != "reconcile_domain_state" {
			t.Errorf("%s is empty", table)
		}
		texts[table] = dump
	}
	checkNoLeak(t, texts, []string{authKey, secret})
	debugLines := 0
	logs, _ := procs[0].jsonLines()
	for _, l := range logs {
		if l.level() == "DEBUG" {
			debugLines++
		}
	}
	t.Logf("%d runs; %d debug lines in the first; faults %v", len(procs), debugLines, f.sim.Stats().ByFault)
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	bad := []row{
		{Domain: "badurl.e2e.example.com", URL: "ftp://hooks.example.com/x"},
		{Domain: "shortkey.e2e.example.com", URL: "https://hooks.example.com/x", ReqAuth: true, Key: "tooShort"},
		{Domain: "nokey.e2e.example.com", URL: "https://hooks.example.com/x", ReqAuth: true},
	}
	good := genRows("x", 10)
	cases := []struct {
		name       string
		unmigrated bool
		rows       []row
		env        []string
		args       []string
		want       int
		stderr     string // substring of stderr, case-insensitive
		requests   int    // -1: any
		// dbName, when set, replaces the database of DATABASE_URL.
		dbName string
	}{
		{name: "missing_schema", unmigrated: true, args: []string{"run"}, want: 2, stderr: "schema"},
		{name: "rate_above_limit", rows: good, args: []string{"run", "--rate", "31"}, want: 2, stderr: "--rate"},
		{name: "rate_above_limit_by_env", rows: good, env: []string{"RECONCILE_RATE=31"}, args: []string{"run"}, want: 2, stderr: "RECONCILE_RATE=31 is above"},
		{name: "flag_wins_over_env", rows: good, env: []string{"RECONCILE_RATE=31"}, args: []string{"run", "--rate", "30"}, want: 0, requests: len(good)},
		{name: "rate_zero", rows: good, args: []string{"run", "--rate", "0"}, want: 2, stderr: "--rate"},
		{name: "insecure_endpoint", rows: good, args: []string{"run", "--endpoint", "http://example.com:80"}, want: 2, stderr: "non-loopback host (requests carry credentials and auth keys); use https:// or allow insecure endpoints explicitly; give --insecure-endpoint"},
		{name: "concurrency_zero", rows: good, args: []string{"run", "--concurrency", "0"}, want: 2, stderr: "--concurrency"},
		{name: "unknown_flag", rows: good, args: []string{"run", "--no-such-flag"}, want: 2, stderr: "no-such-flag"},
		{name: "unknown_command", rows: good, args: []string{"frobnicate"}, want: 2, stderr: "unknown command"},
		{name: "no_command", rows: good, args: nil, want: 2, stderr: "usage"},
		{name: "invalid_rows_only", rows: bad, args: []string{"run"}, want: 1},
		{name: "all_fine", rows: good, args: []string{"run"}, want: 0, requests: len(good)},
		{name: "nothing_to_do", args: []string{"run"}, want: 0},
		{name: "dry_run_pending", rows: good, args: []string{"run", "--dry-run"}, want: 5, requests: 0},
		{name: "database_unreachable", rows: good, env: []string{"DATABASE_URL=postgres://reconcile@127.0.0.1:1/video?connect_timeout=5"},
			args: []string{"run"}, want: 6, stderr: "connecting to Postgres"},
		{name: "migrate_database_unreachable", env: []string{"DATABASE_URL=postgres://reconcile@127.0.0.1:1/video?connect_timeout=5"},
			args: []string{"migrate"}, want: 6, stderr: "connecting to Postgres"},
		{name: "unknown_database", rows: good, dbName: "reconcile_no_such_database", args: []string{"run"}, want: 2,
			stderr: "reconcile_no_such_database", requests: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var opts []testdb.Option
			if c.unmigrated {
				opts = append(opts, testdb.Unmigrated())
			}
			f := newFixture(t, livesim.Options{}, opts...)
			if len(c.rows) > 0 {
				f.insert(c.rows)
			}
			env := c.env
			if c.dbName != "" {
				cc := f.db.Config(t)
				env = append(env, fmt.Sprintf("DATABASE_URL=host=%s port=%d user=%s password='%s' dbname=%s sslmode=disable",
					cc.Host, cc.Port, cc.User, cc.Password, c.dbName))
			}
			p, code := f.run(env, c.args...)
			stderr := p.stderr.String()
			if code != c.want {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, c.want, stderr)
			}
			if c.stderr != "" && !strings.Contains(strings.ToLower(stderr), strings.ToLower(c.stderr)) {
				t.Errorf("stderr does not mention %q:\n%s", c.stderr, stderr)
			}
			if n := f.sim.Stats().Total; c.requests >= 0 && n != c.requests {
				t.Errorf("simulator received %d requests, want %d", n, c.requests)
			}
			if c.want == 0 || c.want == 1 {
				// Exit 0 and 1 are reported by log lines only, all JSON.
				if _, other := p.jsonLines(); len(other) > 0 {
					t.Errorf("stderr lines that are not JSON with RECONCILE_LOG_FORMAT=json: %q", other)
				}
			}
			if c.name == "invalid_rows_only" {
				for _, r := range c.rows {
					if s := f.statuses()[r.Domain]; s.Outcome != "invalid" || s.Pending {
						t.Errorf("%s: %+v, want invalid and not pending", r.Domain, s)
					}
				}
			}
		})
	}

	t.Run("migrate_twice", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, livesim.Options{}, testdb.Unmigrated())
		for i := 1; i <= 2; i++ {
			if p, code := f.run(nil, "migrate"); code != 0 {
				t.Fatalf("migrate #%d: exit %d, want 0\nstderr:\n%s", i, code, p.stderr.String())
			}
		}
		f.checkMigrated()
	})

	t.Run("migrate_concurrently", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, livesim.Options{}, testdb.Unmigrated())
		ps := []*proc{f.start(nil, "migrate"), f.start(nil, "migrate"), f.start(nil, "migrate")}
		for i, p := range ps {
			if code := p.wait(); code != 0 {
				t.Errorf("concurrent migrate #%d: exit %d, want 0\nstderr:\n%s", i+1, code, p.stderr.String())
			}
		}
		f.checkMigrated()
	})
}

// checkMigrated checks that the binary accepts the schema: a run over a few
// rows exits 0.
func (f *fixture) checkMigrated() {
	f.t.Helper()
	rows := genRows("m", 3)
	f.insert(rows)
	if p, code := f.run(nil, runArgs()...); code != 0 {
		f.t.Fatalf("run after migrate: exit %d, want 0\nstderr:\n%s", code, p.stderr.String())
	}
	f.checkAllDone(rows)
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, livesim.Options{})
	f.insert([]row{
		{Domain: "changed.dry.example.com", URL: "https://hooks.example.com/changed/v1"},
		{Domain: "same.dry.example.com", URL: "https://hooks.example.com/same"},
	})
	if p, code := f.run(nil, runArgs()...); code != 0 {
		t.Fatalf("setup run: exit %d, want 0\nstderr:\n%s", code, p.stderr.String())
	}
	f.exec(`UPDATE desired_snapshot_callbacks SET notify_url = 'https://hooks.example.com/changed/v2', updated_at = now()
		WHERE domain_name = 'changed.dry.example.com'`)
	f.insert([]row{
		{Domain: "new.dry.example.com", URL: "https://hooks.example.com/new"},
		{Domain: "bad.dry.example.com", URL: "ftp://hooks.example.com/bad"},
	})
	requests := f.sim.Stats().Total
	outcomes := f.count(`SELECT count(*) FROM reconcile_outcomes`)
	runsBefore := len(f.runs())

	p, code := f.run(nil, "run", "--dry-run")
	if code != 5 {
		t.Errorf("dry run with pending rows: exit %d, want 5 (as plan)\nstderr:\n%s", code, p.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(p.stdout.String()), "\n")
	slices.Sort(lines)
	want := []string{"add new.dry.example.com", `invalid row "bad.dry.example.com": notify_url`, "update changed.dry.example.com"}
	if len(lines) != len(want) {
		t.Errorf("dry run printed %q, want lines starting %q", lines, want)
	} else {
		for i := range want {
			if !strings.HasPrefix(lines[i], want[i]) {
				t.Errorf("dry run line %q, want one starting %q (all: %q)", lines[i], want[i], lines)
			}
		}
	}
	if n := f.sim.Stats().Total; n != requests {
		t.Errorf("dry run sent %d requests, want 0", n-requests)
	}
	if n := f.count(`SELECT count(*) FROM reconcile_outcomes`); n != outcomes {
		t.Errorf("dry run wrote %d outcomes, want 0", n-outcomes)
	}
	runs := f.runs()
	if len(runs) != runsBefore+1 {
		t.Fatalf("runs %+v: want one more than the %d before the dry run", runs, runsBefore)
	}
	if r := runs[len(runs)-1]; r.Status != db.RunDryRun || !r.Finished {
		t.Errorf("dry run's row %+v, want status dry_run, finished", r)
	}
	for _, r := range runs {
		if r.Status == db.RunDryRun && r.ID != runs[len(runs)-1].ID {
			t.Errorf("run %+v: only the dry run may have status dry_run", r)
		}
	}
	st := f.statuses()
	if s := st["new.dry.example.com"]; s.Outcome != "" || !s.Pending {
		t.Errorf("new row after the dry run: %+v, want no outcome, pending", s)
	}
	if s := st["changed.dry.example.com"]; s.Outcome != "applied" || !s.Pending {
		t.Errorf("changed row after the dry run: %+v, want its old applied outcome, pending", s)
	}

	// Fix what is pending; then a dry run has nothing to say and exits 0.
	f.exec(`DELETE FROM desired_snapshot_callbacks WHERE domain_name = 'bad.dry.example.com'`)
	if p, code := f.run(nil, runArgs()...); code != 0 {
		t.Fatalf("run: exit %d, want 0\nstderr:\n%s", code, p.stderr.String())
	}
	if s := f.statuses()["changed.dry.example.com"]; s.Outcome != "updated" || s.Pending {
		t.Errorf("changed row after the run: %+v, want updated, not pending", s)
	}
	requests = f.sim.Stats().Total
	p, code = f.run(nil, "run", "--dry-run")
	if code != 0 || strings.TrimSpace(p.stdout.String()) != "" {
		t.Errorf("dry run with nothing pending: exit %d, stdout %q; want 0 and nothing\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
	}
	if n := f.sim.Stats().Total; n != requests {
		t.Errorf("dry run sent %d requests, want 0", n-requests)
	}
}
