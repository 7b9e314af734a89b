package app

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/importer"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestExitCodeInfrastructure: failures of the infrastructure exit 6, never
// 1 (rows not done), so a Job's podFailurePolicy can retry them; Postgres
// refusing the login or the database is configuration (2). The connection
// errors are real ones from Connect.
func TestExitCodeInfrastructure(t *testing.T) {
	t.Parallel()
	ctx := testutil.Context(t)
	_, errUnreachable := Connect(ctx, "postgres://reconcile@"+closedPort(t)+"/x?connect_timeout=5", 2)
	d := testdb.New(t)
	cc, err := pgx.ParseConfig(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	other := func(user, database string) string {
		return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", cc.Host, cc.Port, user, database)
	}
	_, errNoDatabase := Connect(ctx, other(cc.User, "reconcile_no_such_database"), 2)
	_, errNoRole := Connect(ctx, other("reconcile_no_such_role", cc.Database), 2)
	// A statement the server refuses (here: a syntax error, standing in for
	// a permission or disk failure) is the database's failure too.
	_, errStatement := d.Pool.Exec(ctx, "SELEC 1")
	_, errNoFile := os.Open(filepath.Join(t.TempDir(), "desired.csv"))

	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"not done", fmt.Errorf("%w: 1 failed", ErrNotDone), 1},
		{"prune refused", apply.ErrPruneLimit, 1},
		{"import bad lines", importer.ErrBadLines, 1},
		{"no such run", db.ErrRunNotFound, 1},
		{"import file missing", errNoFile, 1}, // an errno, not a network failure
		{"bad flag", config.ErrUsage, 2},
		{"schema", fmt.Errorf("%w: %w", ErrSchema, db.ErrSchemaBehind), 2},
		{"no credentials", live.ErrNoCredentials, 2},
		{"credentials refused", apply.ErrCredentials, 2},
		{"no such database", errNoDatabase, 2},
		{"no such role", errNoRole, 2},
		{"locked", db.ErrLocked, 3},
		{"interrupted", apply.ErrInterrupted, 4},
		{"plan pending", ErrPlanPending, 5},
		{"dry run pending", fmt.Errorf("%w: dry run: would add 1", ErrPlanPending), 5},
		{"postgres unreachable at start", errUnreachable, 6},
		{"postgres unreachable mid-run", fmt.Errorf("%w: writing 5 outcomes: %w", apply.ErrStore, errUnreachable), 6},
		{"statement refused", errStatement, 6},
		{"lock lost", apply.ErrLockLost, 6},
		{"credentials provider down", fmt.Errorf("%w: for 1m0s: %w", apply.ErrCredentialsUnavailable,
			&live.CredentialsError{Provider: "default/oidc_role_arn", Err: errors.New("sts: timeout")}), 6},
		{"credentials provider down at start", fmt.Errorf("reading credentials: %w",
			&live.CredentialsError{Provider: "default/ecs_ram_role", Err: errors.New("metadata: 503")}), 6},
		{"interrupted while the database was down", fmt.Errorf("%w: %w", apply.ErrInterrupted, apply.ErrStore), 4},
	} {
		if tc.err == nil && tc.want != 0 {
			t.Fatalf("%s: no error produced", tc.name)
		}
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("%s: ExitCode(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
}
