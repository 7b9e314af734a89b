package app

import (
	"context"
	"errors"
	"testing"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/livesim"
)

// TestRunsRecordWhatTheySentAndTheirExitCode: each outcome keeps the
// notify_url, notify_req_auth and RegionId of its request (the run's
// --region when the row has none; only the region for a Delete), and each
// run row the exit code of the process, so "succeeded" with rows not done
// is told from a clean run in SQL.
func TestRunsRecordWhatTheySentAndTheirExitCode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	h.insert(
		row{"a.example.com", goodURL + "?a", true, "auditKey0123456789", "cn-beijing"},
		row{"b.example.com", goodURL + "?b", false, nil, nil},
		row{"bad.example.com", "ftp://x", false, nil, nil},
	)
	c := h.config()
	sent := func() map[string]string {
		t.Helper()
		rows, err := h.db.Pool.Query(context.Background(), `SELECT DISTINCT ON (domain_name) domain_name,
			outcome || ' ' || coalesce(notify_url, 'NULL') || ' ' || coalesce(notify_req_auth::text, 'NULL') || ' ' || coalesce(region_id, 'NULL')
			FROM reconcile_outcomes ORDER BY domain_name, id DESC`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var d, s string
			if err := rows.Scan(&d, &s); err != nil {
				t.Fatal(err)
			}
			out[d] = s
		}
		return out
	}
	latestRun := func() db.RunRow {
		t.Helper()
		r, err := db.LatestRun(context.Background(), h.db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	if err := h.run(c, testSecret); ExitCode(err) != 1 {
		t.Fatalf("run = %v, want exit 1 (an invalid row)", err)
	}
	if r := latestRun(); r.Status != db.RunSucceeded || r.ExitCode != 1 {
		t.Errorf("run with an invalid row: status %s, exit_code %d; want succeeded, 1", r.Status, r.ExitCode)
	}
	want := map[string]string{
		"a.example.com":   "applied " + goodURL + "?a true cn-beijing",
		"b.example.com":   "applied " + goodURL + "?b false cn-shanghai",
		"bad.example.com": "invalid ftp://x false cn-shanghai",
	}
	got := sent()
	for d, w := range want {
		if got[d] != w {
			t.Errorf("%s: outcome, notify_url, notify_req_auth, region_id = %q, want %q", d, got[d], w)
		}
	}

	h.exec(`UPDATE desired_snapshot_callbacks SET notify_url = $1 WHERE domain_name = 'bad.example.com'`, goodURL)
	h.exec(`DELETE FROM desired_snapshot_callbacks WHERE domain_name = 'b.example.com'`)
	c.Prune = true
	if err := h.run(c, testSecret); err != nil {
		t.Fatalf("second run = %v, want exit 0", err)
	}
	if r := latestRun(); r.Status != db.RunSucceeded || r.ExitCode != 0 {
		t.Errorf("clean run: status %s, exit_code %d; want succeeded, 0", r.Status, r.ExitCode)
	}
	got = sent()
	if w := "deleted NULL NULL cn-shanghai"; got["b.example.com"] != w {
		t.Errorf("pruned domain: %q, want %q", got["b.example.com"], w)
	}
	if w := "applied " + goodURL + " false cn-shanghai"; got["bad.example.com"] != w {
		t.Errorf("fixed row: %q, want %q", got["bad.example.com"], w)
	}

	// A dry run that finds work exits 5 and says so in its row.
	h.insert(row{"c.example.com", goodURL, false, nil, nil})
	c.Prune, c.DryRun = false, true
	if err := h.run(c, testSecret); !errors.Is(err, ErrPlanPending) {
		t.Fatalf("dry run = %v, want ErrPlanPending", err)
	}
	if r := latestRun(); r.Status != db.RunDryRun || r.ExitCode != ExitPending {
		t.Errorf("dry run with work: status %s, exit_code %d; want dry_run, 5", r.Status, r.ExitCode)
	}
}
