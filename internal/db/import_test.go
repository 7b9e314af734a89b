package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

// sliceSource is a db.StagedSource over a slice, failing with err at the
// end when err is set.
type sliceSource struct {
	rows []db.StagedRow
	i    int
	err  error
}

func (s *sliceSource) Next() bool {
	if s.i >= len(s.rows) {
		return false
	}
	s.i++
	return true
}
func (s *sliceSource) Row() db.StagedRow { return s.rows[s.i-1] }
func (s *sliceSource) Err() error {
	if s.i >= len(s.rows) {
		return s.err
	}
	return nil
}

func staged(line int64, domain, url string, auth bool, key, region string) db.StagedRow {
	return db.StagedRow{Line: line, Domain: domain, NotifyURL: url, ReqAuth: auth, AuthKey: model.Secret(key),
		Region: region, Valid: true}
}

func TestImportStages(t *testing.T) {
	t.Parallel()
	const key = "Key0123456789abcdef"
	for _, tc := range []struct {
		name      string
		existing  []desired
		rows      []db.StagedRow
		replace   bool
		wantDups  int64
		firstDups []db.Duplicate // with limit 1
		want      db.ImportCounts
		wantTable map[string]string // domain -> notify_url
	}{
		{
			name: "insert, update, unchanged, kept",
			existing: []desired{{domain: "a.example.com", url: "https://h/a"}, {domain: "b.example.com", url: "https://h/b"},
				{domain: "z.example.com", url: "https://h/z"}},
			rows: []db.StagedRow{staged(2, "a.example.com", "https://h/a", false, "", ""),
				staged(3, "b.example.com", "https://h/b2", false, "", ""),
				staged(4, "c.example.com", "https://h/c", true, key, "cn-beijing")},
			want:      db.ImportCounts{Inserted: 1, Updated: 1, Unchanged: 1},
			wantTable: map[string]string{"a.example.com": "https://h/a", "b.example.com": "https://h/b2", "c.example.com": "https://h/c", "z.example.com": "https://h/z"},
		},
		{
			name:      "replace deletes absent, keeps skipped lines' domains",
			existing:  []desired{{domain: "a.example.com", url: "https://h/a"}, {domain: "b.example.com", url: "https://h/b"}, {domain: "z.example.com", url: "https://h/z"}},
			rows:      []db.StagedRow{staged(2, "a.example.com", "https://h/a", false, "", ""), {Line: 3, Domain: "b.example.com"}, {Line: 4}},
			replace:   true,
			want:      db.ImportCounts{Unchanged: 1, Deleted: 1},
			wantTable: map[string]string{"a.example.com": "https://h/a", "b.example.com": "https://h/b"},
		},
		{
			name: "duplicates: the first line wins",
			rows: []db.StagedRow{staged(2, "a.example.com", "https://h/1", false, "", ""),
				staged(3, "b.example.com", "https://h/b", false, "", ""),
				staged(4, "a.example.com", "https://h/2", false, "", ""),
				staged(5, "a.example.com", "https://h/3", false, "", ""),
				{Line: 6, Domain: "b.example.com"}}, // invalid: not a duplicate
			wantDups:  2,
			firstDups: []db.Duplicate{{Line: 4, FirstLine: 2, Domain: "a.example.com"}},
			want:      db.ImportCounts{Inserted: 2},
			wantTable: map[string]string{"a.example.com": "https://h/1", "b.example.com": "https://h/b"},
		},
		{
			name:      "key change is an update",
			existing:  []desired{{domain: "a.example.com", url: "https://h/a", reqAuth: true, key: key}},
			rows:      []db.StagedRow{staged(2, "a.example.com", "https://h/a", true, key+"X", "")},
			want:      db.ImportCounts{Updated: 1},
			wantTable: map[string]string{"a.example.com": "https://h/a"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tdb := testdb.New(t)
			ctx := testutil.Context(t)
			for _, d := range tc.existing {
				upsertDesired(t, tdb.Pool, d)
			}
			im, err := db.BeginImport(ctx, tdb.Pool)
			if err != nil {
				t.Fatal(err)
			}
			defer im.Rollback(ctx)
			n, err := im.Stage(ctx, &sliceSource{rows: tc.rows})
			if err != nil || n != int64(len(tc.rows)) {
				t.Fatalf("Stage = %d, %v", n, err)
			}
			nd, first, err := im.Duplicates(ctx, 1)
			if err != nil || nd != tc.wantDups || len(first) != len(tc.firstDups) {
				t.Fatalf("Duplicates = %d, %v, %v; want %d, %v", nd, first, err, tc.wantDups, tc.firstDups)
			}
			for i := range first {
				if first[i] != tc.firstDups[i] {
					t.Errorf("duplicate %d = %+v, want %+v", i, first[i], tc.firstDups[i])
				}
			}
			// Not visible to others before Commit.
			var before int
			if err := tdb.Pool.QueryRow(ctx, `SELECT count(*) FROM desired_snapshot_callbacks`).Scan(&before); err != nil {
				t.Fatal(err)
			}
			c, err := im.Apply(ctx, tc.replace)
			if err != nil || c != tc.want {
				t.Fatalf("Apply = %+v, %v; want %+v", c, err, tc.want)
			}
			var during int
			if err := tdb.Pool.QueryRow(ctx, `SELECT count(*) FROM desired_snapshot_callbacks`).Scan(&during); err != nil || during != before {
				t.Fatalf("another session sees %d rows before commit, had %d (%v)", during, before, err)
			}
			if err := im.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			rows, _ := tdb.Pool.Query(ctx, `SELECT domain_name, notify_url FROM desired_snapshot_callbacks`)
			for rows.Next() {
				var d, u string
				if err := rows.Scan(&d, &u); err != nil {
					t.Fatal(err)
				}
				got[d] = u
			}
			if len(got) != len(tc.wantTable) {
				t.Errorf("table = %v, want %v", got, tc.wantTable)
			}
			for d, u := range tc.wantTable {
				if got[d] != u {
					t.Errorf("%s = %q, want %q", d, got[d], u)
				}
			}
		})
	}
}

