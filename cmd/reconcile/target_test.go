package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/testdb"
)

// TestMigrateRefusesUnnamedDatabase: `migrate --database-url postgres://`
// with no PGDATABASE used to migrate whichever database libpq picked (the
// user's name). It must exit 2, say why, and leave that database alone. The
// test makes the picked database its own: a role named after its (empty)
// test database, owning it, so the old behaviour would migrate it.
func TestMigrateRefusesUnnamedDatabase(t *testing.T) {
	t.Parallel()
	f := newFixture(t, livesim.Options{}, testdb.Unmigrated())
	admin := testdb.AdminPool(t)
	ctx := context.Background()
	role := pgx.Identifier{f.db.Name}.Sanitize()
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The database is dropped after this (cleanups run last-in first-out),
		// so give it back to the admin first.
		_, _ = admin.Exec(context.Background(), "ALTER DATABASE "+role+" OWNER TO CURRENT_USER")
		_, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+role+" OWNER TO "+role); err != nil {
		t.Fatal(err)
	}
	cc := f.db.Config(t)
	env := []string{"DATABASE_URL=", "PGHOST=" + cc.Host, fmt.Sprintf("PGPORT=%d", cc.Port), "PGUSER=" + f.db.Name,
		"PGSSLMODE=disable"}
	for _, args := range [][]string{{"migrate", "--database-url", "postgres://"}, {"migrate"}} {
		p, code := f.run(env, args...)
		stderr := p.stderr.String()
		if code != 2 {
			t.Errorf("reconcile %s without a database: exit %d, want 2\nstderr:\n%s", strings.Join(args, " "), code, stderr)
		}
		if !strings.Contains(stderr, "names no database") || !strings.Contains(stderr, f.db.Name) {
			t.Errorf("reconcile %s: stderr does not say that no database is named and which one Postgres would open:\n%s",
				strings.Join(args, " "), stderr)
		}
	}
	if n := f.count(`SELECT count(*) FROM pg_tables WHERE tablename LIKE 'reconcile%'`); n != 0 {
		t.Fatalf("the database libpq picked got %d reconcile tables; want none", n)
	}
	// PGDATABASE names it: that is a choice, and migrate goes ahead.
	p, code := f.run(append(env, "PGDATABASE="+f.db.Name), "migrate")
	if code != 0 {
		t.Fatalf("migrate with PGDATABASE: exit %d\nstderr:\n%s", code, p.stderr.String())
	}
	if n := f.count(`SELECT count(*) FROM pg_tables WHERE tablename = 'reconcile_schema_version'`); n != 1 {
		t.Fatalf("migrate with PGDATABASE did not migrate the database it names")
	}
}

// TestCommandsLogTheirTarget: migrate, run, verify and import log the
// host, port, database and user they work on before changing anything, and
// never the password.
func TestCommandsLogTheirTarget(t *testing.T) {
	t.Parallel()
	f := newFixture(t, livesim.Options{}, testdb.Unmigrated())
	cc := f.db.Config(t)
	const password = "targetTestPassw0rdNeverLogged"
	url := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable",
		cc.Host, cc.Port, cc.User, password, f.db.Name)
	if cc.Password != "" {
		t.Skip("the test server checks passwords; this test passes a made-up one")
	}
	csv := filepath.Join(t.TempDir(), "desired.csv")
	if err := os.WriteFile(csv, []byte("domain_name,notify_url,notify_req_auth,notify_auth_key,region_id\n"+
		"target.example.com,https://hooks.example.com/t,false,,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		msg  string // the line that must carry the target
		want int
	}{
		{[]string{"migrate"}, "migrating", 0},
		{[]string{"import", csv}, "importing", 0},
		{[]string{"run"}, "starting", 0},
		{[]string{"verify"}, "starting", 0},
	} {
		p, code := f.run([]string{"DATABASE_URL=" + url}, c.args...)
		if code != c.want {
			t.Fatalf("reconcile %s: exit %d, want %d\nstderr:\n%s", c.args[0], code, c.want, p.stderr.String())
		}
		if strings.Contains(p.stderr.String()+p.stdout.String(), password) {
			t.Errorf("reconcile %s printed the database password", c.args[0])
		}
		logs, _ := p.jsonLines()
		var target map[string]any
		for _, l := range logs {
			if l.msg() == c.msg {
				target, _ = l["target"].(map[string]any)
				break
			}
		}
		want := map[string]any{"host": cc.Host, "port": float64(cc.Port), "database": f.db.Name, "user": cc.User}
		if fmt.Sprint(target) != fmt.Sprint(want) {
			t.Errorf("reconcile %s: %q line has target %v, want %v\nstderr:\n%s", c.args[0], c.msg, target, want, p.stderr.String())
		}
	}
}
