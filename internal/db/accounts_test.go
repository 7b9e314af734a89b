package db_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// recordIn writes one outcome for domain in account in a new run, with the
// row's current fingerprint.
func recordIn(t testing.TB, pool *pgxpool.Pool, domain, account string, o model.Outcome) int64 {
	t.Helper()
	ctx := testutil.Context(t)
	run := beginRun(t, pool)
	r := model.Result{Domain: domain, Outcome: o, Attempts: 1, Fingerprint: fingerprintOf(t, pool, domain), Account: account}
	if _, err := db.WriteOutcomes(ctx, pool, run, []model.Result{r}, db.RunCounters{Requests: 1}); err != nil {
		t.Fatalf("WriteOutcomes: %v", err)
	}
	if err := db.FinishRun(ctx, pool, run, db.RunSucceeded, "", 0); err != nil {
		t.Fatalf("FinishRun: %v", err)
	}
	return run
}

// stateAccount returns reconcile_domain_state.account of domain ("NULL"
// when NULL, "none" without a state row).
func stateAccount(t testing.TB, pool *pgxpool.Pool, domain string) string {
	t.Helper()
	var a *string
	err := pool.QueryRow(testutil.Context(t), `SELECT account FROM reconcile_domain_state WHERE domain_name = $1`, domain).Scan(&a)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "none"
	case err != nil:
		t.Fatal(err)
	case a == nil:
		return "NULL"
	}
	return *a
}

