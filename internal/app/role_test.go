package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
)

// roleFile is deploy/postgres-role.sql, found from this source file.
func roleFile(t *testing.T) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "deploy", "postgres-role.sql"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withUser returns connString logging in as user with password.
func withUser(t *testing.T, connString, user, password string) string {
	t.Helper()
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(user, password)
		return u.String()
	}
	return connString + fmt.Sprintf(" user=%s password=%s", user, password) // key=value: a later keyword wins
}

// roles are one test's roles, made from deploy/postgres-role.sql with
// unique names (roles are cluster-wide).
type roles struct {
	job, importer string // the file's group roles, renamed
	retention     string // the file's retention group role, renamed; logs in itself
	retentionURL  string
	jobLogin      string // a login role, member of job
	jobURL        string // logs in as jobLogin
	importerURL   string // logs in as importer itself (ALTER ROLE ... LOGIN)
}

var roleNames = regexp.MustCompile(`\breconcile_(job|importer|retention)\b`)

// createRoles runs the role file (twice: it must be idempotent) in h's
// database with the role names made unique, adds the logins the file's
// comment shows, and drops everything when the test ends.
func createRoles(t *testing.T, h *harness) roles {
	t.Helper()
	suffix := strings.TrimPrefix(h.db.Name, "reconcile_test_")
	r := roles{job: "rtest_job_" + suffix, importer: "rtest_imp_" + suffix, jobLogin: "rtest_cron_" + suffix,
		retention: "rtest_ret_" + suffix}
	const password = "role-test-password"
	sql := roleNames.ReplaceAllStringFunc(roleFile(t), func(m string) string {
		switch m {
		case "reconcile_job":
			return r.job
		case "reconcile_retention":
			return r.retention
		}
		return r.importer
	})
	ctx := context.Background()
	admin := h.db.Pool // superuser, in the test's database
	t.Cleanup(func() {
		// Before the database is dropped (cleanups run last-in first-out):
		// revoke what the roles were granted here and on the database, then
		// drop them.
		for _, q := range []string{
			fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN ('%s', '%s', '%s', '%s')`, r.job, r.importer, r.jobLogin, r.retention),
			fmt.Sprintf(`DROP OWNED BY %s, %s, %s, %s`, r.jobLogin, r.job, r.importer, r.retention),
			fmt.Sprintf(`DROP ROLE IF EXISTS %s, %s, %s, %s`, r.jobLogin, r.job, r.importer, r.retention),
		} {
			if _, err := admin.Exec(context.Background(), q); err != nil && !isUndefinedRole(err) {
				t.Errorf("cleanup: %s: %v", q, err)
			}
		}
	})
	// A hardened database: PUBLIC may not connect, create temporary tables,
	// use schema public or call reconcile's functions, so the file must give
	// the roles everything they need itself. (This database only.)
	db := pgx.Identifier{h.db.Name}.Sanitize()
	for _, q := range []string{
		`REVOKE ALL ON DATABASE ` + db + ` FROM PUBLIC`,
		`REVOKE ALL ON SCHEMA public FROM PUBLIC`,
		`REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i := 1; i <= 2; i++ {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("deploy/postgres-role.sql (run %d): %v", i, err)
		}
	}
	for _, q := range []string{
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s' IN ROLE %s`, r.jobLogin, password, r.job),
		fmt.Sprintf(`ALTER ROLE %s LOGIN PASSWORD '%s'`, r.importer, password),
		fmt.Sprintf(`ALTER ROLE %s LOGIN PASSWORD '%s'`, r.retention, password),
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var login bool
	if err := admin.QueryRow(ctx, `SELECT rolcanlogin FROM pg_roles WHERE rolname = $1`, r.job).Scan(&login); err != nil || login {
		t.Errorf("the file's job role can log in (%v, %v): want NOLOGIN", login, err)
	}
	r.jobURL = withUser(t, h.db.URL, r.jobLogin, password)
	r.importerURL = withUser(t, h.db.URL, r.importer, password)
	r.retentionURL = withUser(t, h.db.URL, r.retention, password)
	return r
}

func isUndefinedRole(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42704"
}

// connect opens a connection as the role of connString, closed at the end.
func connect(t *testing.T, connString string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), connString)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// denied asserts that each statement fails with insufficient_privilege
// (42501) on conn, and changes nothing.
func denied(t *testing.T, who string, conn *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		_, err := conn.Exec(context.Background(), s)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s: %s: error %v, want permission denied (42501)", who, s, err)
		}
	}
}

