package db_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// cookbookPath is the users' cookbook; its queries are the test's input.
const cookbookPath = "../../docs/audit.md"

// cookbookQuery is one "### title" section of docs/audit.md and its SQL.
type cookbookQuery struct{ title, sql string }

var (
	headingRe = regexp.MustCompile(`(?m)^### (.+)$`)
	sqlRe     = regexp.MustCompile("(?s)```sql\n(.*?)```")
)

// cookbookQueries parses docs/audit.md: every "### " section holds exactly
// one ```sql block.
func cookbookQueries(t *testing.T) []cookbookQuery {
	t.Helper()
	b, err := os.ReadFile(cookbookPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	heads := headingRe.FindAllStringSubmatchIndex(text, -1)
	var out []cookbookQuery
	for i, h := range heads {
		end := len(text)
		if i+1 < len(heads) {
			end = heads[i+1][0]
		}
		title := text[h[2]:h[3]]
		blocks := sqlRe.FindAllStringSubmatch(text[h[1]:end], -1)
		if len(blocks) != 1 {
			t.Fatalf("%s: section %q has %d sql blocks, want 1", cookbookPath, title, len(blocks))
		}
		out = append(out, cookbookQuery{title: title, sql: blocks[0][1]})
	}
	if len(sqlRe.FindAllString(text, -1)) != len(out) {
		t.Fatalf("%s: a sql block outside a ### section is not tested", cookbookPath)
	}
	return out
}

// result is a query's answer: one map per row, column name → value.
type result []map[string]any

func (r result) column(name string) []string {
	var out []string
	for _, row := range r {
		out = append(out, fmt.Sprint(row[name]))
	}
	return out
}

// seedAudit builds a small history with known answers (see the checks in
// TestAuditCookbook).
func seedAudit(t *testing.T, pool *pgxpool.Pool) {
	ctx := testutil.Context(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	type out struct {
		domain  string
		outcome model.Outcome
		code    string
		status  int
		reqID   string
	}
	// runWith records one finished run of kind with the outcomes, each for
	// the domain's current desired values, as the job sends them.
	runWith := func(kind string, startedAgo time.Duration, exit int, outs ...out) int64 {
		t.Helper()
		id, err := db.BeginRun(ctx, pool, db.RunStart{Status: db.RunRunning, Rate: 25, Concurrency: 32, HostName: "h", Version: "v", Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		exec(`UPDATE reconcile_runs SET started_at = now() - $2::interval WHERE id = $1`, id, startedAgo.String())
		var rs []model.Result
		for _, o := range outs {
			var url, region string
			var auth bool
			if err := pool.QueryRow(ctx, `SELECT notify_url, notify_req_auth, coalesce(region_id, 'cn-shanghai')
				FROM desired_snapshot_callbacks WHERE domain_name = $1`, o.domain).Scan(&url, &auth, &region); err != nil {
				t.Fatalf("%s: %v", o.domain, err)
			}
			r := model.Result{Domain: o.domain, Outcome: o.outcome, Fingerprint: fingerprintOf(t, pool, o.domain),
				Attempts: 1, HTTPStatus: o.status, RequestID: o.reqID, ErrorCode: o.code, NotifyURL: url, ReqAuth: auth, Region: region}
			if o.code != "" {
				r.ErrorMessage = o.code + " message"
			}
			rs = append(rs, r)
		}
		if _, err := db.WriteOutcomes(ctx, pool, id, rs, db.RunCounters{}); err != nil {
			t.Fatal(err)
		}
		if exit >= 0 {
			if err := db.FinishRun(ctx, pool, id, db.RunSucceeded, "", exit); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	d := func(domain, url string, auth bool, key string) {
		upsertDesired(t, pool, desired{domain: domain, url: url, reqAuth: auth, key: key})
	}
	d("live.example.com", "https://hooks.example.com/snap", false, "")
	d("old-fail.example.com", "https://hooks.example.com/old", false, "")
	d("other.example.com", "https://other-hooks.example.net/x", false, "")
	// Three days ago: live applied; old-fail failed (not "last night").
	runWith(db.RunKindRun, 72*time.Hour, 1,
		out{"live.example.com", model.OutcomeApplied, "", 200, "REQ-1"},
		out{"old-fail.example.com", model.OutcomeFailed, "InternalError", 500, "REQ-OLD"},
		out{"other.example.com", model.OutcomeApplied, "", 200, "REQ-O"})
	// Two hours ago: the URL changed.
	d("live.example.com", "https://hooks.example.com/snap2", false, "")
	runWith(db.RunKindRun, 2*time.Hour, 0, out{"live.example.com", model.OutcomeUpdated, "", 200, "REQ-2"},
		out{"old-fail.example.com", model.OutcomeApplied, "", 200, "REQ-OLD2"})
	// Then auth on with a key, then only the key changed.
	d("live.example.com", "https://hooks.example.com/snap2", true, "FirstAuthKey01234567")
	runWith(db.RunKindRun, 90*time.Minute, 0, out{"live.example.com", model.OutcomeUpdated, "", 200, "REQ-3"})
	d("live.example.com", "https://hooks.example.com/snap2", true, "SecondAuthKey0123456")
	d("fail.example.com", "https://hooks.example.com/f", false, "")
	d("bad.example.com", "ftp://bad", false, "")
	// An hour ago: live updated (the key), fail failed, bad invalid; exit 1.
	runWith(db.RunKindRun, time.Hour, 1,
		out{"live.example.com", model.OutcomeUpdated, "", 200, "REQ-4"},
		out{"fail.example.com", model.OutcomeFailed, "InvalidDomain.NotFound", 404, "REQ-FAIL"},
		out{"bad.example.com", model.OutcomeInvalid, "Invalid.notify_url", 0, ""})
	d("drift.example.com", "https://hooks.example.com/d", false, "")
	// An older verify found other.example.com drifted; the latest one
	// found drift.example.com drifted and live in sync.
	runWith(db.RunKindVerify, 50*time.Minute, 1, out{"other.example.com", model.OutcomeDrifted, "Drifted", 200, "REQ-V0"})
	runWith(db.RunKindVerify, 30*time.Minute, 1,
		out{"drift.example.com", model.OutcomeDrifted, "Drifted", 200, "REQ-V1"},
		out{"live.example.com", model.OutcomeInSync, "", 200, "REQ-V2"})
	// A run still running (or whose process died).
	runWith(db.RunKindRun, 10*time.Minute, -1)
	// other.example.com was edited long ago (a hand edit keeps updated_at
	// only when it sets no desired value).
	exec(`UPDATE desired_snapshot_callbacks SET updated_at = now() - interval '3 days'
		WHERE domain_name IN ('other.example.com', 'old-fail.example.com')`)
}

// TestAuditCookbook runs every query of docs/audit.md against a seeded
// database and checks its answer: a query that breaks (a renamed column),
// or answers wrongly, fails here, and so does a query without a check.
func TestAuditCookbook(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	seedAudit(t, pool)
	seedAuditAccounts(t, pool) // cookbook_accounts_test.go

	checks := map[string]func(t *testing.T, r result){
		"What failed last night, and why": func(t *testing.T, r result) {
			if got, want := r.column("domain_name"), []string{"bad.example.com", "drift.example.com", "fail.example.com", "other.example.com"}; !sameSet(got, want) {
				t.Errorf("domains %v, want %v (not old-fail: three days ago)", got, want)
			}
			for _, row := range r {
				if row["domain_name"] == "fail.example.com" && (row["request_id"] != "REQ-FAIL" || fmt.Sprint(row["http_status"]) != "404" ||
					row["notify_url"] != "https://hooks.example.com/f" || row["region_id"] != "cn-shanghai") {
					t.Errorf("fail.example.com row %v", row)
				}
			}
		},
		"Last night's failures by error code": func(t *testing.T, r result) {
			if got, want := r.column("error_code"), []string{"Drifted", "Drifted", "InvalidDomain.NotFound", "Invalid.notify_url"}; !sameSet(got, want) {
				t.Errorf("error codes %v, want %v", got, want)
			}
			for _, row := range r {
				if row["error_code"] == "InvalidDomain.NotFound" && (row["sample_request_id"] != "REQ-FAIL" || row["first_finished_at"] == nil) {
					t.Errorf("row %v", row)
				}
			}
		},
		"The history of a domain, with what changed": func(t *testing.T, r result) {
			want := []string{"first outcome", "notify_url https://hooks.example.com/snap -> https://hooks.example.com/snap2",
				"notify_req_auth false -> true", "notify_auth_key", "nothing"}
			if got := r.column("changed"); !slices.Equal(got, want) {
				t.Errorf("changed %q, want %q", got, want)
			}
			if got := r.column("request_id"); !slices.Equal(got, []string{"REQ-1", "REQ-2", "REQ-3", "REQ-4", "REQ-V2"}) {
				t.Errorf("request ids %v", got)
			}
		},
		"Domains pointing at a host": func(t *testing.T, r result) {
			want := []string{"drift.example.com", "fail.example.com", "live.example.com", "old-fail.example.com"}
			if got := r.column("domain_name"); !slices.Equal(got, want) {
				t.Errorf("domains %v, want %v (not other: another host; not bad: ftp)", got, want)
			}
		},
		"Runs that did not finish": func(t *testing.T, r result) {
			// Runs 1 (exit 1), 4 (exit 1), 5 and 6 (verify, exit 1), 7
			// (running); not 2 and 3 (exit 0).
			if got, want := r.column("run_id"), []string{"7", "6", "5", "4", "1"}; !slices.Equal(got, want) {
				t.Errorf("runs %v, want %v", got, want)
			}
		},
		"Drift found by the latest verify": func(t *testing.T, r result) {
			if got := r.column("domain_name"); !slices.Equal(got, []string{"drift.example.com"}) {
				t.Errorf("domains %v, want drift.example.com only (other was drifted in an older verify)", got)
			}
		},
		"One domain for a support ticket": func(t *testing.T, r result) {
			if len(r) != 1 || r[0]["request_id"] != "REQ-FAIL" || fmt.Sprint(r[0]["http_status"]) != "404" ||
				r[0]["sent_region_id"] != "cn-shanghai" || r[0]["pending"] != true || r[0]["updated_at"] == nil {
				t.Errorf("got %v", r)
			}
			for k := range r[0] {
				if strings.Contains(k, "key") {
					t.Errorf("column %s", k)
				}
			}
		},
		"Rows edited in the last day, and whether they are applied": func(t *testing.T, r result) {
			want := []string{"bad.example.com", "drift.example.com", "fail.example.com", "live.example.com"}
			if got := r.column("domain_name"); !sameSet(got, want) {
				t.Errorf("domains %v, want %v", got, want)
			}
		},
	}
	for title, check := range accountCookbookChecks() {
		checks[title] = check
	}
	queries := cookbookQueries(t)
	seen := map[string]bool{}
	for _, q := range queries {
		seen[q.title] = true
		check, ok := checks[q.title]
		if !ok {
			t.Errorf("docs/audit.md: query %q has no check in TestAuditCookbook", q.title)
			continue
		}
		t.Run(q.title, func(t *testing.T) {
			rows, err := pool.Query(ctx, q.sql)
			if err != nil {
				t.Fatalf("%v\n%s", err, q.sql)
			}
			maps, err := pgx.CollectRows(rows, pgx.RowToMap)
			if err != nil {
				t.Fatalf("%v\n%s", err, q.sql)
			}
			check(t, result(maps))
		})
	}
	for title := range checks {
		if !seen[title] {
			t.Errorf("check %q has no query in docs/audit.md", title)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
