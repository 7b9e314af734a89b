package db_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestStatusQueries(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	pool := tdb.Pool

	if c, err := db.CountStatus(ctx, pool); err != nil || c != (db.StatusCounts{}) {
		t.Fatalf("CountStatus on an empty table = %+v, %v", c, err)
	}
	for _, d := range []string{"a-done", "b-done", "c-new", "d-failed", "e-invalid", "f-invalid", "g-edited"} {
		upsertDesired(t, pool, desired{domain: d + ".example.com", url: "https://h.example.com/" + d})
	}
	record(t, pool, "a-done.example.com", model.OutcomeApplied)
	record(t, pool, "b-done.example.com", model.OutcomeAlreadyExists)
	record(t, pool, "d-failed.example.com", model.OutcomeFailed)
	record(t, pool, "e-invalid.example.com", model.OutcomeInvalid)
	record(t, pool, "f-invalid.example.com", model.OutcomeInvalid)
	record(t, pool, "g-edited.example.com", model.OutcomeApplied)
	upsertDesired(t, pool, desired{domain: "g-edited.example.com", url: "https://h.example.com/g2"})

	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	want := db.StatusCounts{Desired: 7, Pending: 3, Done: 2, InvalidUnchanged: 2}
	for name, q := range map[string]db.Querier{"pool": pool, "read-only transaction": tx} {
		c, err := db.CountStatus(ctx, q)
		if err != nil || c != want {
			t.Fatalf("%s: CountStatus = %+v, %v; want %+v", name, c, err, want)
		}
		if c.Pending+c.Done+c.InvalidUnchanged != c.Desired {
			t.Fatalf("classes do not add up: %+v", c)
		}
		if n, err := db.CountPending(ctx, q); err != nil || n != c.Pending {
			t.Fatalf("CountPending = %d, %v; CountStatus says %d", n, err, c.Pending)
		}
	}

	for _, tc := range []struct {
		name  string
		f     func(db.Querier, int) ([]db.DomainStatus, error)
		limit int
		want  []string
	}{
		{"done", func(q db.Querier, n int) ([]db.DomainStatus, error) { return db.DoneSample(ctx, q, n) }, 10,
			[]string{"a-done.example.com", "b-done.example.com"}},
		{"done limit 1", func(q db.Querier, n int) ([]db.DomainStatus, error) { return db.DoneSample(ctx, q, n) }, 1,
			[]string{"a-done.example.com"}},
		{"done limit 0", func(q db.Querier, n int) ([]db.DomainStatus, error) { return db.DoneSample(ctx, q, n) }, 0, nil},
		{"invalid unchanged", func(q db.Querier, n int) ([]db.DomainStatus, error) { return db.InvalidUnchangedSample(ctx, q, n) }, 10,
			[]string{"e-invalid.example.com", "f-invalid.example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f(pool, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %v", got, tc.want)
			}
			for i, s := range got {
				if s.Domain != tc.want[i] || s.RunID == 0 || s.Outcome == "" {
					t.Errorf("entry %d = %+v, want %s", i, s, tc.want[i])
				}
			}
		})
	}
	if _, err := db.DoneSample(ctx, pool, -1); !errors.Is(err, db.ErrInvalidArgument) {
		t.Fatalf("DoneSample(-1) = %v, want ErrInvalidArgument", err)
	}

	last, err := db.LastOutcomes(ctx, pool, []string{"d-failed.example.com", "c-new.example.com", "not-desired.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 || last["d-failed.example.com"].Outcome != "failed" || last["c-new.example.com"].Outcome != "" ||
		last["c-new.example.com"].Domain != "c-new.example.com" {
		t.Fatalf("LastOutcomes = %+v", last)
	}
	if last, err := db.LastOutcomes(ctx, pool, nil); err != nil || len(last) != 0 {
		t.Fatalf("LastOutcomes(nil) = %v, %v", last, err)
	}
}
