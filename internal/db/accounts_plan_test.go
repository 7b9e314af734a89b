package db_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// planNode is a node of EXPLAIN (ANALYZE, FORMAT JSON). Actual Rows and
// Rows Removed by Filter are per loop.
type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Rows     float64    `json:"Actual Rows"`
	Loops    float64    `json:"Actual Loops"`
	Removed  float64    `json:"Rows Removed by Filter"`
	Plans    []planNode `json:"Plans"`
}

func (n planNode) walk(f func(planNode)) {
	f(n)
	for _, c := range n.Plans {
		c.walk(f)
	}
}

// TestAccountPagePlans checks on 200,000 rows spread over accounts of very
// different sizes (the default account 40%, big 40%, mid 20%, tiny 0.1%;
// 60% done, 15% not done, 25% never attempted) that a page of one account
// in the middle of the table (PendingPageIn, DesiredPageIn), with custom
// and generic plans:
//   - sorts nothing and scans no table sequentially;
//   - reads no row of either table before the key, nor (but for a little
//     read-ahead) after the page's last row: the rows it reads (returned or
//     filtered out) are at most about the rows of both tables in (after,
//     last row of the page], so a pass
//     over an account reads each row at most once (no quadratic re-reads);
//   - with custom plans (what the job gets: DefaultQueryExecMode plans each
//     execution with its values), uses the (account, domain_name) index for
//     the default and the tiny account.
//
// Plans seen on PostgreSQL 15 (the test logs them): the default account
// walks desired_snapshot_callbacks_account_idx from (NULL, key) with a
// nested loop of primary-key probes into reconcile_domain_state (custom,
// and generic under a Gather Merge of parallel workers); so does tiny with a custom plan, reading only its own rows.
// big and mid, whose rows are a large share of every key range, walk both
// primary keys from the key in a merge join and filter on the account, as
// PendingPage does: they read the other accounts' rows in the page's range
// too, about as many buffers as the probes would cost. A generic plan
// does the same for tiny (it cannot see that the account is small): still
// bounded by the key, so a pass reads the table once.
func TestAccountPagePlans(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("loads 200,000 rows")
	}
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	start := time.Now()
	for _, q := range []string{
		`INSERT INTO desired_snapshot_callbacks (domain_name, notify_url, account)
		 SELECT 'd' || lpad(i::text, 7, '0') || '.example.com', 'https://cb.example.com/' || i,
		        CASE WHEN i % 1000 = 0 THEN 'tiny' WHEN i % 5 < 2 THEN NULL WHEN i % 5 < 4 THEN 'big' ELSE 'mid' END
		 FROM generate_series(1, 200000) i`,
		`INSERT INTO reconcile_runs (status, rate, concurrency, host_name, program_version) VALUES ('succeeded', 25, 32, 'h', 'v')`,
		`INSERT INTO reconcile_domain_state (domain_name, last_outcome_id, last_run_id, last_outcome, last_fingerprint,
		                                     last_finished_at, done_fingerprint, remote_exists, account)
		 SELECT domain_name, row_number() OVER (), 1,
		        CASE WHEN h < 60 THEN 'applied' WHEN h < 70 THEN 'failed' ELSE 'invalid' END,
		        fingerprint, now(), CASE WHEN h < 60 THEN fingerprint END, h < 60, account
		 FROM (SELECT domain_name, fingerprint, account, abs(hashtext(domain_name)) % 100 AS h
		       FROM desired_snapshot_callbacks) x
		 WHERE h < 75`,
		`ANALYZE`,
	} {
		if _, err := tdb.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("loaded in %v", time.Since(start))
	const after, limit = "d0100000", 500
	conn := tdb.Conn(t)
	for _, which := range []string{"pending", "desired"} {
		for _, account := range []string{"", "big", "mid", "tiny"} {
			name := which + "_" + model.AccountLabel(account)
			params, args := "text, int", fmt.Sprintf("'%s', %d", after, limit)
			if account != "" {
				params, args = params+", text", args+", '"+account+"'"
			}
			if _, err := conn.Exec(ctx, fmt.Sprintf("PREPARE %s(%s) AS %s", name, params, db.PageInSQL(which, account))); err != nil {
				t.Fatal(err)
			}
			// The page's last row bounds what it may read.
			page := db.PendingPageIn
			if which == "desired" {
				page = db.DesiredPageIn
			}
			rows, err := page(ctx, tdb.Pool, account, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			last := "\U0010FFFF" // the page is the last: up to the end
			if len(rows) == limit {
				last = rows[len(rows)-1].Domain
			}
			var bound float64
			if err := tdb.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM desired_snapshot_callbacks WHERE domain_name > $1 AND domain_name <= $2)
				+ (SELECT count(*) FROM reconcile_domain_state WHERE domain_name > $1 AND domain_name <= $2)`, after, last).Scan(&bound); err != nil {
				t.Fatal(err)
			}
			for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
				if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
					t.Fatal(err)
				}
				var out []byte
				if err := conn.QueryRow(ctx, fmt.Sprintf("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE %s(%s)", name, args)).Scan(&out); err != nil {
					t.Fatal(err)
				}
				var plans []struct{ Plan planNode }
				if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
					t.Fatalf("EXPLAIN output %s: %v", out, err)
				}
				var reads float64
				var shape []string
				usesAccountIndex := false
				plans[0].Plan.walk(func(n planNode) {
					switch n.NodeType {
					case "Sort", "Incremental Sort", "Seq Scan":
						t.Errorf("%s %s: plan has a %s node", name, mode, n.NodeType)
					}
					if n.Relation == "desired_snapshot_callbacks" || n.Relation == "reconcile_domain_state" {
						reads += (n.Rows + n.Removed) * n.Loops
					}
					if n.Index == "desired_snapshot_callbacks_account_idx" {
						usesAccountIndex = true
					}
					s := n.NodeType
					if n.Index != "" {
						s += " using " + n.Index
					}
					shape = append(shape, s)
				})
				t.Logf("%s %s: %d rows, read %.0f of at most %.0f: %s", name, mode, len(rows), reads, bound, strings.Join(shape, " > "))
				// Slack: a merge join reads one row past the page on each
				// side, the workers of a Gather Merge read a little ahead,
				// and EXPLAIN rounds the rows per loop. Re-reading earlier
				// pages would read tens of thousands of rows more.
				if reads > bound*1.1+10 {
					t.Errorf("%s %s: the page read %.0f rows, more than the %.0f in its key range", name, mode, reads, bound)
				}
				if mode == "force_custom_plan" && (account == "" || account == "tiny") && !usesAccountIndex {
					t.Errorf("%s %s: plan does not use desired_snapshot_callbacks_account_idx", name, mode)
				}
			}
		}
	}
}
