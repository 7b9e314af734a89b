package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/accounts"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/logging"
)

// simAccount is one simulator account of a multi-account test, reached
// through a profile of the shared credentials file.
type simAccount struct {
	name     string
	limit    int  // the simulator's limit (0: none)
	rate     int  // reconcile_accounts.rate (0: the run's --rate)
	disabled bool // the simulator refuses its key
	rows     int
}

func (a simAccount) keyID() string  { return "LTAI" + strings.ReplaceAll(a.name, "-", "") }
func (a simAccount) secret() string { return "secret-of-" + a.name + "-0123456789" }

// accountsHarness is a harness whose simulator serves accts next to the
// default account, whose reconcile_accounts names them (credentials
// "profile"), and whose shared credentials file holds their keys. It sets
// ALIBABA_CLOUD_CREDENTIALS_FILE: its tests cannot run in parallel.
func accountsHarness(t *testing.T, defaultRows int, accts ...simAccount) *harness {
	t.Helper()
	var sim []livesim.Account
	var ini strings.Builder
	for _, a := range accts {
		sim = append(sim, livesim.Account{Name: a.name, Limit: a.limit, Disabled: a.disabled,
			Keys: []livesim.AccessKey{{ID: a.keyID(), Secret: a.secret()}}})
		fmt.Fprintf(&ini, "[p-%s]\ntype = access_key\naccess_key_id = %s\naccess_key_secret = %s\n\n", a.name, a.keyID(), a.secret())
	}
	h := newHarness(t, livesim.Options{Accounts: sim})
	file := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(file, []byte(ini.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", file)
	for i := range defaultRows {
		h.insert(row{domain: fmt.Sprintf("d%03d.default.example.com", i), url: goodURL})
	}
	for _, a := range accts {
		var rate any
		if a.rate > 0 {
			rate = a.rate
		}
		h.exec(`INSERT INTO reconcile_accounts (name, credentials, profile, rate) VALUES ($1, 'profile', $2, $3)`,
			a.name, "p-"+a.name, rate)
		for i := range a.rows {
			h.exec(`INSERT INTO desired_snapshot_callbacks (domain_name, notify_url, account) VALUES ($1, $2, $3)`,
				fmt.Sprintf("d%03d.%s.example.com", i, a.name), goodURL, a.name)
		}
	}
	return h
}

// runAccount is a reconcile_run_accounts row.
type runAccount struct {
	Run                       int64
	Status, Reason, ErrorCode string
	Done, NotDone, Requests   int64
}

func (h *harness) runAccounts() map[string][]runAccount {
	h.t.Helper()
	rows, err := h.db.Pool.Query(context.Background(), `SELECT run_id, coalesce(account, 'default'), status,
		coalesce(reason, ''), coalesce(error_code, ''), done, not_done, requests FROM reconcile_run_accounts ORDER BY run_id`)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string][]runAccount{}
	var name string
	var r runAccount
	_, err = pgx.ForEachRow(rows, []any{&r.Run, &name, &r.Status, &r.Reason, &r.ErrorCode, &r.Done, &r.NotDone, &r.Requests}, func() error {
		out[name] = append(out[name], r)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// TestAccountsBudgetsAndRefusedCredentials: one run works three accounts
// and the default one at once. Each account's requests reach its own
// simulator account, within its own rate, never throttled; the account
// whose key is refused stops alone, its rows stay pending with the reason,
// and the run exits 7. Alone, the refused account exits 2 as a
// single-account run always did.
func TestAccountsBudgetsAndRefusedCredentials(t *testing.T) {
	accts := []simAccount{
		{name: "east", limit: 10, rate: 10, rows: 25},
		{name: "west", limit: 8, rate: 8, rows: 20},
		{name: "gone", disabled: true, rows: 10},
	}
	h := accountsHarness(t, 30, accts...)
	c := h.config()
	err := h.run(c, testSecret)
	if !errors.Is(err, ErrAccountsFailed) || ExitCode(err) != ExitAccountsFailed {
		t.Fatalf("run = %v (exit %d), want exit %d", err, ExitCode(err), ExitAccountsFailed)
	}
	latest := h.latest()
	for domain, o := range latest {
		account := strings.Split(domain, ".")[1]
		switch {
		case account == "gone":
			if o.Outcome != "" || !o.Pending {
				t.Errorf("%s of the refused account: outcome %q, pending %v; want no outcome, pending", domain, o.Outcome, o.Pending)
			}
		case o.Outcome != "applied":
			t.Errorf("%s: outcome %q (%s), want applied", domain, o.Outcome, o.Message)
		default:
			simName := account
			if account == "default" {
				simName = livesim.DefaultAccount
			}
			if _, ok := h.sim.ConfigIn(simName, domain); !ok {
				t.Errorf("%s is not in simulator account %s", domain, simName)
			}
		}
	}
	for _, a := range accts[:2] {
		st := h.sim.StatsFor(a.name)
		if st.Throttled != 0 {
			t.Errorf("account %s was throttled %d times", a.name, st.Throttled)
		}
		if n := h.sim.MaxInWindowFor(a.name, time.Second); n > a.rate {
			t.Errorf("account %s: %d requests in one 1-second window, its rate is %d", a.name, n, a.rate)
		}
		if st.Total != a.rows {
			t.Errorf("account %s received %d requests for %d rows", a.name, st.Total, a.rows)
		}
	}
	ra := h.runAccounts()
	for name, want := range map[string]runAccount{
		"default": {Status: db.RunAccountSucceeded, Done: 30, Requests: 30},
		"east":    {Status: db.RunAccountSucceeded, Done: 25, Requests: 25},
		"west":    {Status: db.RunAccountSucceeded, Done: 20, Requests: 20},
	} {
		if got := ra[name]; len(got) != 1 || got[0].Status != want.Status || got[0].Done != want.Done || got[0].Requests != want.Requests {
			t.Errorf("run account %s = %+v, want %+v", name, got, want)
		}
	}
	gone := ra["gone"]
	if len(gone) != 1 || gone[0].Status != db.RunAccountFailed || gone[0].ErrorCode != "InvalidAccessKeyId.Inactive" ||
		!strings.Contains(gone[0].Reason, "InvalidAccessKeyId.Inactive") {
		t.Errorf("run account gone = %+v, want failed with InvalidAccessKeyId.Inactive", gone)
	}
	var outcomeAccounts int
	if err := h.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM reconcile_outcomes o JOIN desired_snapshot_callbacks d USING (domain_name)
		 WHERE o.account IS NOT DISTINCT FROM d.account`).Scan(&outcomeAccounts); err != nil || outcomeAccounts != 75 {
		t.Errorf("outcomes that name their row's account: %d (%v), want 75", outcomeAccounts, err)
	}
	logText := h.log.String()
	for _, a := range accts {
		if strings.Contains(logText, a.secret()) {
			t.Fatalf("the log shows account %s's secret", a.name)
		}
	}

	// The refused account alone is a single-account run: exit 2.
	c.Accounts = "gone"
	if err := h.run(c, testSecret); ExitCode(err) != ExitConfig {
		t.Fatalf("run --accounts gone = %v (exit %d), want exit %d", err, ExitCode(err), ExitConfig)
	}
}

// TestAccountShardsNeverOverlap: the shards of --shard i/n, run at once as
// separate runs against one database, work disjoint sets of accounts whose
// union is every account, and each row gets exactly one outcome.
func TestAccountShardsNeverOverlap(t *testing.T) {
	var accts []simAccount
	for i := range 7 {
		accts = append(accts, simAccount{name: fmt.Sprintf("acct-%d", i), rows: 6})
	}
	h := accountsHarness(t, 6, accts...)
	const n = 3
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		c := h.config()
		c.Shard = fmt.Sprintf("%d/%d", i, n)
		wg.Go(func() { errs[i] = h.run(c, testSecret) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("shard %d/%d: %v", i, n, err)
		}
	}
	var perDomain []int
	rows, err := h.db.Pool.Query(context.Background(), `SELECT count(o.id) FROM desired_snapshot_callbacks d
		LEFT JOIN reconcile_outcomes o USING (domain_name) GROUP BY d.domain_name`)
	if err != nil {
		t.Fatal(err)
	}
	perDomain, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if len(perDomain) != 48 || slices.Min(perDomain) != 1 || slices.Max(perDomain) != 1 {
		t.Fatalf("outcomes per domain: %v, want 48 domains with one each", perDomain)
	}
	runOf := map[string]int64{}
	for name, ras := range h.runAccounts() {
		if len(ras) != 1 || ras[0].Status != db.RunAccountSucceeded {
			t.Fatalf("account %s: %+v, want one succeeded run", name, ras)
		}
		runOf[name] = ras[0].Run
	}
	if len(runOf) != 8 {
		t.Fatalf("accounts worked: %v, want all 8", runOf)
	}
	// The accounts of one run are those of one shard.
	shardRun := map[int]int64{}
	for name, run := range runOf {
		acct := name
		if acct == "default" {
			acct = ""
		}
		s := int(accounts.Hash(acct) % n)
		if r, ok := shardRun[s]; ok && r != run {
			t.Errorf("shard %d's accounts were worked by runs %d and %d", s, r, run)
		}
		shardRun[s] = run
	}
}

// TestAccountExclusion: a run skips the accounts another run holds and
// works the others; a run whose accounts are all held exits 3.
func TestAccountExclusion(t *testing.T) {
	h := accountsHarness(t, 0, simAccount{name: "held", rows: 3}, simAccount{name: "free", rows: 3})
	lock, err := db.AcquireRunLease(context.Background(), h.db.Pool.Config().ConnConfig, []string{"held"}, db.RunLockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release(context.Background())
	c := h.config()
	c.Accounts = "held"
	if err := h.run(c, testSecret); ExitCode(err) != ExitLocked {
		t.Fatalf("run --accounts held = %v (exit %d), want exit %d", err, ExitCode(err), ExitLocked)
	}
	c.Accounts = ""
	if err := h.run(c, testSecret); err != nil {
		t.Fatalf("run over both accounts: %v", err)
	}
	ra := h.runAccounts()
	if got := ra["held"]; len(got) != 1 || got[0].Status != db.RunAccountSkipped || !strings.Contains(got[0].Reason, "held by another run") {
		t.Errorf("held account: %+v, want skipped", got)
	}
	if got := ra["free"]; len(got) != 1 || got[0].Status != db.RunAccountSucceeded || got[0].Done != 3 {
		t.Errorf("free account: %+v, want succeeded with 3 done", got)
	}
	for domain, o := range h.latest() {
		if strings.Contains(domain, ".held.") != (o.Outcome == "") {
			t.Errorf("%s: outcome %q", domain, o.Outcome)
		}
	}
}

// TestAccountAssumesRole: an account whose credentials are ram_role_arn is
// reached by assuming its role (the simulator's STS, over TLS) with the
// job's own key, its ExternalId and session name; its requests land in the
// role's account. A role whose trust policy wants another ExternalId
// refuses, and only that account stops.
func TestAccountAssumesRole(t *testing.T) {
	sim := []livesim.Account{
		{Name: "tenant", RoleARN: "acs:ram::1234567890123456:role/reconcile", ExternalID: "ext-tenant-1", Trusted: []string{testKeyID}},
		{Name: "other", RoleARN: "acs:ram::6543210987654321:role/reconcile", ExternalID: "ext-other-1", Trusted: []string{testKeyID}},
	}
	h := newHarness(t, livesim.Options{Accounts: sim})
	sts := livesim.ServeTLS(h.sim, stsCert)
	t.Cleanup(sts.Close)
	h.exec(`INSERT INTO reconcile_accounts (name, credentials, role_arn, external_id, session_name) VALUES
		('tenant', 'ram_role_arn', 'acs:ram::1234567890123456:role/reconcile', 'ext-tenant-1', 'reconcile-test'),
		('other', 'ram_role_arn', 'acs:ram::6543210987654321:role/reconcile', 'ext-WRONG', NULL)`)
	for i := range 5 {
		for _, a := range []string{"tenant", "other"} {
			h.exec(`INSERT INTO desired_snapshot_callbacks (domain_name, notify_url, account) VALUES ($1, $2, $3)`,
				fmt.Sprintf("r%d.%s.example.com", i, a), goodURL, a)
		}
	}
	c := h.config()
	c.STSEndpoint = sts.URL
	err := h.run(c, testSecret)
	if !errors.Is(err, ErrAccountsFailed) {
		t.Fatalf("run = %v (exit %d), want exit %d", err, ExitCode(err), ExitAccountsFailed)
	}
	for i := range 5 {
		d := fmt.Sprintf("r%d.tenant.example.com", i)
		if _, ok := h.sim.ConfigIn("tenant", d); !ok {
			t.Errorf("%s is not in the role's account", d)
		}
	}
	if n := h.sim.STSCallsFor("tenant"); n.Issued < 1 {
		t.Errorf("STS issued %d credentials for tenant, want at least 1", n.Issued)
	}
	ra := h.runAccounts()
	if got := ra["tenant"]; len(got) != 1 || got[0].Status != db.RunAccountSucceeded || got[0].Done != 5 {
		t.Errorf("tenant: %+v, want succeeded with 5 done", got)
	}
	if got := ra["other"]; len(got) != 1 || got[0].Status != db.RunAccountFailed || got[0].ErrorCode != "NoPermission" {
		t.Errorf("other: %+v, want failed with NoPermission", got)
	}
	if n := len(h.sim.ConfigsIn("other")); n != 0 {
		t.Errorf("the refused account holds %d configs", n)
	}
	logText := h.log.String()
	for _, s := range []string{testSecret, "ext-WRONG"} {
		if strings.Contains(logText, s) {
			t.Errorf("the log shows %q", s)
		}
	}
}

// TestAccountsPruneAndVerify: --prune deletes a config no longer desired in
// the account that holds it, not in another with the same domain; verify
// describes each account's rows in their own account.
func TestAccountsPruneAndVerify(t *testing.T) {
	h := accountsHarness(t, 2, simAccount{name: "north", rows: 3})
	c := h.config()
	if err := h.run(c, testSecret); err != nil {
		t.Fatal(err)
	}
	// The same domain name exists in the default account (outside the job).
	h.sim.PutConfig("d000.north.example.com", livesim.Config{NotifyURL: goodURL})
	h.exec(`DELETE FROM desired_snapshot_callbacks WHERE domain_name = 'd000.north.example.com'`)
	c.Prune = true
	if err := h.run(c, testSecret); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.sim.ConfigIn("north", "d000.north.example.com"); ok {
		t.Error("the pruned config is still in account north")
	}
	if _, ok := h.sim.Config("d000.north.example.com"); !ok {
		t.Error("prune deleted the default account's config of the same name")
	}
	var account string
	if err := h.db.Pool.QueryRow(context.Background(), `SELECT coalesce(account, 'default') FROM reconcile_outcomes
		WHERE outcome = 'deleted'`).Scan(&account); err != nil || account != "north" {
		t.Errorf("the deleted outcome's account is %q (%v), want north", account, err)
	}

	h.sim.PutConfigIn("north", "d001.north.example.com", livesim.Config{NotifyURL: "https://elsewhere.example.com/"})
	vc := h.config()
	err := Verify(context.Background(), vc, Env{Stdout: h.log, Stderr: h.log, Redactor: h.red,
		Logger:      logging.New(h.log, logging.Options{Format: "json", Level: "info", Redactor: h.red}),
		Credentials: live.StaticCredentials(testKeyID, testSecret, "")})
	if ExitCode(err) != ExitNotDone {
		t.Fatalf("verify = %v, want exit 1 (one drifted)", err)
	}
	got := map[string]string{}
	for d, o := range h.latest() {
		got[d] = o.Outcome
	}
	want := map[string]string{"d000.default.example.com": "in_sync", "d001.default.example.com": "in_sync",
		"d001.north.example.com": "drifted", "d002.north.example.com": "in_sync"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("verify outcomes %v, want %v", got, want)
	}
}

// TestEmptyDesiredStateStillRecordsARun: with no desired row at all, a run
// is the default account's, empty: it records its run row as every run
// does (the no-recent-run alert reads it).
func TestEmptyDesiredStateStillRecordsARun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	if err := h.run(h.config(), testSecret); err != nil {
		t.Fatal(err)
	}
	var runs int
	if err := h.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM reconcile_runs WHERE status = 'succeeded' AND exit_code = 0`).Scan(&runs); err != nil || runs != 1 {
		t.Fatalf("succeeded runs: %d (%v), want 1", runs, err)
	}
	if got := h.runAccounts(); len(got["default"]) != 1 {
		t.Fatalf("run accounts: %v, want the default account's", got)
	}
}

// TestAccountsInterrupted: a signal during a multi-account run stops every
// account: the run exits 4, and the run and each account it took up are
// recorded interrupted (none left running), with what they finished.
func TestAccountsInterrupted(t *testing.T) {
	h := accountsHarness(t, 5, simAccount{name: "east", rows: 5}, simAccount{name: "west", rows: 5})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(cancel) // the first request "receives" SIGTERM, then is answered
		h.sim.ServeHTTP(w, r)
	}))
	defer front.Close()
	c := h.config()
	c.Endpoint = front.URL
	c.Concurrency = 1
	env := Env{Stdout: h.log, Stderr: h.log, Redactor: h.red,
		Logger:      logging.New(h.log, logging.Options{Format: "json", Level: "info", Redactor: h.red}),
		Credentials: live.StaticCredentials(testKeyID, testSecret, "")}
	if err := Run(ctx, c, env); ExitCode(err) != ExitInterrupted {
		t.Fatalf("run = %v (exit %d), want exit %d", err, ExitCode(err), ExitInterrupted)
	}
	var status string
	if err := h.db.Pool.QueryRow(context.Background(), `SELECT status FROM reconcile_runs`).Scan(&status); err != nil ||
		status != "interrupted" {
		t.Fatalf("run status %q (%v), want interrupted", status, err)
	}
	ra := h.runAccounts()
	if len(ra) != 3 {
		t.Fatalf("run accounts %v, want 3", ra)
	}
	for name, rs := range ra {
		if len(rs) != 1 || rs[0].Status != db.RunAccountInterrupted {
			t.Errorf("account %s: %+v, want interrupted", name, rs)
		}
	}
}
