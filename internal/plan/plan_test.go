package plan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/plan"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestMain(m *testing.M) { testdb.Main(m) }

const secretKey = "PlanSecretKey0123456789"

func setDesired(t *testing.T, pool *pgxpool.Pool, domain, url string, auth bool, key string) {
	t.Helper()
	var k any
	if key != "" {
		k = key
	}
	_, err := pool.Exec(testutil.Context(t), `INSERT INTO desired_snapshot_callbacks (domain_name, notify_url, notify_req_auth, notify_auth_key)
VALUES ($1, $2, $3, $4) ON CONFLICT (domain_name) DO UPDATE SET notify_url = excluded.notify_url,
notify_req_auth = excluded.notify_req_auth, notify_auth_key = excluded.notify_auth_key, updated_at = now()`, domain, url, auth, k)
	if err != nil {
		t.Fatal(err)
	}
}

// outcome records one outcome for domain (its current fingerprint) in a new
// finished run.
func outcome(t *testing.T, pool *pgxpool.Pool, domain string, o model.Outcome, code, msg string) {
	t.Helper()
	ctx := testutil.Context(t)
	var fp string
	if err := pool.QueryRow(ctx, `SELECT fingerprint FROM desired_snapshot_callbacks WHERE domain_name = $1`, domain).Scan(&fp); err != nil {
		t.Fatal(err)
	}
	id, err := db.BeginRun(ctx, pool, db.RunStart{Status: db.RunRunning, Rate: 25, Concurrency: 4, HostName: "h", Version: "v"})
	if err != nil {
		t.Fatal(err)
	}
	r := model.Result{Domain: domain, Outcome: o, ErrorCode: code, ErrorMessage: msg, Attempts: 1, Fingerprint: fp}
	if _, err := db.WriteOutcomes(ctx, pool, id, []model.Result{r}, db.RunCounters{}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishRun(ctx, pool, id, db.RunSucceeded, "", 0); err != nil {
		t.Fatal(err)
	}
}

// fixture builds one row of every kind.
func fixture(t *testing.T) *testdb.DB {
	t.Helper()
	tdb := testdb.New(t)
	p := tdb.Pool
	url := func(d string) string { return "https://hooks.example.com/" + d }
	for _, d := range []string{"a-new", "b-fixed", "c-edited", "d-failed", "e-bad", "f-stuck", "g-done", "h-done",
		"i-drifted", "j-missing", "k-failed-bad"} {
		setDesired(t, p, d+".example.com", url(d), d == "g-done", map[bool]string{true: secretKey}[d == "g-done"])
	}
	// b-fixed was invalid, then edited: pending, never applied.
	outcome(t, p, "b-fixed.example.com", model.OutcomeInvalid, "Invalid.notify_url", "row \"b-fixed.example.com\": notify_url: x")
	setDesired(t, p, "b-fixed.example.com", url("b-fixed2"), false, "")
	// c-edited was applied, then edited: Update.
	outcome(t, p, "c-edited.example.com", model.OutcomeApplied, "", "")
	setDesired(t, p, "c-edited.example.com", url("c-edited2"), false, "")
	outcome(t, p, "d-failed.example.com", model.OutcomeFailed, "Throttling.User", "Request was denied due to request throttling.")
	// e-bad breaks validation now (auth without a key); never attempted.
	setDesired(t, p, "e-bad.example.com", url("e-bad"), true, "")
	// f-stuck: invalid, unchanged since.
	outcome(t, p, "f-stuck.example.com", model.OutcomeInvalid, "Invalid.notify_url", "row \"f-stuck.example.com\": notify_url: is too odd")
	outcome(t, p, "g-done.example.com", model.OutcomeApplied, "", "")
	outcome(t, p, "h-done.example.com", model.OutcomeAlreadyExists, "ConfigAlreadyExists", "")
	outcome(t, p, "i-drifted.example.com", model.OutcomeApplied, "", "")
	outcome(t, p, "i-drifted.example.com", model.OutcomeDrifted, "Drifted", "notify_url differs")
	outcome(t, p, "j-missing.example.com", model.OutcomeApplied, "", "")
	outcome(t, p, "j-missing.example.com", model.OutcomeMissing, "", "")
	// k-failed-bad failed, then was edited into an invalid row: invalid wins.
	outcome(t, p, "k-failed-bad.example.com", model.OutcomeFailed, "InternalError", "boom")
	setDesired(t, p, "k-failed-bad.example.com", "ftp://nope.example.com/", false, "")
	return tdb
}

type wantClass struct {
	count   int64
	domains []string
	details []string // substrings, per listed domain ("" to skip)
}

func TestBuild(t *testing.T) {
	t.Parallel()
	tdb := fixture(t)
	wantAll := map[plan.Class]wantClass{
		plan.Add: {3, []string{"a-new.example.com", "b-fixed.example.com", "j-missing.example.com"},
			[]string{"", "last outcome: invalid", "last outcome: missing"}},
		plan.Update:      {2, []string{"c-edited.example.com", "i-drifted.example.com"}, []string{"", "last outcome: drifted"}},
		plan.RetryFailed: {1, []string{"d-failed.example.com"}, []string{"last error: Throttling.User: Request was denied"}},
		plan.Invalid: {3, []string{"e-bad.example.com", "k-failed-bad.example.com", "f-stuck.example.com"},
			[]string{"notify_auth_key: required", "notify_url: has scheme", "unchanged since run"}},
		plan.Done: {2, []string{"g-done.example.com", "h-done.example.com"}, []string{"applied (run", "already_exists (run"}},
	}

	for _, tc := range []struct {
		name     string
		opts     plan.Options
		readOnly bool
	}{
		{"defaults", plan.Options{Limit: 10}, false},
		{"pages of one row", plan.Options{Limit: 10, PageSize: 1}, false},
		{"pages of two rows in a snapshot", plan.Options{Limit: 10, PageSize: 2}, true},
		{"limit 1", plan.Options{Limit: 1, PageSize: 3}, false},
		{"limit 0", plan.Options{Limit: 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testutil.Context(t)
			var q db.Querier = tdb.Pool
			if tc.readOnly {
				tx, err := tdb.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx)
				q = tx
			}
			p, err := plan.Build(ctx, q, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if p.Desired != 11 || p.Pending != 8 || p.Calls != 6 || p.InvalidUnchanged != 1 {
				t.Errorf("desired %d pending %d calls %d invalid_unchanged %d; want 11 8 6 1", p.Desired, p.Pending, p.Calls, p.InvalidUnchanged)
			}
			if len(p.Classes) != len(plan.Classes) {
				t.Fatalf("classes %+v", p.Classes)
			}
			for i, c := range plan.Classes {
				got, want := p.Classes[i], wantAll[c]
				if got.Class != c || got.Count != want.count {
					t.Errorf("class %d = %s %d, want %s %d", i, got.Class, got.Count, c, want.count)
				}
				n := min(tc.opts.Limit, len(want.domains))
				if len(got.Domains) != n {
					t.Errorf("%s lists %+v, want the first %d of %v", c, got.Domains, n, want.domains)
					continue
				}
				for j, e := range got.Domains {
					if e.Domain != want.domains[j] || !strings.Contains(e.Detail, want.details[j]) {
						t.Errorf("%s entry %d = %+v, want %s with %q", c, j, e, want.domains[j], want.details[j])
					}
				}
			}
			// The plan agrees with the view's pending column.
			var pending int64
			if err := q.QueryRow(ctx, `SELECT count(*) FROM snapshot_callback_status WHERE pending`).Scan(&pending); err != nil || pending != p.Pending {
				t.Errorf("view says %d pending (%v), plan %d", pending, err, p.Pending)
			}
		})
	}
	if _, err := plan.Build(testutil.Context(t), tdb.Pool, plan.Options{Limit: -1}); !errors.Is(err, db.ErrInvalidArgument) {
		t.Fatalf("Build with limit -1 = %v, want ErrInvalidArgument", err)
	}
}

func TestBuildNothingPending(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	p, err := plan.Build(testutil.Context(t), tdb.Pool, plan.Options{Limit: 10})
	if err != nil || p.Pending != 0 || p.Desired != 0 {
		t.Fatalf("empty table: %+v, %v", p, err)
	}
	setDesired(t, tdb.Pool, "a.example.com", "https://h.example.com/a", false, "")
	outcome(t, tdb.Pool, "a.example.com", model.OutcomeApplied, "", "")
	p, err = plan.Build(testutil.Context(t), tdb.Pool, plan.Options{Limit: 10})
	if err != nil || p.Pending != 0 || p.Class(plan.Done).Count != 1 {
		t.Fatalf("all done: %+v, %v", p, err)
	}
	var out bytes.Buffer
	if err := p.WriteTable(&out); err != nil || !strings.Contains(out.String(), "nothing is pending") {
		t.Fatalf("table: %v\n%s", err, out.String())
	}
}

// Many rows, small pages: counts are exact and only Limit domains are kept.
func TestBuildPaging(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	for _, q := range []string{
		`INSERT INTO desired_snapshot_callbacks (domain_name, notify_url)
		 SELECT 'p' || lpad(i::text, 5, '0') || '.example.com', CASE WHEN i % 10 = 0 THEN 'nope' ELSE 'https://h.example.com/' || i END
		 FROM generate_series(1, 5000) i`,
	} {
		if _, err := tdb.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	p, err := plan.Build(ctx, tdb.Pool, plan.Options{Limit: 3, PageSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if p.Class(plan.Add).Count != 4500 || p.Class(plan.Invalid).Count != 500 || p.Pending != 5000 || p.Calls != 4500 {
		t.Fatalf("plan: %+v", p)
	}
	if d := p.Class(plan.Add).Domains; len(d) != 3 || d[0].Domain != "p00001.example.com" || d[2].Domain != "p00003.example.com" {
		t.Fatalf("first add domains: %+v", d)
	}
	if d := p.Class(plan.Invalid).Domains; len(d) != 3 || d[0].Domain != "p00010.example.com" || !strings.HasPrefix(d[0].Detail, "notify_url: ") {
		t.Fatalf("first invalid domains: %+v", d)
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	tdb := fixture(t)
	p, err := plan.Build(testutil.Context(t), tdb.Pool, plan.Options{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := p.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	out := table.String()
	for _, want := range []string{
		"11 desired rows; the next run would take up 8: call the API for 6 and record 2 invalid.",
		"add                 3\n  a-new.example.com",
		"  … 1 more",
		"retry-failed        1\n  d-failed.example.com  last error: Throttling.User: Request was denied",
		"invalid             3  (1 invalid and unchanged since an earlier run",
		"done                2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	var js bytes.Buffer
	if err := p.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back plan.Plan
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not decode: %v\n%s", err, js.String())
	}
	if fmt.Sprint(back) != fmt.Sprint(p) {
		t.Errorf("JSON round trip:\n%+v\n%+v", back, p)
	}
	for _, text := range []string{out, js.String()} {
		if strings.Contains(text, secretKey) {
			t.Fatal("the plan prints an auth key")
		}
	}
}

// goldenDefaultOnly is the table of fixture with --limit 2, exactly as
// before accounts existed: a database whose rows are all of the default
// account gets no account column or table.
const goldenDefaultOnly = `11 desired rows; the next run would take up 8: call the API for 6 and record 2 invalid.

add                 3
  a-new.example.com
  b-fixed.example.com  last outcome: invalid
  … 1 more

update              2
  c-edited.example.com
  i-drifted.example.com  last outcome: drifted

retry-failed        1
  d-failed.example.com  last error: Throttling.User: Request was denied due to request throttling.

invalid             3  (1 invalid and unchanged since an earlier run: counted, not recorded again)
  e-bad.example.com         notify_auth_key: required when notify_req_auth is true
  k-failed-bad.example.com  notify_url: has scheme "ftp": only http and https are allowed
  … 1 more

done                2
  g-done.example.com  applied (run 5)
  h-done.example.com  already_exists (run 6)
`

func TestTableDefaultAccountOnly(t *testing.T) {
	t.Parallel()
	tdb := fixture(t)
	p, err := plan.Build(testutil.Context(t), tdb.Pool, plan.Options{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != goldenDefaultOnly {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), goldenDefaultOnly)
	}
	if p.MultiAccount() || len(p.Accounts) != 1 || p.Accounts[0].Account != "default" || p.HeldBack != 0 {
		t.Errorf("accounts = %+v, held back %d", p.Accounts, p.HeldBack)
	}
	for _, c := range p.Classes {
		for _, e := range c.Domains {
			if e.Account != "default" {
				t.Errorf("%s: account %q, want default", e.Domain, e.Account)
			}
		}
	}
}

// setAccount moves domain to account ("" = the default account).
func setAccount(t *testing.T, pool *pgxpool.Pool, domain, account string) {
	t.Helper()
	var a any
	if account != "" {
		a = account
	}
	if _, err := pool.Exec(testutil.Context(t), `UPDATE desired_snapshot_callbacks SET account = $2 WHERE domain_name = $1`, domain, a); err != nil {
		t.Fatal(err)
	}
}

// accountFixture is fixture plus rows of three named accounts: tenant-a
// (known: one new row, one done), tenant-off (disabled: one new row) and
// tenant-x (no reconcile_accounts row: one new row).
func accountFixture(t *testing.T) *testdb.DB {
	t.Helper()
	tdb := fixture(t)
	p := tdb.Pool
	if _, err := p.Exec(testutil.Context(t), `INSERT INTO reconcile_accounts (name, credentials, disabled)
VALUES ('tenant-a', 'default', false), ('tenant-off', 'default', true), ('tenant-unused', 'default', false)`); err != nil {
		t.Fatal(err)
	}
	for d, a := range map[string]string{"l-tenant-new": "tenant-a", "m-tenant-done": "tenant-a", "n-unknown": "tenant-x", "o-off": "tenant-off"} {
		setDesired(t, p, d+".example.com", "https://hooks.example.com/"+d, false, "")
		setAccount(t, p, d+".example.com", a)
	}
	outcome(t, p, "m-tenant-done.example.com", model.OutcomeApplied, "", "")
	return tdb
}

func TestBuildAccounts(t *testing.T) {
	t.Parallel()
	tdb := accountFixture(t)
	type want struct {
		desired, pending, calls, invalidUnchanged int64
		counts                                    map[plan.Class]int64
		unknown, disabled                         bool
		flag                                      string
	}
	wantAccounts := []struct {
		name string
		want
	}{
		{"default", want{11, 8, 6, 1, map[plan.Class]int64{plan.Add: 3, plan.Update: 2, plan.RetryFailed: 1, plan.Invalid: 3, plan.Done: 2}, false, false, ""}},
		{"tenant-a", want{2, 1, 1, 0, map[plan.Class]int64{plan.Add: 1, plan.Update: 0, plan.RetryFailed: 0, plan.Invalid: 0, plan.Done: 1}, false, false, ""}},
		{"tenant-off", want{1, 1, 1, 0, map[plan.Class]int64{plan.Add: 1, plan.Update: 0, plan.RetryFailed: 0, plan.Invalid: 0, plan.Done: 0}, false, true, plan.FlagDisabled}},
		{"tenant-x", want{1, 1, 1, 0, map[plan.Class]int64{plan.Add: 1, plan.Update: 0, plan.RetryFailed: 0, plan.Invalid: 0, plan.Done: 0}, true, false, plan.FlagUnknown}},
	}
	for _, o := range []plan.Options{{Limit: 20}, {Limit: 20, PageSize: 1}, {Limit: 1, PageSize: 2}} {
		t.Run(fmt.Sprintf("limit %d page %d", o.Limit, o.PageSize), func(t *testing.T) {
			ctx := testutil.Context(t)
			tx, err := tdb.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			p, err := plan.Build(ctx, tx, o)
			if err != nil {
				t.Fatal(err)
			}
			if p.Desired != 15 || p.Pending != 11 || p.Calls != 9 || p.InvalidUnchanged != 1 || p.HeldBack != 2 || !p.MultiAccount() {
				t.Errorf("desired %d pending %d calls %d invalid_unchanged %d held back %d; want 15 11 9 1 2",
					p.Desired, p.Pending, p.Calls, p.InvalidUnchanged, p.HeldBack)
			}
			if len(p.Accounts) != len(wantAccounts) {
				t.Fatalf("accounts = %+v", p.Accounts)
			}
			for i, w := range wantAccounts {
				a := p.Accounts[i]
				got := want{a.Desired, a.Pending, a.Calls, a.InvalidUnchanged, a.Counts, a.Unknown, a.Disabled, a.Flag}
				if a.Account != w.name || fmt.Sprint(got) != fmt.Sprint(w.want) {
					t.Errorf("account %d = %s %+v\n want %s %+v", i, a.Account, got, w.name, w.want)
				}
			}
			// Per account, the plan agrees with reconcile_account_status.
			rows, err := tx.Query(ctx, `SELECT coalesce(account, 'default'), pending FROM reconcile_account_status`)
			if err != nil {
				t.Fatal(err)
			}
			viewPending := map[string]int64{}
			var name string
			var n int64
			if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { viewPending[name] = n; return nil }); err != nil {
				t.Fatal(err)
			}
			for _, a := range p.Accounts {
				if viewPending[a.Account] != a.Pending {
					t.Errorf("%s: plan %d pending, view %d", a.Account, a.Pending, viewPending[a.Account])
				}
			}
			// Every listed entry carries its row's account.
			wantAccount := map[string]string{"l-tenant-new.example.com": "tenant-a", "m-tenant-done.example.com": "tenant-a",
				"n-unknown.example.com": "tenant-x", "o-off.example.com": "tenant-off"}
			listed := 0
			for _, c := range p.Classes {
				for _, e := range c.Domains {
					listed++
					w := wantAccount[e.Domain]
					if w == "" {
						w = "default"
					}
					if e.Account != w {
						t.Errorf("%s %s: account %q, want %q", c.Class, e.Domain, e.Account, w)
					}
				}
			}
			if o.Limit == 20 && listed != 15 {
				t.Errorf("%d entries listed, want 15", listed)
			}
		})
	}
}

func TestRenderAccounts(t *testing.T) {
	t.Parallel()
	tdb := accountFixture(t)
	p, err := plan.Build(testutil.Context(t), tdb.Pool, plan.Options{Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := p.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	out := table.String()
	for _, want := range []string{
		"15 desired rows in 4 accounts; the next run would take up 11: call the API for 9 and record 2 invalid.\n" +
			"2 of the pending rows are in accounts the next run will not take up: they stay pending.\n\n",
		"\n\n  ACCOUNT     DESIRED  PENDING  ADD  UPDATE  RETRY-FAILED  INVALID  DONE\n" +
			"  default          11        8    3       2             1        3     2\n" +
			"  tenant-a          2        1    1       0             0        0     1\n" +
			"  tenant-off        1        1    1       0             0        0     0  disabled (rows stay pending)\n" +
			"  tenant-x          1        1    1       0             0        0     0  unknown account (rows stay pending)\n\nadd ",
		"  l-tenant-new.example.com  tenant-a\n",
		"  b-fixed.example.com       default     last outcome: invalid\n",
		"  n-unknown.example.com     tenant-x\n",
		"  m-tenant-done.example.com  tenant-a  applied (run ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	var js bytes.Buffer
	if err := p.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		HeldBack int64 `json:"held_back"`
		Accounts []struct {
			Account string           `json:"account"`
			Pending int64            `json:"pending"`
			Counts  map[string]int64 `json:"counts"`
			Unknown bool             `json:"unknown"`
			Flag    string           `json:"flag"`
		} `json:"accounts"`
		Classes []struct {
			Domains []struct{ Domain, Account string } `json:"domains"`
		} `json:"classes"`
	}
	if err := json.Unmarshal(js.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	x := raw.Accounts[3]
	if raw.HeldBack != 2 || len(raw.Accounts) != 4 || x.Account != "tenant-x" || !x.Unknown || x.Flag != plan.FlagUnknown ||
		x.Counts["add"] != 1 || x.Counts["retry-failed"] != 0 || raw.Accounts[0].Counts["retry-failed"] != 1 {
		t.Errorf("JSON accounts: %s", js.String())
	}
	if d := raw.Classes[0].Domains[0]; d.Domain != "a-new.example.com" || d.Account != "default" {
		t.Errorf("JSON first entry = %+v", d)
	}
	var back plan.Plan
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || fmt.Sprint(back) != fmt.Sprint(p) {
		t.Errorf("JSON round trip (%v):\n%+v\n%+v", err, back, p)
	}
}
