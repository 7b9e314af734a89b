package db_test

import (
	"errors"
	"strings"
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

// The counts per account, the accounts of a page and the account of the
// samples.
func TestStatusByAccount(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	pool := tdb.Pool
	if got, err := db.CountStatusByAccount(ctx, pool); err != nil || len(got) != 0 {
		t.Fatalf("CountStatusByAccount on an empty table = %+v, %v", got, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO reconcile_accounts (name, credentials, disabled) VALUES ('t-a', 'default', false), ('t-off', 'default', true)`); err != nil {
		t.Fatal(err)
	}
	accounts := map[string]string{"a-done": "", "b-new": "", "c-done": "t-a", "d-invalid": "t-a", "e-new": "t-a",
		"f-new": "t-off", "g-new": "zz-unknown"}
	for d, a := range accounts {
		upsertDesired(t, pool, desired{domain: d + ".example.com", url: "https://h.example.com/" + d})
		if a != "" {
			if _, err := pool.Exec(ctx, `UPDATE desired_snapshot_callbacks SET account = $2 WHERE domain_name = $1`, d+".example.com", a); err != nil {
				t.Fatal(err)
			}
		}
	}
	record(t, pool, "a-done.example.com", model.OutcomeApplied)
	record(t, pool, "c-done.example.com", model.OutcomeApplied)
	record(t, pool, "d-invalid.example.com", model.OutcomeInvalid)

	got, err := db.CountStatusByAccount(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	want := []db.AccountStatusCounts{
		{Account: "", StatusCounts: db.StatusCounts{Desired: 2, Pending: 1, Done: 1}},
		{Account: "t-a", StatusCounts: db.StatusCounts{Desired: 3, Pending: 1, Done: 1, InvalidUnchanged: 1}},
		{Account: "t-off", Disabled: true, StatusCounts: db.StatusCounts{Desired: 1, Pending: 1}},
		{Account: "zz-unknown", Unknown: true, StatusCounts: db.StatusCounts{Desired: 1, Pending: 1}},
	}
	if len(got) != len(want) {
		t.Fatalf("CountStatusByAccount = %+v, want %+v", got, want)
	}
	var sum db.StatusCounts
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("account %d = %+v, want %+v", i, got[i], want[i])
		}
		sum.Desired += got[i].Desired
		sum.Pending += got[i].Pending
		sum.Done += got[i].Done
		sum.InvalidUnchanged += got[i].InvalidUnchanged
	}
	if total, err := db.CountStatus(ctx, pool); err != nil || total != sum {
		t.Errorf("CountStatus = %+v, %v; the accounts add up to %+v", total, err, sum)
	}

	// FillAccounts sets the account of each row of a page.
	page := allPending(t, pool, 100)
	if err := db.FillAccounts(ctx, pool, page); err != nil {
		t.Fatal(err)
	}
	if len(page) != 4 {
		t.Fatalf("pending = %+v", page)
	}
	for _, r := range page {
		if r.Account != accounts[strings.TrimSuffix(r.Domain, ".example.com")] {
			t.Errorf("%s: account %q", r.Domain, r.Account)
		}
	}
	if err := db.FillAccounts(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}

	// The samples carry the account.
	done, err := db.DoneSample(ctx, pool, 10)
	if err != nil || len(done) != 2 || done[0].Account != "" || done[1].Account != "t-a" {
		t.Fatalf("DoneSample = %+v, %v", done, err)
	}
	inv, err := db.InvalidUnchangedSample(ctx, pool, 10)
	if err != nil || len(inv) != 1 || inv[0].Account != "t-a" {
		t.Fatalf("InvalidUnchangedSample = %+v, %v", inv, err)
	}
}