// TestLeastPrivilegeRoles runs the job (run with several outcome classes,
// dry run, verify, prune, plan, report) as the job role of
// deploy/postgres-role.sql, and import as its importer role, and checks that
// each role cannot do what it must not.
func TestLeastPrivilegeRoles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{ForceErrors: map[string]livesim.ForcedError{
		"refused.role.example.com": {Status: 400, Code: "InvalidParameter", Message: "refused"},
	}})
	r := createRoles(t, h)
	ctx := context.Background()

	h.sim.PutConfig("exists.role.example.com", livesim.Config{NotifyURL: goodURL})
	var rows []row
	for i := range 8 {
		rows = append(rows, row{fmt.Sprintf("r%d.role.example.com", i), goodURL, i%2 == 0,
			map[bool]any{true: "roleTestKey123456789", false: nil}[i%2 == 0], nil})
	}
	rows = append(rows,
		row{"exists.role.example.com", goodURL, false, nil, nil},
		row{"refused.role.example.com", goodURL, false, nil, nil},
		row{"invalid.role.example.com", "ftp://hooks.example.com/x", false, nil, nil},
	)
	h.insert(rows...)

	c := h.config()
	c.DatabaseURL = r.jobURL
	env := Env{Stdout: h.log, Stderr: h.log, Redactor: h.red, Logger: nopLogger(h),
		Credentials: live.StaticCredentials(testKeyID, testSecret, "")}

	// Dry run, then run: applied, already_exists, failed, invalid.
	dry := c
	dry.DryRun = true
	if err := h.run(dry, testSecret); ExitCode(err) != ExitPending {
		t.Fatalf("dry run as the job role: %v (exit %d), want exit 5 (rows pending)\n%s", err, ExitCode(err), h.log.String())
	}
	if err := h.run(c, testSecret); !errors.Is(err, ErrNotDone) {
		t.Fatalf("run as the job role: %v, want ErrNotDone (a failed and an invalid row)\n%s", err, h.log.String())
	}
	// Drift made outside the job; verify finds it; the next run repairs it.
	h.sim.PutConfig("r1.role.example.com", livesim.Config{NotifyURL: "https://elsewhere.example.com/"})
	late := row{"late.role.example.com", goodURL, false, nil, nil} // desired, never applied: verify says missing
	h.insert(late)
	rows = append(rows, late)
	if err := Verify(ctx, c, env); !errors.Is(err, ErrNotDone) {
		t.Fatalf("verify as the job role: %v, want ErrNotDone (drift found)\n%s", err, h.log.String())
	}
	if err := h.run(c, testSecret); !errors.Is(err, ErrNotDone) {
		t.Fatalf("repairing run as the job role: %v, want ErrNotDone\n%s", err, h.log.String())
	}

	// The importer replaces the desired state (dropping two rows, fixing
	// the invalid one, removing the refused one); the job prunes.
	csv := "domain_name,notify_url,notify_req_auth,notify_auth_key,region_id\n"
	for _, x := range rows {
		switch x.domain {
		case "r6.role.example.com", "r7.role.example.com", "refused.role.example.com":
			continue
		case "invalid.role.example.com":
			x.url = goodURL
		}
		key, _ := x.key.(string)
		csv += fmt.Sprintf("%s,%s,%v,%s,\n", x.domain, x.url, x.auth, key)
	}
	file := filepath.Join(t.TempDir(), "desired.csv")
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Import(ctx, ImportConfig{DatabaseURL: r.importerURL, File: file, Replace: true, Format: FormatTable}, env); err != nil {
		t.Fatalf("import --replace as the importer role: %v\n%s", err, h.log.String())
	}
	if n := h.count(`SELECT count(*) FROM desired_snapshot_callbacks`); n != len(rows)-3 {
		t.Fatalf("%d desired rows after the import, want %d", n, len(rows)-3)
	}
	pc := c
	pc.Prune = true
	if err := h.run(pc, testSecret); err != nil {
		t.Fatalf("run --prune as the job role: %v\n%s", err, h.log.String())
	}
	for _, d := range []string{"r6.role.example.com", "r7.role.example.com"} {
		if _, ok := h.sim.Config(d); ok {
			t.Errorf("%s still configured after --prune", d)
		}
	}
	if err := Plan(ctx, PlanConfig{DatabaseURL: r.jobURL, Limit: 10, Format: FormatJSON}, env); err != nil {
		t.Errorf("plan as the job role: %v", err)
	}
	if err := Report(ctx, ReportConfig{DatabaseURL: r.jobURL, Format: FormatJSON}, env); err != nil {
		t.Errorf("report as the job role: %v", err)
	}

	// Everything the job did is recorded, every class of outcome, and it
	// all ran as the job's login role.
	if n := h.count(`SELECT count(*) FROM snapshot_callback_status WHERE NOT done OR pending`); n != 0 {
		t.Errorf("%d desired rows not done", n)
	}
	if n := h.count(`SELECT count(*) FROM (SELECT 1 FROM reconcile_outcomes GROUP BY run_id, domain_name HAVING count(*) > 1) x`); n != 0 {
		t.Errorf("%d (run, domain) pairs with two outcomes", n)
	}
	for d := range h.sim.Configs() {
		if n := h.sim.SuccessfulAdds(d); n > 1 {
			t.Errorf("%s added %d times", d, n)
		}
	}
	// Every class's counter equals its outcome rows, in every run.
	if n := h.count(`SELECT count(*) FROM reconcile_runs r, LATERAL (SELECT
		    count(*) FILTER (WHERE outcome = 'applied') a, count(*) FILTER (WHERE outcome = 'already_exists') e,
		    count(*) FILTER (WHERE outcome = 'updated') u, count(*) FILTER (WHERE outcome = 'invalid') i,
		    count(*) FILTER (WHERE outcome = 'failed') f, count(*) FILTER (WHERE outcome = 'drifted') dr,
		    count(*) FILTER (WHERE outcome = 'in_sync') s, count(*) FILTER (WHERE outcome = 'missing') m,
		    count(*) FILTER (WHERE outcome = 'deleted') de
		  FROM reconcile_outcomes o WHERE o.run_id = r.id) c
		WHERE (r.applied, r.already_exists, r.updated, r.invalid, r.failed, r.drifted, r.in_sync, r.missing, r.deleted)
		   <> (c.a, c.e, c.u, c.i, c.f, c.dr, c.s, c.m, c.de)`); n != 0 {
		t.Errorf("%d runs whose counters disagree with their outcome rows", n)
	}
	var classes []string
	q, err := h.db.Pool.Query(ctx, `SELECT DISTINCT outcome FROM reconcile_outcomes ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	if classes, err = pgx.CollectRows(q, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	want := "already_exists applied deleted drifted failed in_sync invalid missing updated"
	if got := strings.Join(classes, " "); got != want {
		t.Errorf("outcome classes %q, want %q", got, want)
	}
	if n := h.count(`SELECT count(*) FROM reconcile_runs WHERE status = 'running' OR finished_at IS NULL`); n != 0 {
		t.Errorf("%d runs left unfinished", n)
	}
	if n := h.count(`SELECT count(*) FROM reconcile_runs`); n != 5 {
		t.Errorf("%d runs recorded, want 5 (dry run, run, verify, run, prune)", n)
	}

	// What the job role must not do.
	jobConn := connect(t, r.jobURL)
	var user string
	if err := jobConn.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil || user != r.jobLogin {
		t.Fatalf("connected as %q (%v), want %q", user, err, r.jobLogin)
	}
	before := h.count(`SELECT count(*) FROM reconcile_outcomes`)
	denied(t, "job", jobConn,
		`UPDATE desired_snapshot_callbacks SET notify_url = 'https://evil.example.com/'`,
		`DELETE FROM desired_snapshot_callbacks`,
		`INSERT INTO desired_snapshot_callbacks (domain_name, notify_url) VALUES ('x.role.example.com', 'https://x.example.com/')`,
		`TRUNCATE desired_snapshot_callbacks`,
		`UPDATE reconcile_outcomes SET outcome = 'applied'`,
		`DELETE FROM reconcile_outcomes`,
		`TRUNCATE reconcile_outcomes`,
		`DELETE FROM reconcile_runs`,
		`DELETE FROM reconcile_domain_state`,
		`UPDATE reconcile_schema_version SET version = 0`,
		`DROP TABLE reconcile_outcomes`,
		`DROP TABLE desired_snapshot_callbacks`,
		`DROP VIEW snapshot_callback_status`,
		`ALTER TABLE reconcile_runs ADD COLUMN evil int`,
		`CREATE TABLE public.evil (id int)`,
		`CREATE ROLE evil_role`,
	)
	if after := h.count(`SELECT count(*) FROM reconcile_outcomes`); after != before {
		t.Errorf("outcomes went from %d to %d after the refused statements", before, after)
	}

	// What the importer role must not do.
	impConn := connect(t, r.importerURL)
	denied(t, "importer", impConn,
		`SELECT count(*) FROM reconcile_outcomes`,
		`INSERT INTO reconcile_outcomes (run_id, domain_name, outcome, fingerprint) VALUES (1, 'x', 'applied', 'x')`,
		`UPDATE reconcile_runs SET status = 'failed'`,
		`UPDATE reconcile_domain_state SET done_fingerprint = NULL`,
		`DROP TABLE desired_snapshot_callbacks`,
		`ALTER TABLE desired_snapshot_callbacks ADD COLUMN evil int`,
		`CREATE TABLE public.evil (id int)`,
	)
	if n := h.count(`SELECT count(*) FROM desired_snapshot_callbacks`); n != len(rows)-3 {
		t.Errorf("%d desired rows after the refused statements, want %d", n, len(rows)-3)
	}

	// The retention role prunes history (made old here) and can do
	// nothing else.
	h.exec(`UPDATE reconcile_outcomes SET finished_at = finished_at - interval '100 days'`)
	runsBefore := h.count(`SELECT count(*) FROM reconcile_runs`)
	outcomesBefore := h.count(`SELECT count(*) FROM reconcile_outcomes`)
	latest := h.count(`SELECT count(*) FROM reconcile_domain_state WHERE last_outcome_id IS NOT NULL`)
	pc2 := HistoryPruneConfig{DatabaseURL: r.retentionURL, OlderThan: 90 * 24 * time.Hour, BatchSize: 5, Format: FormatTable}
	if err := PruneHistory(ctx, pc2, env); err != nil {
		t.Fatalf("history prune as the retention role: %v\n%s", err, h.log.String())
	}
	if n := h.count(`SELECT count(*) FROM reconcile_outcomes`); n != latest || n >= outcomesBefore {
		t.Errorf("%d outcomes after the prune (%d before), want only the %d latest", n, outcomesBefore, latest)
	}
	if n := h.count(`SELECT count(*) FROM reconcile_runs`); n != runsBefore {
		t.Errorf("%d runs after the prune, want %d", n, runsBefore)
	}
	retConn := connect(t, r.retentionURL)
	denied(t, "retention", retConn,
		`DELETE FROM reconcile_runs`,
		`UPDATE reconcile_runs SET status = 'failed'`,
		`DELETE FROM reconcile_domain_state`,
		`UPDATE reconcile_domain_state SET last_outcome_id = NULL`,
		`INSERT INTO reconcile_outcomes (run_id, domain_name, outcome, fingerprint) VALUES (1, 'x', 'applied', 'x')`,
		`UPDATE reconcile_outcomes SET outcome = 'applied'`,
		`TRUNCATE reconcile_outcomes`,
		`SELECT count(*) FROM desired_snapshot_callbacks`,
		`DELETE FROM desired_snapshot_callbacks`,
		`DROP TABLE reconcile_outcomes`,
		`CREATE TABLE public.evil (id int)`,
	)
}

// TestRoleFileGrantsOnlyWhatItSays: the privileges the file gives on
// reconcile's tables and views are exactly the documented ones (a GRANT
// ALL slipped in later would pass the functional test above).
func TestRoleFileGrantsOnlyWhatItSays(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	r := createRoles(t, h)
	rows, err := h.db.Pool.Query(context.Background(), `
		SELECT grantee, table_name, string_agg(privilege_type, ',' ORDER BY privilege_type)
		FROM information_schema.role_table_grants
		WHERE grantee IN ($1, $2, $3) GROUP BY 1, 2 ORDER BY 1, 2`, r.job, r.importer, r.retention)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var who, table, privs string
	if _, err := pgx.ForEachRow(rows, []any{&who, &table, &privs}, func() error {
		got[strings.TrimSuffix(strings.TrimSuffix(who, strings.TrimPrefix(h.db.Name, "reconcile_test_")), "_")+"."+table] = privs
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"rtest_job.desired_snapshot_callbacks": "SELECT",
		"rtest_job.reconcile_outcomes":         "INSERT,SELECT",
		"rtest_job.reconcile_runs":             "INSERT,SELECT,UPDATE",
		"rtest_job.reconcile_domain_state":     "INSERT,SELECT,UPDATE",
		"rtest_job.reconcile_run_lease":        "INSERT,SELECT,UPDATE",
		"rtest_job.reconcile_run_accounts":     "INSERT,SELECT,UPDATE",
		"rtest_job.reconcile_accounts":         "SELECT",
		"rtest_job.reconcile_account_status":   "SELECT",
		"rtest_job.reconcile_schema_version":   "SELECT",
		"rtest_job.snapshot_callback_status":   "SELECT",
		"rtest_job.reconcile_run_summary":      "SELECT",
		"rtest_job.reconcile_failures_by_code": "SELECT",
		"rtest_imp.desired_snapshot_callbacks": "DELETE,INSERT,SELECT,UPDATE",
		"rtest_imp.reconcile_schema_version":   "SELECT",
		"rtest_ret.reconcile_outcomes":         "DELETE,SELECT",
		"rtest_ret.reconcile_domain_state":     "SELECT",
		"rtest_ret.reconcile_schema_version":   "SELECT",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: privileges %q, want %q", k, got[k], w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected privileges %q", k, g)
		}
	}
	// No sequence privileges are needed (identity columns), none are given.
	var n int
	if err := h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.usage_privileges
		WHERE grantee IN ($1, $2, $3) AND object_type = 'SEQUENCE'`, r.job, r.importer, r.retention).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d sequence privileges (%v), want none", n, err)
	}
}
