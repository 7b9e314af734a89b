package db_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
)

func benchResults(run int64, n, round int) []model.Result {
	rs := make([]model.Result, n)
	for i := range rs {
		rs[i] = model.Result{Domain: fmt.Sprintf("r%d-%d-%06d.example.com", run, round, i), Outcome: model.OutcomeFailed,
			Fingerprint: strings.Repeat("f", 64), Attempts: 5, HTTPStatus: 503, ErrorCode: "ServiceUnavailable",
			ErrorMessage: "the service is unavailable, try again later", RequestID: "3C6CEF03-7A2C-4A68-9A0C-2F3A3C4F3B5E"}
	}
	return rs
}

// BenchmarkWriteOutcomes compares the arrays+unnest statement WriteOutcomes
// uses with COPY into a temporary table followed by the same
// INSERT ... SELECT, at the batch sizes a run writes.
func BenchmarkWriteOutcomes(b *testing.B) {
	for _, n := range []int{500, 5000} {
		b.Run(fmt.Sprintf("unnest/%d", n), func(b *testing.B) {
			tdb := testdb.New(b)
			run := beginRun(b, tdb.Pool)
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				if _, err := db.WriteOutcomes(ctx, tdb.Pool, run, benchResults(run, n, i), db.RunCounters{Requests: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("copy/%d", n), func(b *testing.B) {
			tdb := testdb.New(b)
			run := beginRun(b, tdb.Pool)
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				if err := writeOutcomesCopy(ctx, tdb.Pool, run, benchResults(run, n, i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func writeOutcomesCopy(ctx context.Context, pool *pgxpool.Pool, run int64, rs []model.Result) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE batch (domain_name text, outcome text, error_code text, error_message text,
			http_status int, request_id text, attempts int, fingerprint text) ON COMMIT DROP`); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"batch"}, []string{"domain_name", "outcome", "error_code", "error_message",
			"http_status", "request_id", "attempts", "fingerprint"}, pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
			r := rs[i]
			return []any{r.Domain, string(r.Outcome), r.ErrorCode, r.ErrorMessage, r.HTTPStatus, r.RequestID, r.Attempts, r.Fingerprint}, nil
		}))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `WITH ins AS (
    INSERT INTO reconcile_outcomes (run_id, domain_name, outcome, error_code, error_message, http_status, request_id, attempts, fingerprint)
    SELECT $1, domain_name, outcome, error_code, error_message, http_status, request_id, attempts, fingerprint FROM batch
    ON CONFLICT (run_id, domain_name) DO NOTHING
    RETURNING id, run_id, domain_name, outcome, fingerprint, error_code, error_message, finished_at
), st AS (
    INSERT INTO reconcile_domain_state AS s (domain_name, last_outcome_id, last_run_id, last_outcome,
        last_fingerprint, last_error_code, last_error_message, last_finished_at, done_fingerprint)
    SELECT domain_name, id, run_id, outcome, fingerprint, error_code, error_message, finished_at, NULL FROM ins
    ON CONFLICT (domain_name) DO UPDATE SET last_outcome_id = excluded.last_outcome_id
), n AS (SELECT count(*) FILTER (WHERE outcome = 'failed') AS failed FROM ins)
UPDATE reconcile_runs r SET failed = r.failed + n.failed FROM n WHERE r.id = $1`, run)
		return err
	})
}

// BenchmarkQueryExecMode compares pgx's default query mode (named prepared
// statements) with db.DefaultQueryExecMode (cached descriptions, unnamed
// statements) on a run's hot statements: a page of pending rows and an
// outcome batch.
func BenchmarkQueryExecMode(b *testing.B) {
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, db.DefaultQueryExecMode} {
		b.Run(strings.ReplaceAll(mode.String(), " ", "_"), func(b *testing.B) {
			tdb := testdb.New(b)
			ctx := context.Background()
			if _, err := tdb.Pool.Exec(ctx, `INSERT INTO desired_snapshot_callbacks (domain_name, notify_url)
				SELECT format('d%06s.example.com', i), 'https://hooks.example.com/snap' FROM generate_series(1, 2000) i`); err != nil {
				b.Fatal(err)
			}
			pc, err := pgxpool.ParseConfig(tdb.URL)
			if err != nil {
				b.Fatal(err)
			}
			pc.ConnConfig.DefaultQueryExecMode = mode
			pool, err := pgxpool.NewWithConfig(ctx, pc)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			run := beginRun(b, pool)
			b.Run("pending_page_1000", func(b *testing.B) {
				for b.Loop() {
					if _, err := db.PendingPage(ctx, pool, "", 1000); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("write_outcomes_100", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if _, err := db.WriteOutcomes(ctx, pool, run, benchResults(run, 100, i), db.RunCounters{Requests: 1}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkMarkSending measures the statement a run adds per page of
// pending rows (db.MarkSending): 1,000 intents, for domains that have a
// state row already (a rerun) and for new ones (a first run).
func BenchmarkMarkSending(b *testing.B) {
	const n = 1000
	intents := func(round int) []model.Intent {
		in := make([]model.Intent, n)
		for i := range in {
			in[i] = model.Intent{Domain: fmt.Sprintf("m%d-%06d.example.com", round, i), Fingerprint: strings.Repeat("f", 64)}
		}
		return in
	}
	b.Run("new domains", func(b *testing.B) {
		tdb := testdb.New(b)
		ctx := context.Background()
		for i := 0; b.Loop(); i++ {
			if err := db.MarkSending(ctx, tdb.Pool, intents(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("known domains", func(b *testing.B) {
		tdb := testdb.New(b)
		ctx := context.Background()
		in := intents(0)
		if err := db.MarkSending(ctx, tdb.Pool, in); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := db.MarkSending(ctx, tdb.Pool, in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
