package db_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testutil"
)

// seedAuditAccounts adds accounts to seedAudit's history without changing
// the answers of the other queries: rows of named accounts pointing at
// another host and edited days ago, an applied outcome in a run that
// completed (exit 0), and the per-account rows of the latest run that left
// rows not done (run 4 of seedAudit, an hour ago: already in "Runs that did
// not finish").
//
//   - tenant-a (known): a1 done (in a run of its own), a2 never attempted;
//   - tenant-b (known): b1 never attempted; the first run worked it, run 4
//     stopped it (credentials refused);
//   - tenant-off (disabled): off1 never attempted; run 4 skipped it;
//   - tenant-x (no reconcile_accounts row): x1 never attempted.
func seedAuditAccounts(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := testutil.Context(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
	}
	exec(`INSERT INTO reconcile_accounts (name, credentials, role_arn, disabled) VALUES
('tenant-a', 'ram_role_arn', 'acs:ram::1234567890123456:role/reconcile', false),
('tenant-b', 'ram_role_arn', 'acs:ram::6543210987654321:role/reconcile', false),
('tenant-off', 'default', NULL, true)`)
	for domain, account := range map[string]string{"a1": "tenant-a", "a2": "tenant-a", "b1": "tenant-b", "off1": "tenant-off", "x1": "tenant-x"} {
		d := domain + ".tenant.example.net"
		upsertDesired(t, pool, desired{domain: d, url: "https://hooks.tenant.example.net/" + domain})
		exec(`UPDATE desired_snapshot_callbacks SET account = $2 WHERE domain_name = $1`, d, account)
	}

	var stopped int64
	if err := pool.QueryRow(ctx, `SELECT max(id) FROM reconcile_runs WHERE kind = 'run' AND exit_code <> 0`).Scan(&stopped); err != nil {
		t.Fatal(err)
	}
	// A run 40 minutes ago worked tenant-a only and applied a1.
	id, err := db.BeginRun(ctx, pool, db.RunStart{Status: db.RunRunning, Rate: 25, Concurrency: 32, HostName: "h", Version: "v", Kind: db.RunKindRun})
	if err != nil {
		t.Fatal(err)
	}
	exec(`UPDATE reconcile_runs SET started_at = now() - interval '40 minutes' WHERE id = $1`, id)
	r := model.Result{Domain: "a1.tenant.example.net", Outcome: model.OutcomeApplied, Fingerprint: fingerprintOf(t, pool, "a1.tenant.example.net"),
		Attempts: 1, HTTPStatus: 200, RequestID: "REQ-A1", NotifyURL: "https://hooks.tenant.example.net/a1", Region: "cn-shanghai",
		Account: "tenant-a"}
	if _, err := db.WriteOutcomes(ctx, pool, id, []model.Result{r}, db.RunCounters{Requests: 1}); err != nil {
		t.Fatal(err)
	}
	// Whatever WriteOutcomes records of the account, the trail has it.
	exec(`UPDATE reconcile_outcomes SET account = 'tenant-a' WHERE run_id = $1`, id)
	exec(`UPDATE reconcile_domain_state SET account = 'tenant-a' WHERE domain_name = 'a1.tenant.example.net'`)
	if err := db.FinishRun(ctx, pool, id, db.RunSucceeded, "", 0); err != nil {
		t.Fatal(err)
	}
	exec(`INSERT INTO reconcile_run_accounts (run_id, account, status, pending, done, requests, rate, started_at, finished_at)
VALUES ($1, 'tenant-a', 'succeeded', 2, 1, 1, 25, now() - interval '40 minutes', now() - interval '39 minutes')`, id)
	exec(`INSERT INTO reconcile_run_accounts (run_id, account, status, reason, error_code, pending, done, not_done, requests,
throttled, rate, started_at, finished_at) VALUES
($1, NULL, 'succeeded', NULL, NULL, 3, 1, 2, 3, 0, 25, now() - interval '60 minutes', now() - interval '59 minutes'),
($1, 'tenant-b', 'failed', 'credentials refused: AssumeRole of acs:ram::6543210987654321:role/reconcile was denied', 'NoPermission',
 1, 0, 0, 1, 0, 25, now() - interval '60 minutes', now() - interval '60 minutes'),
($1, 'tenant-off', 'skipped', 'disabled', NULL, 0, 0, 0, 0, 0, NULL, now() - interval '60 minutes', now() - interval '60 minutes')`, stopped)
	// Three days ago, the first run worked tenant-b without trouble: its
	// latest run is the one that stopped it.
	exec(`INSERT INTO reconcile_run_accounts (run_id, account, status, pending, rate, started_at, finished_at)
SELECT min(id), 'tenant-b', 'succeeded', 0, 25, now() - interval '72 hours', now() - interval '72 hours' FROM reconcile_runs`)
	// Edited long ago: "Rows edited in the last day" does not list them.
	exec(`UPDATE desired_snapshot_callbacks SET updated_at = now() - interval '3 days' WHERE account IS NOT NULL`)
}