func TestLoadAccounts(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	got, err := db.LoadAccounts(ctx, pool)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("LoadAccounts on an empty table = %v, %v; want an empty map", got, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO reconcile_accounts
		(name, credentials, role_arn, external_id, session_name, profile, rate, endpoint, region_id, disabled, note) VALUES
		('prod-cn', 'ram_role_arn', 'acs:ram::1234567890123456:role/reconcile', 'ext-1', 'reconcile-prod', NULL, 20, 'live.aliyuncs.com', 'cn-shanghai', false, 'n'),
		('lab.2', 'profile', NULL, NULL, NULL, 'lab', NULL, NULL, NULL, true, NULL),
		('own', 'default', NULL, NULL, NULL, NULL, 2.5, NULL, 'cn-beijing', false, NULL)`); err != nil {
		t.Fatal(err)
	}
	got, err = db.LoadAccounts(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]db.Account{
		"prod-cn": {Name: "prod-cn", Credentials: db.CredentialsRAMRoleARN, RoleARN: "acs:ram::1234567890123456:role/reconcile",
			ExternalID: "ext-1", SessionName: "reconcile-prod", Rate: 20, Endpoint: "live.aliyuncs.com", Region: "cn-shanghai"},
		"lab.2": {Name: "lab.2", Credentials: db.CredentialsProfile, Profile: "lab", Disabled: true},
		"own":   {Name: "own", Credentials: db.CredentialsDefault, Rate: 2.5, Region: "cn-beijing"},
	}
	if !maps.Equal(got, want) {
		t.Fatalf("LoadAccounts = %+v\nwant %+v", got, want)
	}
}

func TestWorkAccounts(t *testing.T) {
	t.Parallel()
	// A state row: a domain the job configured (remote) or not, in account.
	type state struct {
		domain, account string
		remote          bool
	}
	tests := []struct {
		name            string
		desired         []desired
		states          []state
		want, withPrune []string
	}{
		{name: "nothing"},
		{name: "default account only",
			desired: []desired{{domain: "a.example.com"}, {domain: "b.example.com"}},
			want:    []string{""}, withPrune: []string{""}},
		{name: "named accounts only, sorted by bytes",
			desired: []desired{{domain: "a.example.com", account: "zz"}, {domain: "b.example.com", account: "a-b"},
				{domain: "c.example.com", account: "a.b"}, {domain: "d.example.com", account: "a-b"}, {domain: "e.example.com", account: "ab"}},
			want: []string{"a-b", "a.b", "ab", "zz"}, withPrune: []string{"a-b", "a.b", "ab", "zz"}},
		{name: "default and named",
			desired: []desired{{domain: "a.example.com", account: "b"}, {domain: "b.example.com"}, {domain: "c.example.com", account: "a"}},
			want:    []string{"", "a", "b"}, withPrune: []string{"", "a", "b"}},
		{name: "prune candidates add their accounts",
			desired: []desired{{domain: "a.example.com", account: "a"}},
			states: []state{
				{domain: "gone1.example.com", account: "gone", remote: true},
				{domain: "gone2.example.com", remote: true},
				{domain: "gone3.example.com", account: "a", remote: true},
				// never configured by the job: not a candidate
				{domain: "gone4.example.com", account: "never"},
				// still desired (in another account now): not a candidate
				{domain: "a.example.com", account: "old", remote: true},
			},
			want: []string{"a"}, withPrune: []string{"", "a", "gone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := testdb.New(t).Pool
			ctx := testutil.Context(t)
			for _, d := range tt.desired {
				d.url = "https://cb.example.com/"
				upsertDesired(t, pool, d)
			}
			for _, s := range tt.states {
				if _, err := pool.Exec(ctx, `INSERT INTO reconcile_domain_state (domain_name, account, remote_exists)
					VALUES ($1, $2, $3)`, s.domain, nullIfEmpty(s.account), s.remote); err != nil {
					t.Fatal(err)
				}
			}
			for _, withPrune := range []bool{false, true} {
				want := tt.want
				if withPrune {
					want = tt.withPrune
				}
				got, err := db.WorkAccounts(ctx, pool, withPrune)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("WorkAccounts(withPrune %v) = %q, want %q", withPrune, got, want)
				}
			}
		})
	}
}

// TestAccountFingerprint: schema 7 leaves the fingerprint of a
// default-account row as the five-argument function (versions 1 to 6)
// computes it, so upgrading makes nothing pending; a named account changes
// it, so moving a row to another account makes it pending there.
func TestAccountFingerprint(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	values := desired{url: "https://cb.example.com/x", reqAuth: true, key: "FingerprintKey0123456", region: "cn-shanghai"}
	fiveArgs := func(domain string) string {
		t.Helper()
		var fp string
		if err := pool.QueryRow(ctx, `SELECT reconcile_fingerprint(domain_name, notify_url, notify_req_auth, notify_auth_key, region_id)
			FROM desired_snapshot_callbacks WHERE domain_name = $1`, domain).Scan(&fp); err != nil {
			t.Fatal(err)
		}
		return fp
	}
	tests := []struct {
		account        string
		sameAsVersion6 bool
	}{
		{account: "", sameAsVersion6: true},
		{account: "prod"},
		{account: "lab"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		d := values
		d.domain, d.account = "fp.example.com", tt.account
		upsertDesired(t, pool, d)
		fp := fingerprintOf(t, pool, d.domain)
		if got := fp == fiveArgs(d.domain); got != tt.sameAsVersion6 {
			t.Errorf("account %q: fingerprint equal to the five-argument one: %v, want %v", tt.account, got, tt.sameAsVersion6)
		}
		if other, dup := seen[fp]; dup {
			t.Errorf("accounts %q and %q give the same fingerprint", tt.account, other)
		}
		seen[fp] = tt.account
	}
	// A named account is not the same as a NULL one spelled out: '' is refused.
	if _, err := pool.Exec(ctx, `UPDATE desired_snapshot_callbacks SET account = '' WHERE domain_name = 'fp.example.com'`); err == nil {
		t.Error("account '' accepted; want the CHECK to refuse it")
	}
}

// TestMoveAccountMakesPending: a done row moved to another account is
// pending again, in its new account only; done there, it is not; moved
// back, it is pending again (the cloud of the default account was never
// told about the values since).
func TestMoveAccountMakesPending(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	const dom = "move.example.com"
	pendingIn := func(account string) bool {
		t.Helper()
		rows, err := db.PendingPageIn(ctx, pool, account, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(rows) == 1 && rows[0].Domain == dom && rows[0].Account == account
	}
	steps := []struct {
		do          func()
		pendingIn   string // "-": pending nowhere
		stateAcct   string
		description string
	}{
		{func() { upsertDesired(t, pool, desired{domain: dom, url: "https://cb/"}) }, "", "none", "new in the default account"},
		{func() { recordIn(t, pool, dom, "", model.OutcomeApplied) }, "-", "NULL", "applied there"},
		{func() { upsertDesired(t, pool, desired{domain: dom, url: "https://cb/", account: "b"}) }, "b", "NULL", "moved to b"},
		{func() { recordIn(t, pool, dom, "b", model.OutcomeAlreadyExists) }, "-", "b", "done in b"},
		{func() { upsertDesired(t, pool, desired{domain: dom, url: "https://cb/"}) }, "", "b", "moved back"},
	}
	for _, s := range steps {
		s.do()
		for _, account := range []string{"", "b", "c"} {
			if got, want := pendingIn(account), s.pendingIn == account; got != want {
				t.Errorf("%s: pending in account %q = %v, want %v", s.description, account, got, want)
			}
		}
		all := allPending(t, pool, 10)
		if got, want := len(all) == 1, s.pendingIn != "-"; got != want {
			t.Errorf("%s: PendingPage %+v, want pending %v", s.description, all, want)
		}
		if len(all) == 1 && all[0].Account != s.pendingIn {
			t.Errorf("%s: PendingPage row account %q, want %q", s.description, all[0].Account, s.pendingIn)
		}
		if got := stateAccount(t, pool, dom); got != s.stateAcct {
			t.Errorf("%s: state account %s, want %s", s.description, got, s.stateAcct)
		}
	}
}

// TestPagesInKeepAccountsApart: the per-account pages and counts return
// exactly the rows of their account (the default account: account NULL),
// the view's, in keyset pages; the unfiltered pages carry each row's
// account; reconcile_account_status agrees.
func TestPagesInKeepAccountsApart(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	accounts := []string{"", "a", "a.b-c", "z"}
	// 120 rows, the accounts interleaved in name order; every third done,
	// every seventh invalid with unchanged values.
	for i := range 120 {
		upsertDesired(t, pool, desired{domain: fmt.Sprintf("d%03d.example.com", i), url: fmt.Sprintf("https://cb/%d", i),
			account: accounts[(i*7/3)%len(accounts)]})
	}
	run := beginRun(t, pool)
	var rs []model.Result
	for i := range 120 {
		d := fmt.Sprintf("d%03d.example.com", i)
		r := model.Result{Domain: d, Fingerprint: fingerprintOf(t, pool, d), Attempts: 1, Account: accounts[(i*7/3)%len(accounts)]}
		switch {
		case i%3 == 0:
			r.Outcome = model.OutcomeApplied
		case i%7 == 0:
			r.Outcome, r.ErrorCode = model.OutcomeInvalid, "Invalid.NotifyUrl"
		default:
			continue
		}
		rs = append(rs, r)
	}
	if _, err := db.WriteOutcomes(ctx, pool, run, rs, db.RunCounters{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO reconcile_accounts (name, credentials) VALUES ('a', 'default'), ('z', 'default')`); err != nil {
		t.Fatal(err)
	}

	// From the view: per account, the domains by name and the counts.
	type counts struct{ desired, pending, invalidUnchanged, done int64 }
	viewDomains := func(t *testing.T, account, where string) []string {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT domain_name FROM snapshot_callback_status
			WHERE account IS NOT DISTINCT FROM $1 AND `+where+` ORDER BY domain_name`, nullIfEmpty(account))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	page := func(t *testing.T, f func(after string, limit int) ([]model.Row, error), account string) []string {
		t.Helper()
		var out []string
		after := ""
		for {
			rows, err := f(after, 4)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if r.Account != account {
					t.Fatalf("account %q: row %s has account %q", account, r.Domain, r.Account)
				}
				out = append(out, r.Domain)
			}
			if len(rows) < 4 {
				return out
			}
			after = rows[len(rows)-1].Domain
		}
	}
	for _, account := range append(accounts, "nobody") {
		t.Run(model.AccountLabel(account), func(t *testing.T) {
			wantPending := viewDomains(t, account, "pending")
			wantDesired := viewDomains(t, account, "true")
			if account != "nobody" && len(wantPending) < 10 {
				t.Fatalf("only %d pending rows: the fixture is wrong", len(wantPending))
			}
			gotPending := page(t, func(after string, limit int) ([]model.Row, error) {
				return db.PendingPageIn(ctx, pool, account, after, limit)
			}, account)
			if !slices.Equal(gotPending, wantPending) {
				t.Errorf("PendingPageIn: %q\nwant %q", gotPending, wantPending)
			}
			gotDesired := page(t, func(after string, limit int) ([]model.Row, error) {
				return db.DesiredPageIn(ctx, pool, account, after, limit)
			}, account)
			if !slices.Equal(gotDesired, wantDesired) {
				t.Errorf("DesiredPageIn: %q\nwant %q", gotDesired, wantDesired)
			}
			for _, c := range []struct {
				name  string
				count func() (int64, error)
				want  int
			}{
				{"CountPendingIn", func() (int64, error) { return db.CountPendingIn(ctx, pool, account) }, len(wantPending)},
				{"CountDesiredIn", func() (int64, error) { return db.CountDesiredIn(ctx, pool, account) }, len(wantDesired)},
				{"CountInvalidUnchangedIn", func() (int64, error) { return db.CountInvalidUnchangedIn(ctx, pool, account) },
					len(viewDomains(t, account, "invalid_unchanged"))},
			} {
				if n, err := c.count(); err != nil || n != int64(c.want) {
					t.Errorf("%s = %d, %v; want %d", c.name, n, err, c.want)
				}
			}
			var st counts
			var unknown bool
			err := pool.QueryRow(ctx, `SELECT desired, pending, invalid_unchanged, done, unknown FROM reconcile_account_status
				WHERE account IS NOT DISTINCT FROM $1`, nullIfEmpty(account)).Scan(&st.desired, &st.pending, &st.invalidUnchanged, &st.done, &unknown)
			if account == "nobody" {
				if !errors.Is(err, pgx.ErrNoRows) {
					t.Errorf("reconcile_account_status has a row for an account without rows: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var notDone int64
			if err := pool.QueryRow(ctx, `SELECT not_done FROM reconcile_account_status WHERE account IS NOT DISTINCT FROM $1`,
				nullIfEmpty(account)).Scan(&notDone); err != nil {
				t.Fatal(err)
			}
			if st.desired != int64(len(wantDesired)) || st.pending != int64(len(wantPending)) || notDone != st.desired-st.done ||
				unknown != (account == "a.b-c") {
				t.Errorf("reconcile_account_status: %+v, not_done %d, unknown %v", st, notDone, unknown)
			}
		})
	}
	// The unfiltered pages carry each row's account.
	want := map[string]string{}
	for i := range 120 {
		want[fmt.Sprintf("d%03d.example.com", i)] = accounts[(i*7/3)%len(accounts)]
	}
	for name, f := range map[string]func(string, int) ([]model.Row, error){
		"PendingPage": func(after string, limit int) ([]model.Row, error) { return db.PendingPage(ctx, pool, after, limit) },
		"DesiredPage": func(after string, limit int) ([]model.Row, error) { return db.DesiredPage(ctx, pool, after, limit) },
	} {
		rows, err := f("", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Account != want[r.Domain] {
				t.Errorf("%s: %s has account %q, want %q", name, r.Domain, r.Account, want[r.Domain])
			}
		}
	}
	if _, err := db.PendingPageIn(ctx, pool, "a", "", 0); !errors.Is(err, db.ErrInvalidArgument) {
		t.Errorf("PendingPageIn with limit 0 = %v, want ErrInvalidArgument", err)
	}
}

// TestOutcomesAndMarksCarryTheAccount: WriteOutcomes stores each result's
// account in reconcile_outcomes and reconcile_domain_state (NULL for the
// default account), MarkSending each intent's in reconcile_domain_state;
// the state follows the latest of them.
func TestOutcomesAndMarksCarryTheAccount(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	outcomeAccount := func(run int64, domain string) string {
		t.Helper()
		var a *string
		if err := pool.QueryRow(ctx, `SELECT account FROM reconcile_outcomes WHERE run_id = $1 AND domain_name = $2`,
			run, domain).Scan(&a); err != nil {
			t.Fatal(err)
		}
		if a == nil {
			return "NULL"
		}
		return *a
	}
	type op struct {
		mark    bool   // MarkSending, else WriteOutcomes
		account string // of the intent or result
		fp      string // "" : the row's current fingerprint; "-": a Delete intent
	}
	tests := []struct {
		name      string
		ops       []op
		wantState string
	}{
		{"outcome in the default account", []op{{account: ""}}, "NULL"},
		{"outcome in a named account", []op{{account: "a"}}, "a"},
		{"marked for a named account", []op{{mark: true, account: "a"}}, "a"},
		{"marked for the default account", []op{{mark: true}}, "NULL"},
		{"outcome, then marked in another account", []op{{account: "a"}, {mark: true, account: "b"}}, "b"},
		{"marked, then outcome in another account", []op{{mark: true, account: "a"}, {account: "b"}}, "b"},
		{"marked twice with the same values, other accounts", []op{{mark: true, account: "a", fp: "f"}, {mark: true, account: "b", fp: "f"}}, "b"},
		{"delete intent in the state's account", []op{{account: "a"}, {mark: true, account: "a", fp: "-"}}, "a"},
		{"named, then default", []op{{account: "a"}, {account: ""}}, "NULL"},
	}
	for i, tt := range tests {
		dom := fmt.Sprintf("o%d.example.com", i)
		upsertDesired(t, pool, desired{domain: dom, url: "https://cb/"})
		for _, o := range tt.ops {
			fp := o.fp
			switch fp {
			case "":
				fp = fingerprintOf(t, pool, dom)
			case "-":
				fp = ""
			}
			if o.mark {
				if err := db.MarkSending(ctx, pool, []model.Intent{{Domain: dom, Fingerprint: fp, Account: o.account}}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			run := beginRun(t, pool)
			if _, err := db.WriteOutcomes(ctx, pool, run, []model.Result{{Domain: dom, Outcome: model.OutcomeApplied,
				Fingerprint: fp, Attempts: 1, Account: o.account}}, db.RunCounters{}); err != nil {
				t.Fatal(err)
			}
			want := o.account
			if want == "" {
				want = "NULL"
			}
			if got := outcomeAccount(run, dom); got != want {
				t.Errorf("%s: reconcile_outcomes.account %s, want %s", tt.name, got, want)
			}
		}
		if got := stateAccount(t, pool, dom); got != tt.wantState {
			t.Errorf("%s: reconcile_domain_state.account %s, want %s", tt.name, got, tt.wantState)
		}
	}
	// reconcile_failures_by_code groups by account too.
	run := beginRun(t, pool)
	if _, err := db.WriteOutcomes(ctx, pool, run, []model.Result{
		{Domain: "f1.example.com", Outcome: model.OutcomeFailed, Fingerprint: "x", ErrorCode: "E", ErrorMessage: "m", Account: "a"},
		{Domain: "f2.example.com", Outcome: model.OutcomeFailed, Fingerprint: "x", ErrorCode: "E", ErrorMessage: "m"},
		{Domain: "f3.example.com", Outcome: model.OutcomeFailed, Fingerprint: "x", ErrorCode: "E", ErrorMessage: "m", Account: "a"},
	}, db.RunCounters{}); err != nil {
		t.Fatal(err)
	}
	var groups []string
	rows, err := pool.Query(ctx, `SELECT coalesce(account, 'NULL') || ':' || count FROM reconcile_failures_by_code
		WHERE run_id = $1 ORDER BY 1`, run)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"NULL:1", "a:2"}; !slices.Equal(groups, want) {
		t.Errorf("reconcile_failures_by_code groups %q, want %q", groups, want)
	}
}

// TestPrunePageIn: prune candidates belong to the account of their
// reconcile_domain_state row; each account's pages and count hold its own
// candidates only; the unfiltered page carries the account.
func TestPrunePageIn(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	ctx := testutil.Context(t)
	upsertDesired(t, pool, desired{domain: "kept.example.com", url: "https://cb/", account: "a"})
	accountOf := map[string]string{
		"p1.example.com": "a", "p2.example.com": "", "p3.example.com": "a", "p4.example.com": "b",
		"p5.example.com": "a", "kept.example.com": "a",
	}
	for d, a := range accountOf {
		if _, err := pool.Exec(ctx, `INSERT INTO reconcile_domain_state (domain_name, account, remote_exists, last_fingerprint)
			VALUES ($1, $2, true, 'fp-' || $1)`, d, nullIfEmpty(a)); err != nil {
			t.Fatal(err)
		}
	}
	// p5 was handled by run `handled` already: not a candidate of it.
	handled := beginRun(t, pool)
	if _, err := pool.Exec(ctx, `UPDATE reconcile_domain_state SET last_run_id = $1 WHERE domain_name = 'p5.example.com'`, handled); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		run     int64
		account string
		want    []string
	}{
		{0, "a", []string{"p1.example.com", "p3.example.com", "p5.example.com"}},
		{handled, "a", []string{"p1.example.com", "p3.example.com"}},
		{0, "", []string{"p2.example.com"}},
		{0, "b", []string{"p4.example.com"}},
		{0, "c", nil},
	}
	for _, tt := range tests {
		var got []string
		after := ""
		for {
			rows, err := db.PrunePageIn(ctx, pool, tt.run, tt.account, after, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if r.Account != tt.account || !r.Applied || r.Fingerprint != "fp-"+r.Domain {
					t.Errorf("account %q: row %+v", tt.account, r)
				}
				got = append(got, r.Domain)
			}
			if len(rows) < 1 {
				break
			}
			after = rows[0].Domain
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("PrunePageIn(run %d, %q) = %q, want %q", tt.run, tt.account, got, tt.want)
		}
		if n, err := db.CountPruneIn(ctx, pool, tt.run, tt.account); err != nil || n != int64(len(tt.want)) {
			t.Errorf("CountPruneIn(run %d, %q) = %d, %v; want %d", tt.run, tt.account, n, err, len(tt.want))
		}
	}
	rows, err := db.PrunePage(ctx, pool, 0, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 {
		t.Fatalf("PrunePage: %d rows, want 5", len(rows))
	}
	for _, r := range rows {
		if r.Account != accountOf[r.Domain] {
			t.Errorf("PrunePage: %s has account %q, want %q", r.Domain, r.Account, accountOf[r.Domain])
		}
	}
}
