package db_test

import (
	"strings"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// TestPendingPlan checks on 200,000 rows (85% done, 5% failed, 5% invalid,
// 5% never attempted) that a page in the middle of the table reads both
// primary-key indexes from the key on, with custom and generic plans, rather
// than scanning either table from its start.
func TestPendingPlan(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("loads 200,000 rows")
	}
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	start := time.Now()
	for _, q := range []string{
		`INSERT INTO reconcile_runs (status, rate, concurrency, host_name, program_version) VALUES ('succeeded', 25, 32, 'h', 'v')`,
		`INSERT INTO desired_snapshot_callbacks (domain_name, notify_url, notify_req_auth, notify_auth_key)
		 SELECT 'd' || lpad(i::text, 7, '0') || '.example.com', 'https://cb.example.com/' || i, i % 2 = 0,
		        CASE WHEN i % 2 = 0 THEN 'k' || i END
		 FROM generate_series(1, 200000) i`,
		`INSERT INTO reconcile_domain_state (domain_name, last_outcome_id, last_run_id, last_outcome, last_fingerprint,
		                                     last_finished_at, done_fingerprint)
		 SELECT domain_name, row_number() OVER (), 1,
		        CASE WHEN h < 85 THEN 'applied' WHEN h < 90 THEN 'failed' ELSE 'invalid' END,
		        fingerprint, now(), CASE WHEN h < 85 THEN fingerprint END
		 FROM (SELECT domain_name, fingerprint, abs(hashtext(domain_name)) % 100 AS h FROM desired_snapshot_callbacks) x
		 WHERE h < 95`,
		`ANALYZE`,
	} {
		if _, err := tdb.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("loaded in %v", time.Since(start))
	conn := tdb.Conn(t)
	if _, err := conn.Exec(ctx, `PREPARE pending(text, int) AS `+db.SQLPendingPage); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE pending('d0100000', 500)`)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		t.Logf("%s:\n%s", mode, plan)
		for _, want := range []string{
			"Index Scan using desired_snapshot_callbacks_pkey",
			"Index Scan using reconcile_domain_state_pkey",
		} {
			if !strings.Contains(plan, want) {
				t.Errorf("%s: plan lacks %q", mode, want)
			}
		}
		if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Sort") {
			t.Errorf("%s: plan scans or sorts a table", mode)
		}
		if n := strings.Count(plan, "Index Cond: (domain_name > "); n < 2 {
			t.Errorf("%s: %d index scans bounded by the key, want 2", mode, n)
		}
	}
}
