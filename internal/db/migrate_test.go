package db_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestLatestSchemaVersion(t *testing.T) {
	t.Parallel()
	if got := db.LatestSchemaVersion(); got < 1 {
		t.Fatalf("LatestSchemaVersion() = %d, want >= 1", got)
	}
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t, testdb.Unmigrated())
	conn := tdb.Conn(t)
	ctx := testutil.Context(t)
	for i := range 2 {
		if err := db.Migrate(ctx, conn); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	if err := db.CheckSchema(ctx, tdb.Pool); err != nil {
		t.Fatalf("CheckSchema after migrate: %v", err)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t, testdb.Unmigrated())
	ctx := testutil.Context(t)
	conns := []*pgx.Conn{tdb.Conn(t), tdb.Conn(t)}
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	start := make(chan struct{})
	for i := range conns {
		wg.Go(func() {
			<-start
			errs[i] = db.Migrate(ctx, conns[i])
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate in goroutine %d: %v", i, err)
		}
	}
	// Applied once: a second application would have failed on CREATE
	// FUNCTION/TABLE; the version table holds one row at the latest version.
	var rows, version int32
	if err := tdb.Pool.QueryRow(ctx, `SELECT count(*), max(version) FROM `+db.VersionTable).Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || version != db.LatestSchemaVersion() {
		t.Fatalf("version table: %d rows, version %d; want 1 row at %d", rows, version, db.LatestSchemaVersion())
	}
	var tables int
	if err := tdb.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'desired_snapshot_callbacks'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 1 {
		t.Fatalf("desired_snapshot_callbacks tables: %d", tables)
	}
}

func TestCheckSchema(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup string // run on a migrated database; "" = none
		fresh bool   // unmigrated database
		want  error
	}{
		{name: "current", want: nil},
		{name: "missing", fresh: true, want: db.ErrSchemaMissing},
		{name: "behind", setup: `UPDATE reconcile_schema_version SET version = version - 1`, want: db.ErrSchemaBehind},
		{name: "ahead", setup: `UPDATE reconcile_schema_version SET version = version + 1`, want: db.ErrSchemaAhead},
		{name: "version table dropped", setup: `DROP TABLE reconcile_schema_version`, want: db.ErrSchemaMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tdb *testdb.DB
			if tt.fresh {
				tdb = testdb.New(t, testdb.Unmigrated())
			} else {
				tdb = testdb.New(t)
			}
			ctx := testutil.Context(t)
			if tt.setup != "" {
				if _, err := tdb.Pool.Exec(ctx, tt.setup); err != nil {
					t.Fatal(err)
				}
			}
			err := db.CheckSchema(ctx, tdb.Pool)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckSchema: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckSchema = %v, want %v", err, tt.want)
			}
			for _, other := range []error{db.ErrSchemaMissing, db.ErrSchemaBehind, db.ErrSchemaAhead} {
				if other != tt.want && errors.Is(err, other) {
					t.Fatalf("CheckSchema = %v, also matches %v", err, other)
				}
			}
		})
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	if _, err := tdb.Pool.Exec(ctx, `UPDATE reconcile_schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, tdb.Conn(t)); !errors.Is(err, db.ErrSchemaAhead) {
		t.Fatalf("Migrate on a newer schema = %v, want ErrSchemaAhead", err)
	}
}
