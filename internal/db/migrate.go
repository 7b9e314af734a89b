package db

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/reconcile/reconcile/migrations"
)

// VersionTable is the table in which tern records the schema version. It is
// not schema-qualified: it lives in the first schema of the search_path, like
// every other reconcile table.
const VersionTable = "reconcile_schema_version"

const (
	sqlVersionTableExists = `SELECT to_regclass('` + VersionTable + `') IS NOT NULL`
	sqlSchemaVersion      = `SELECT version FROM ` + VersionTable
)

var latest = sync.OnceValues(func() (int32, error) {
	paths, err := migrate.FindMigrations(migrations.FS())
	if err != nil {
		return 0, fmt.Errorf("db: list embedded migrations: %w", err)
	}
	return int32(len(paths)), nil
})

// LatestSchemaVersion returns the version the embedded migrations bring a
// database to (the number of migration files). It panics if the embedded
// files are misnumbered, which tests catch.
func LatestSchemaVersion() int32 {
	v, err := latest()
	if err != nil {
		panic(err)
	}
	return v
}

// Migrate applies the embedded migrations that the database does not have
// yet, each in its own transaction, recording the version in VersionTable.
// Running it again is a no-op. Running it from several processes at once is
// safe: tern's migrator holds a session-level pg_advisory_lock (tern's own
// key) on conn while it creates the version table and while it migrates, so
// concurrent callers wait and then find nothing left to do.
//
// conn must be a dedicated connection (not shared with other goroutines). It
// blocks while another migrator holds the lock; when ctx is done pgx
// interrupts the wait and Migrate returns an error; the caller should then
// close conn, which also drops any lock it still holds. A database whose
// schema is newer than this program is left alone (tern refuses to go down
// implicitly) and Migrate returns an error wrapping ErrSchemaAhead.
func Migrate(ctx context.Context, conn *pgx.Conn) error {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return fmt.Errorf("db: migrate: prepare version table: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS()); err != nil {
		return fmt.Errorf("db: migrate: load embedded migrations: %w", err)
	}
	cur, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return fmt.Errorf("db: migrate: read schema version: %w", err)
	}
	if want := int32(len(m.Migrations)); cur > want {
		return fmt.Errorf("db: migrate: schema version %d, this program knows %d: %w", cur, want, ErrSchemaAhead)
	}
	// Migrate re-reads the version under the advisory lock, so the check
	// above is only a fast path for the newer-schema case.
	if err := m.Migrate(ctx); err != nil {
		var bad migrate.BadVersionError
		if errors.As(err, &bad) {
			return fmt.Errorf("db: migrate: %w (%v)", ErrSchemaAhead, err)
		}
		return fmt.Errorf("db: migrate: %w", err)
	}
	return nil
}

// SchemaVersion returns the version recorded in VersionTable, or an error
// wrapping ErrSchemaMissing when there is no version table. One statement
// per call; no lock.
func SchemaVersion(ctx context.Context, q Querier) (int32, error) {
	var exists bool
	if err := q.QueryRow(ctx, sqlVersionTableExists).Scan(&exists); err != nil {
		return 0, fmt.Errorf("db: look for the version table: %w", err)
	}
	if !exists {
		return 0, fmt.Errorf("db: no %s table: %w", VersionTable, ErrSchemaMissing)
	}
	var v int32
	if err := q.QueryRow(ctx, sqlSchemaVersion).Scan(&v); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("db: %s is empty: %w", VersionTable, ErrSchemaMissing)
		}
		return 0, fmt.Errorf("db: read schema version: %w", err)
	}
	return v, nil
}

// CheckSchema compares the database's schema version with
// LatestSchemaVersion. It returns nil when they are equal; an error wrapping
// ErrSchemaMissing when there is no version table; ErrSchemaBehind when the
// version is older (0 included: a first migrate that failed), with a message
// that says to run `reconcile migrate`; and ErrSchemaAhead when it is newer:
// migrations only add, so callers should log that one and go on. It reads
// only; it takes no lock and does not block on migrations in progress.
func CheckSchema(ctx context.Context, q Querier) error {
	v, err := SchemaVersion(ctx, q)
	if err != nil {
		return err
	}
	want := LatestSchemaVersion()
	switch {
	case v < want:
		return fmt.Errorf("db: schema version %d, this program needs %d: %w", v, want, ErrSchemaBehind)
	case v > want:
		return fmt.Errorf("db: schema version %d, this program knows %d: %w", v, want, ErrSchemaAhead)
	}
	return nil
}