// accountCookbookChecks are the checks of the accounts' queries in
// docs/audit.md (TestAuditCookbook runs them after seedAuditAccounts).
func accountCookbookChecks() map[string]func(t *testing.T, r result) {
	return map[string]func(t *testing.T, r result){
		"Progress per account": func(t *testing.T, r result) {
			type row struct {
				account                         string
				desired, done, pending, notDone string
				unknown, disabled               bool
				credentials                     any
			}
			want := []row{
				// live, old-fail done; other, fail, drift pending; bad invalid and unchanged.
				// not_done is desired - done.
				{"default", "6", "2", "3", "4", false, false, nil},
				{"tenant-a", "2", "1", "1", "1", false, false, "ram_role_arn"},
				{"tenant-b", "1", "0", "1", "1", false, false, "ram_role_arn"},
				{"tenant-off", "1", "0", "1", "1", false, true, "default"},
				{"tenant-x", "1", "0", "1", "1", true, false, nil},
			}
			if len(r) != len(want) {
				t.Fatalf("got %v", r)
			}
			for i, w := range want {
				g := r[i]
				got := row{fmt.Sprint(g["account"]), fmt.Sprint(g["desired"]), fmt.Sprint(g["done"]), fmt.Sprint(g["pending"]),
					fmt.Sprint(g["not_done"]), g["unknown"] == true, g["disabled"] == true, g["credentials"]}
				if got != w {
					t.Errorf("row %d = %+v, want %+v", i, got, w)
				}
			}
			pct := func(v any) float64 {
				n, _ := v.(pgtype.Numeric)
				f, _ := n.Float64Value()
				return f.Float64
			}
			if pct(r[1]["pct_done"]) != 50 || pct(r[0]["pct_done"]) != 33.3 || fmt.Sprint(r[0]["invalid_unchanged"]) != "1" ||
				r[1]["last_finished_at"] == nil || r[4]["last_finished_at"] != nil {
				t.Errorf("default %v, tenant-a %v, tenant-x %v", r[0], r[1], r[4])
			}
		},
		"Why an account stopped": func(t *testing.T, r result) {
			got := map[string]string{}
			runs := map[string]int64{}
			for _, row := range r {
				a := fmt.Sprint(row["account"])
				got[a] = fmt.Sprintf("%v %v %v", row["status"], row["error_code"], row["reason"])
				runs[a], _ = row["run_id"].(int64)
			}
			want := map[string]string{
				"default":    "succeeded <nil> <nil>",
				"tenant-a":   "succeeded <nil> <nil>",
				"tenant-b":   "failed NoPermission credentials refused: AssumeRole of acs:ram::6543210987654321:role/reconcile was denied",
				"tenant-off": "skipped <nil> disabled",
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("got %v\nwant %v", got, want)
			}
			// tenant-a's latest run is its own, after the one that stopped tenant-b.
			if runs["default"] == 0 || runs["tenant-b"] != runs["default"] || runs["tenant-off"] != runs["default"] || runs["tenant-a"] <= runs["default"] {
				t.Errorf("runs %v", runs)
			}
			if len(r) > 0 && (r[0]["account"] != "default" || r[0]["rows_left_pending"] == nil) {
				t.Errorf("first row %v", r[0])
			}
			for _, row := range r {
				if row["account"] == "tenant-b" && fmt.Sprint(row["rows_left_pending"]) != "1" {
					t.Errorf("tenant-b %v: its 1 row stays pending", row)
				}
			}
		},
	}
}
