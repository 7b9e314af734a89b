// Package testdb gives each test its own fresh Postgres database, migrated
// with the embedded migrations (or empty, with Unmigrated), and drops it when
// the test ends.
//
// The server comes from the first source that works, in this order:
//
//  1. TEST_DATABASE_URL: an admin connection string (URL or key=value) of an
//     existing server; databases named reconcile_test_<random> are created on
//     it. If it is set but unusable, tests fail (they do not skip).
//  2. testcontainers-go's postgres module (postgres:15-alpine), when a Docker
//     engine answers.
//  3. A throwaway cluster from local Postgres binaries (initdb and pg_ctl from
//     PATH or /usr/lib/postgresql/*/bin), in a temporary directory, listening
//     only on a unix socket in that directory (so there is no port to race
//     for). As root, initdb and postgres refuse to run, so the cluster runs
//     as the "postgres" user (else "nobody") by setting the child process's
//     credentials.
//  4. Otherwise the test is skipped, with the reasons each source failed.
//
// Server handle: the server is started lazily by the first New and shared by
// every test of the test binary; the handle is a small package-level value
// guarded by a mutex. That is the one piece of global state: starting a
// container or a cluster per test would cost seconds each, and the testing
// package gives no other per-binary scope. A package that may use sources 2
// or 3 should stop the server at the end with
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
//
// Without it (or when the binary crashes), a watchdog process stops the
// local cluster and removes its directory once the test binary has exited,
// and testcontainers' reaper removes the container.
//
// Speed: the first New of a binary builds a template database
// (reconcile_tmpl_<hash of the migration files>) once per server, under an
// advisory lock so concurrent test binaries build it once, and every migrated
// test database is CREATE DATABASE ... TEMPLATE that template (tens of
// milliseconds). Template databases stay on a TEST_DATABASE_URL server for
// later runs; a change to the migrations gives a new name.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/migrations"
)

// EnvURL names the environment variable of source 1.
const EnvURL = "TEST_DATABASE_URL"

// setupTimeout bounds starting a server, building the template and creating
// one database.
const setupTimeout = 2 * time.Minute

// DB is one test's database. Its fields are read-only.
type DB struct {
	// Name is the database name (reconcile_test_<random>).
	Name string
	// URL is a connection string of this database, usable by child processes
	// (DATABASE_URL) and by pgx.ParseConfig / pgxpool.New.
	URL string
	// Pool is a pool on this database, closed when the test ends.
	Pool *pgxpool.Pool
}

// Option changes what New creates.
type Option func(*options)

type options struct{ unmigrated bool }

// Unmigrated makes New create an empty database (from template0's copy,
// template1), without the reconcile schema.
func Unmigrated() Option { return func(o *options) { o.unmigrated = true } }

// New creates a fresh database for t (migrated unless Unmigrated is given)
// and registers its removal (pool closed, DROP DATABASE ... WITH (FORCE)) in
// t.Cleanup. It skips t when no server source works, and fails t when
// TEST_DATABASE_URL is set but unusable. Safe for parallel tests.
func New(t testing.TB, opts ...Option) *DB {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	srv := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	name := "reconcile_test_" + randomHex(8)
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if !o.unmigrated {
		tmpl, err := srv.template(ctx)
		if err != nil {
			t.Fatalf("testdb: build the template database: %v", err)
		}
		create += " TEMPLATE " + pgx.Identifier{tmpl}.Sanitize()
	}
	if _, err := srv.admin.Exec(ctx, create); err != nil {
		t.Fatalf("testdb: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := srv.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testdb: drop database %s: %v", name, err)
		}
	})
	u, err := db.WithDatabase(srv.adminURL, name)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatalf("testdb: pool on %s: %v", name, err)
	}
	t.Cleanup(pool.Close)
	return &DB{Name: name, URL: u, Pool: pool}
}

// Config returns a fresh pgx connection config of the database (for
// db.AcquireRunLock or pgx.ConnectConfig).
func (d *DB) Config(t testing.TB) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(d.URL)
	if err != nil {
		t.Fatalf("testdb: parse %s: %v", d.Name, err)
	}
	return cfg
}

// Conn opens a dedicated connection to the database, closed when the test
// ends (before the database is dropped).
func (d *DB) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, d.Config(t))
	if err != nil {
		t.Fatalf("testdb: connect to %s: %v", d.Name, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// AdminURL returns the connection string of the server's admin database
// (superuser), starting the server if needed.
func AdminURL(t testing.TB) string {
	t.Helper()
	return server(t).adminURL
}

// Source returns which source the server came from: "TEST_DATABASE_URL",
// "testcontainers" or "local" (starting the server if needed).
func Source(t testing.TB) string {
	t.Helper()
	return server(t).source
}

// AdminPool returns the shared superuser pool on the server's admin database
// (for pg_terminate_backend, pg_stat_activity ...). It belongs to the
// package: do not Close it.
func AdminPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return server(t).admin
}

// Main runs the tests of a package and then stops the server testdb started
// for them (container or local cluster), if any, and exits with m.Run's
// code. Use it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
	}
	os.Exit(code)
}

