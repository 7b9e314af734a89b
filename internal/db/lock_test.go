package db_test

import (
	"errors"
	"hash/fnv"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestRunLockKeyDerivation(t *testing.T) {
	h := fnv.New64a()
	h.Write([]byte(db.RunLockName))
	if got := int64(h.Sum64()); got != db.RunLockKey {
		t.Fatalf("RunLockKey = %d, FNV-1a-64(%q) = %d", db.RunLockKey, db.RunLockName, got)
	}
}

func TestRunLock(t *testing.T) {
	tdb := testdb.New(t)
	ctx := testutil.Context(t)

	first, err := db.AcquireRunLock(ctx, tdb.Config(t))
	if err != nil {
		t.Fatalf("first AcquireRunLock: %v", err)
	}
	t.Cleanup(func() { _ = first.Release(ctx) })

	if l, err := db.AcquireRunLock(ctx, tdb.Config(t)); !errors.Is(err, db.ErrLocked) {
		if l != nil {
			_ = l.Release(ctx)
		}
		t.Fatalf("second AcquireRunLock = %v, want ErrLocked", err)
	}

	select {
	case <-first.Lost():
		t.Fatal("Lost closed while the connection is alive")
	case <-time.After(2 * db.LockCheckInterval):
	}

	// The first process "dies": its lock connection is terminated.
	var terminated int
	err = testdb.AdminPool(t).QueryRow(ctx, `SELECT count(*) FROM (
		SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND application_name = $2) x`, tdb.Name, db.LockApplicationName).Scan(&terminated)
	if err != nil || terminated != 1 {
		t.Fatalf("terminate the lock backend: %d terminated, %v", terminated, err)
	}
	select {
	case <-first.Lost():
	case <-time.After(db.LockCheckInterval + db.LockPingTimeout + 2*time.Second):
		t.Fatal("Lost not closed after the lock connection was terminated")
	}

	second, err := db.AcquireRunLock(ctx, tdb.Config(t))
	if err != nil {
		t.Fatalf("AcquireRunLock after the holder died: %v", err)
	}
	if err := second.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := second.Release(ctx); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	select {
	case <-second.Lost():
		t.Fatal("Release closed Lost")
	default:
	}

	third, err := db.AcquireRunLock(ctx, tdb.Config(t))
	if err != nil {
		t.Fatalf("AcquireRunLock after Release: %v", err)
	}
	if err := third.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// Advisory locks are per database: runs on two databases do not exclude
// each other.
func TestRunLockPerDatabase(t *testing.T) {
	ctx := testutil.Context(t)
	a, b := testdb.New(t), testdb.New(t)
	la, err := db.AcquireRunLock(ctx, a.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release(ctx)
	lb, err := db.AcquireRunLock(ctx, b.Config(t))
	if err != nil {
		t.Fatalf("lock on another database: %v", err)
	}
	defer lb.Release(ctx)
}