func TestImportLifecycle(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)

	// Rollback leaves nothing; the staging table is gone with it.
	im, err := db.BeginImport(ctx, tdb.Pool)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Rollback(ctx)
	if _, err := im.Stage(ctx, &sliceSource{rows: []db.StagedRow{staged(2, "a.example.com", "https://h/a", false, "", "")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := im.Apply(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := im.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := im.Rollback(ctx); err != nil {
		t.Fatalf("second Rollback: %v", err)
	}
	if _, err := im.Apply(ctx, false); !errors.Is(err, db.ErrImportClosed) {
		t.Fatalf("Apply after Rollback = %v, want ErrImportClosed", err)
	}
	if err := im.Commit(ctx); !errors.Is(err, db.ErrImportClosed) {
		t.Fatalf("Commit after Rollback = %v, want ErrImportClosed", err)
	}
	var n int
	if err := tdb.Pool.QueryRow(ctx, `SELECT count(*) FROM desired_snapshot_callbacks`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled-back import left %d rows (%v)", n, err)
	}

	// A source error fails Stage.
	im, err = db.BeginImport(ctx, tdb.Pool)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Rollback(ctx)
	boom := errors.New("boom")
	if _, err := im.Stage(ctx, &sliceSource{rows: []db.StagedRow{staged(2, "a.example.com", "https://h/a", false, "", "")}, err: boom}); !errors.Is(err, boom) {
		t.Fatalf("Stage with a failing source = %v, want boom", err)
	}
	_ = im.Rollback(ctx)

	// Apply without Duplicates counts them itself.
	im, err = db.BeginImport(ctx, tdb.Pool)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Rollback(ctx)
	rows := []db.StagedRow{staged(2, "a.example.com", "https://h/1", false, "", ""), staged(3, "a.example.com", "https://h/2", false, "", "")}
	if _, err := im.Stage(ctx, &sliceSource{rows: rows}); err != nil {
		t.Fatal(err)
	}
	if c, err := im.Apply(ctx, false); err != nil || c != (db.ImportCounts{Inserted: 1}) {
		t.Fatalf("Apply = %+v, %v", c, err)
	}
	if err := im.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := im.Rollback(ctx); err != nil {
		t.Fatalf("Rollback after Commit: %v", err)
	}
}

// Imports wait for each other: the second BeginImport blocks until the
// first ends, and gives up with its context.
func TestImportLock(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	first, err := db.BeginImport(ctx, tdb.Pool)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback(ctx)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := db.BeginImport(short, tdb.Pool); err == nil {
		t.Fatal("a second import started while the first holds the lock")
	}
	done := make(chan error, 1)
	go func() {
		im, err := db.BeginImport(ctx, tdb.Pool)
		if err == nil {
			err = im.Rollback(ctx)
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("second import did not wait: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := first.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("second import after the first ended: %v", err)
	}
}

// The account is staged and merged like the other values: "" is NULL, a
// change of account alone is an update, and an invalid line stages no
// account.
func TestImportStagesAccount(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	apply := func(rows ...db.StagedRow) db.ImportCounts {
		t.Helper()
		im, err := db.BeginImport(ctx, tdb.Pool)
		if err != nil {
			t.Fatal(err)
		}
		defer im.Rollback(ctx)
		if _, err := im.Stage(ctx, &sliceSource{rows: rows}); err != nil {
			t.Fatal(err)
		}
		c, err := im.Apply(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := im.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	withAccount := func(r db.StagedRow, a string) db.StagedRow { r.Account = a; return r }
	accounts := func() map[string]*string {
		t.Helper()
		out := map[string]*string{}
		rows, err := tdb.Pool.Query(ctx, `SELECT domain_name, account FROM desired_snapshot_callbacks`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var d string
			var a *string
			if err := rows.Scan(&d, &a); err != nil {
				t.Fatal(err)
			}
			out[d] = a
		}
		return out
	}
	a := staged(2, "a.example.com", "https://h/a", false, "", "")
	b := staged(3, "b.example.com", "https://h/b", false, "", "")
	if c := apply(a, withAccount(b, "tenant-a")); c != (db.ImportCounts{Inserted: 2}) {
		t.Fatalf("first import = %+v", c)
	}
	got := accounts()
	if got["a.example.com"] != nil || got["b.example.com"] == nil || *got["b.example.com"] != "tenant-a" {
		t.Fatalf("accounts = %v", got)
	}
	fpB := fingerprintOfImport(t, tdb, "b.example.com")
	if c := apply(withAccount(a, "tenant-a"), withAccount(b, "tenant-a")); c != (db.ImportCounts{Updated: 1, Unchanged: 1}) {
		t.Fatalf("moving a = %+v, want 1 updated, 1 unchanged", c)
	}
	if c := apply(a, b); c != (db.ImportCounts{Updated: 2}) {
		t.Fatalf("back to the default account = %+v", c)
	}
	if got := accounts(); got["a.example.com"] != nil || got["b.example.com"] != nil {
		t.Fatalf("accounts = %v, want NULL", got)
	}
	if fp := fingerprintOfImport(t, tdb, "b.example.com"); fp == fpB {
		t.Fatal("the fingerprint does not cover the account")
	}
	// An invalid line's account is not staged, nor anything but its domain.
	if c := apply(db.StagedRow{Line: 2, Domain: "a.example.com", Account: "tenant-z"}); c != (db.ImportCounts{}) {
		t.Fatalf("invalid line = %+v", c)
	}
	if got := accounts(); got["a.example.com"] != nil {
		t.Fatalf("an invalid line changed the account: %v", *got["a.example.com"])
	}
}

func fingerprintOfImport(t *testing.T, tdb *testdb.DB, domain string) string {
	t.Helper()
	var fp string
	if err := tdb.Pool.QueryRow(testutil.Context(t), `SELECT fingerprint FROM desired_snapshot_callbacks WHERE domain_name = $1`,
		domain).Scan(&fp); err != nil {
		t.Fatal(err)
	}
	return fp
}
