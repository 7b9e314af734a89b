package testdb_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestNewMigrated(t *testing.T) {
	d := testdb.New(t)
	t.Logf("source %s, database %s", testdb.Source(t), d.URL)
	if err := db.CheckSchema(context.Background(), d.Pool); err != nil {
		t.Fatalf("CheckSchema: %v", err)
	}
	// The URL works on its own (as a child process would use it).
	pool, err := pgxpool.New(context.Background(), d.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var name string
	if err := pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name); err != nil || name != d.Name {
		t.Fatalf("current_database() = %q, %v; want %q", name, err, d.Name)
	}
}

func TestNewUnmigrated(t *testing.T) {
	d := testdb.New(t, testdb.Unmigrated())
	if err := db.CheckSchema(context.Background(), d.Pool); !errors.Is(err, db.ErrSchemaMissing) {
		t.Fatalf("CheckSchema = %v, want ErrSchemaMissing", err)
	}
	if err := db.Migrate(context.Background(), d.Conn(t)); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
}

// Parallel tests get distinct databases, and each is dropped after its test.
func TestParallelAndDropped(t *testing.T) {
	names := make(chan string, 8)
	t.Run("group", func(t *testing.T) {
		for i := range 8 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				d := testdb.New(t)
				if _, err := d.Pool.Exec(context.Background(),
					`INSERT INTO desired_snapshot_callbacks (domain_name, notify_url) VALUES ('x', 'y')`); err != nil {
					t.Fatal(err)
				}
				names <- d.Name
			})
		}
	})
	close(names)
	seen := map[string]bool{}
	admin := testdb.AdminPool(t)
	for n := range names {
		if seen[n] {
			t.Fatalf("database %s handed out twice", n)
		}
		seen[n] = true
		var exists bool
		if err := admin.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, n).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("database %s still exists after its test", n)
		}
	}
	if len(seen) != 8 {
		t.Fatalf("%d databases", len(seen))
	}
}