// srv is one server shared by the tests of a binary.
type srv struct {
	source   string // "TEST_DATABASE_URL", "testcontainers", "local"
	adminURL string
	admin    *pgxpool.Pool
	stop     func() error // nil for TEST_DATABASE_URL

	tmplMu   sync.Mutex
	tmplName string // set once built
}

// state is the package-level server handle; see the package doc for why.
var state struct {
	mu      sync.Mutex
	srv     *srv
	skip    string // non-empty: no source works; skip with this reason
	fail    error  // TEST_DATABASE_URL set but unusable
	stopped bool
}

func server(t testing.TB) *srv {
	t.Helper()
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.stopped {
		t.Fatalf("testdb: New called after Main stopped the server")
	}
	if state.srv == nil && state.skip == "" && state.fail == nil {
		state.srv, state.skip, state.fail = start()
	}
	switch {
	case state.fail != nil:
		t.Fatalf("testdb: %v", state.fail)
	case state.skip != "":
		t.Skipf("testdb: no Postgres server for tests: %s", state.skip)
	}
	return state.srv
}

func start() (*srv, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if u := os.Getenv(EnvURL); u != "" {
		s, err := newSrv(ctx, "TEST_DATABASE_URL", u, nil)
		if err != nil {
			return nil, "", fmt.Errorf("%s is set but unusable: %w", EnvURL, err)
		}
		return s, "", nil
	}
	var reasons []string
	reasons = append(reasons, EnvURL+" is not set")
	adminURL, stop, err := startContainer(ctx)
	if err == nil {
		s, err := newSrv(ctx, "testcontainers", adminURL, stop)
		if err == nil {
			return s, "", nil
		}
		_ = stop()
		reasons = append(reasons, "testcontainers: "+err.Error())
	} else {
		reasons = append(reasons, "testcontainers: "+err.Error())
	}
	adminURL, stop, err = startLocal(ctx)
	if err == nil {
		s, err := newSrv(ctx, "local", adminURL, stop)
		if err == nil {
			return s, "", nil
		}
		_ = stop()
		reasons = append(reasons, "local binaries: "+err.Error())
	} else {
		reasons = append(reasons, "local binaries: "+err.Error())
	}
	return nil, strings.Join(reasons, "; "), nil
}

func newSrv(ctx context.Context, source, adminURL string, stop func() error) (*srv, error) {
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return &srv{source: source, adminURL: adminURL, admin: pool, stop: stop}, nil
}

func shutdown() error {
	state.mu.Lock()
	defer state.mu.Unlock()
	state.stopped = true
	s := state.srv
	state.srv = nil
	if s == nil {
		return nil
	}
	s.admin.Close()
	if s.stop != nil {
		return s.stop()
	}
	return nil
}

// template returns the name of the migrated template database, building it
// if this server does not have it yet.
func (s *srv) template(ctx context.Context) (string, error) {
	s.tmplMu.Lock()
	defer s.tmplMu.Unlock()
	if s.tmplName != "" {
		return s.tmplName, nil
	}
	hash, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "reconcile_tmpl_" + hash[:16]

	// A dedicated connection holds the advisory lock, so that test binaries
	// running at once build the template once.
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	lockKey := int64(0)
	for _, b := range []byte(hash[:15]) {
		lockKey = lockKey<<4 | int64(hexVal(b))
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return "", fmt.Errorf("lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey) //nolint:errcheck

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		building := name + "_building_" + randomHex(4)
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
			return "", err
		}
		if err := migrateDatabase(ctx, s.adminURL, building); err != nil {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()+" WITH (FORCE)")
			return "", err
		}
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", err
		}
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
			return "", err
		}
	}
	s.tmplName = name
	return name, nil
}

func migrateDatabase(ctx context.Context, adminURL, name string) error {
	u, err := db.WithDatabase(adminURL, name)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return db.Migrate(ctx, conn)
}

// migrationsHash is the hex SHA-256 of the embedded migration files.
func migrationsHash() (string, error) {
	fsys := migrations.FS()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hexVal(b byte) byte {
	switch {
	case b >= '0' && b <= '9':
		return b - '0'
	case b >= 'a' && b <= 'f':
		return b - 'a' + 10
	}
	return 0
}

var errUnsupported = errors.New("not supported on this platform")
