package db_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestMain(m *testing.M) { testdb.Main(m) }

type desired struct {
	domain, url string
	reqAuth     bool
	key, region string // "" is stored as NULL
	account     string // "" is stored as NULL: the default account
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func upsertDesired(t testing.TB, pool *pgxpool.Pool, d desired) {
	t.Helper()
	_, err := pool.Exec(testutil.Context(t), `INSERT INTO desired_snapshot_callbacks (domain_name, notify_url, notify_req_auth, notify_auth_key, region_id, account)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (domain_name) DO UPDATE SET notify_url = excluded.notify_url, notify_req_auth = excluded.notify_req_auth,
  notify_auth_key = excluded.notify_auth_key, region_id = excluded.region_id, account = excluded.account, updated_at = now()`,
		d.domain, d.url, d.reqAuth, nullIfEmpty(d.key), nullIfEmpty(d.region), nullIfEmpty(d.account))
	if err != nil {
		t.Fatalf("upsert desired %s: %v", d.domain, err)
	}
}

func fingerprintOf(t testing.TB, pool *pgxpool.Pool, domain string) string {
	t.Helper()
	var fp string
	if err := pool.QueryRow(testutil.Context(t), `SELECT fingerprint FROM desired_snapshot_callbacks WHERE domain_name = $1`, domain).Scan(&fp); err != nil {
		t.Fatalf("fingerprint of %s: %v", domain, err)
	}
	return fp
}

func beginRun(t testing.TB, pool *pgxpool.Pool) int64 {
	t.Helper()
	id, err := db.BeginRun(testutil.Context(t), pool, db.RunStart{Status: db.RunRunning, Rate: 25, Concurrency: 32, HostName: "test", Version: "v0"})
	if err != nil {
		t.Fatalf("BeginRun: %v", err)
	}
	return id
}

// record writes one outcome for domain in a new run, with the row's current
// fingerprint.
func record(t testing.TB, pool *pgxpool.Pool, domain string, o model.Outcome) {
	t.Helper()
	run := beginRun(t, pool)
	r := model.Result{Domain: domain, Outcome: o, Attempts: 1, Fingerprint: fingerprintOf(t, pool, domain)}
	if o == model.OutcomeFailed {
		r.ErrorCode, r.ErrorMessage = "InternalError", "The request processing has failed due to some unknown error."
	}
	if _, err := db.WriteOutcomes(testutil.Context(t), pool, run, []model.Result{r}, db.RunCounters{Requests: 1}); err != nil {
		t.Fatalf("WriteOutcomes: %v", err)
	}
	if err := db.FinishRun(testutil.Context(t), pool, run, db.RunSucceeded, "", 0); err != nil {
		t.Fatalf("FinishRun: %v", err)
	}
}

// allPending reads every pending row through PendingPage.
func allPending(t testing.TB, pool *pgxpool.Pool, limit int) []model.Row {
	t.Helper()
	var out []model.Row
	after := ""
	for {
		page, err := db.PendingPage(testutil.Context(t), pool, after, limit)
		if err != nil {
			t.Fatalf("PendingPage: %v", err)
		}
		out = append(out, page...)
		if len(page) < limit {
			return out
		}
		after = page[len(page)-1].Domain
	}
}

type viewRow struct {
	pending, everDone, invalidUnchanged bool
	fingerprint                         string
}

func viewOf(t testing.TB, pool *pgxpool.Pool) map[string]viewRow {
	t.Helper()
	rows, err := pool.Query(testutil.Context(t), `SELECT domain_name, pending, ever_done, invalid_unchanged, fingerprint FROM snapshot_callback_status`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]viewRow{}
	for rows.Next() {
		var d string
		var v viewRow
		if err := rows.Scan(&d, &v.pending, &v.everDone, &v.invalidUnchanged, &v.fingerprint); err != nil {
			t.Fatal(err)
		}
		m[d] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}
