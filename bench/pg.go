package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/db"
)

// adminURL returns a working admin connection string: --database-url, or,
// when it was not given and nothing answers there, what scripts/pg-up.sh
// (installs and starts a local PostgreSQL) prints.
func (b *bench) adminURL(ctx context.Context) (string, error) {
	try := func(url string) error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, url)
		if err != nil {
			return err
		}
		return conn.Close(cctx)
	}
	err := try(b.o.databaseURL)
	if err == nil {
		return b.o.databaseURL, nil
	}
	if b.o.urlGiven {
		return "", fmt.Errorf("connecting to --database-url: %w", err)
	}
	script := filepath.Join(b.modRoot, "scripts", "pg-up.sh")
	b.logf("no Postgres at the default URL (%v); running %s", err, script)
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = os.Stderr
	out, serr := cmd.Output()
	if serr != nil {
		return "", fmt.Errorf("scripts/pg-up.sh: %w", serr)
	}
	url := strings.TrimSpace(string(out))
	if err := try(url); err != nil {
		return "", fmt.Errorf("connecting to %s: %w", redactURL(url), err)
	}
	return url, nil
}

// database is one scenario's fresh database.
type database struct {
	name, url string
	b         *bench
}

// createDB creates bench_<scenario>_<rand> and migrates it with the real
// binary.
func (b *bench) createDB(ctx context.Context, scenario string) (*database, error) {
	var r [4]byte
	_, _ = rand.Read(r[:])
	d := &database{name: "bench_" + scenario + "_" + hex.EncodeToString(r[:]), b: b}
	if err := b.adminExec(ctx, "CREATE DATABASE "+d.name); err != nil {
		return nil, err
	}
	url, err := db.WithDatabase(b.admin, d.name)
	if err != nil {
		d.drop()
		return nil, err
	}
	d.url = url
	if err := b.runMigrate(ctx, d.url); err != nil {
		d.drop()
		return nil, err
	}
	return d, nil
}

func (d *database) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.b.adminExec(ctx, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)"); err != nil {
		d.b.logf("!! dropping %s: %v", d.name, err)
	}
}

func (b *bench) adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, b.admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

func (d *database) conn(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, d.url)
}

// exec runs statements on a short-lived connection (so that no bench
// backend of the database is alive while the job runs).
func (d *database) exec(ctx context.Context, sqls ...string) error {
	conn, err := d.conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, q := range sqls {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", firstLine(q), err)
		}
	}
	return nil
}

// loadRows inserts n valid desired rows with generate_series (every
// authEvery-th of them with NotifyReqAuth and an 18-character auth key),
// then VACUUM ANALYZE. With accounts, the rows are dealt out to them in
// turn (the names are the bench's own, quoted as they are); without, every
// row is the default account's.
func (d *database) loadRows(ctx context.Context, n, authEvery int, accounts []string) (time.Duration, error) {
	t0 := time.Now()
	col, val := "", ""
	if len(accounts) > 0 {
		col = ", account"
		val = fmt.Sprintf(",\n       (ARRAY['%s'])[(i - 1) %% %d + 1]", strings.Join(accounts, "', '"), len(accounts))
	}
	err := d.exec(ctx, fmt.Sprintf(`INSERT INTO desired_snapshot_callbacks (domain_name, notify_url, notify_req_auth, notify_auth_key%[3]s)
SELECT 'live' || lpad(i::text, 7, '0') || '.bench.example.com',
       'https://hooks.example.com/snapshot/' || i,
       i %% %[2]d = 0,
       CASE WHEN i %% %[2]d = 0 THEN 'benchKey' || lpad(i::text, 10, '0') END%[4]s
FROM generate_series(1, %[1]d) AS i`, n, authEvery, col, val), "VACUUM ANALYZE")
	return time.Since(t0), err
}

// markDone records every desired row as applied by a synthetic run, the
// way WriteOutcomes would (reconcile_outcomes + reconcile_domain_state),
// with plain SQL.
func (d *database) markDone(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	conn, err := d.conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var hasRemote bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_name = 'reconcile_domain_state' AND column_name = 'remote_exists')`).Scan(&hasRemote); err != nil {
		return 0, err
	}
	remoteCol, remoteVal := "", ""
	if hasRemote {
		remoteCol, remoteVal = ", remote_exists", ", true"
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var run int64
		if err := tx.QueryRow(ctx, `INSERT INTO reconcile_runs (status, finished_at, applied, requests, rate, concurrency,
			host_name, program_version, note)
			SELECT 'succeeded', now(), count(*), count(*), 0, 0, 'bench', 'bench', 'bench: rows marked done with SQL'
			FROM desired_snapshot_callbacks RETURNING id`).Scan(&run); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO reconcile_outcomes (run_id, domain_name, outcome, http_status, attempts, fingerprint)
			SELECT $1, domain_name, 'applied', 200, 1, fingerprint FROM desired_snapshot_callbacks`, run); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO reconcile_domain_state (domain_name, last_outcome_id, last_run_id, last_outcome,
			last_fingerprint, last_finished_at, done_fingerprint`+remoteCol+`)
			SELECT domain_name, id, run_id, outcome, fingerprint, finished_at, fingerprint`+remoteVal+`
			FROM reconcile_outcomes WHERE run_id = $1`, run)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("marking rows done: %w", err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// count returns the pending and done rows (snapshot_callback_status).
func (d *database) count(ctx context.Context) (pending, done int64, err error) {
	conn, err := d.conn(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pending), count(*) FILTER (WHERE done)
		FROM snapshot_callback_status`).Scan(&pending, &done)
	return pending, done, err
}

// latestOutcomes returns every desired row's latest outcome
// (snapshot_callback_status; "" when never attempted).
func (d *database) latestOutcomes(ctx context.Context) (map[string]string, error) {
	conn, err := d.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT domain_name, coalesce(outcome, '') FROM snapshot_callback_status`)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var domain, outcome string
	_, err = pgx.ForEachRow(rows, []any{&domain, &outcome}, func() error {
		out[domain] = outcome
		return nil
	})
	return out, err
}

// explain returns EXPLAIN (ANALYZE, BUFFERS) of the job's pending-page query
// with $1 = after and $2 = limit, as a custom plan (the parameters' values
// known to the planner) or, with generic, the generic plan the job's
// prepared statement may switch to after five executions.
func (d *database) explain(ctx context.Context, sql, after string, limit int, generic bool) (string, error) {
	conn, err := d.conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	mode := "force_custom_plan"
	if generic {
		mode = "force_generic_plan"
	}
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
		return "", err
	}
	rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, after, limit)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	return strings.Join(lines, "\n"), nil
}

// pendingSQL is the job's pending-page query (internal/db), so the EXPLAIN
// follows the query as it is now.
func (b *bench) pendingSQL() (sql, source string) {
	return db.PendingPageInSQL(""), `internal/db (db.PendingPageInSQL(""): the default account's pending page, which a run of rows without an account reads)`
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// machine describes where the benchmark ran.
type machine struct {
	NProc      int    `json:"nproc"`
	CPUModel   string `json:"cpu_model"`
	MemTotal   string `json:"mem_total"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"go_version"`
	PGVersion  string `json:"pg_version"`
	LoadBefore string `json:"load_before"`
}

func (b *bench) machine(ctx context.Context) machine {
	m := machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version()}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		if f := strings.Fields(line); len(f) >= 2 {
			if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
				m.MemTotal = fmt.Sprintf("%.1f GiB", kb/1024/1024)
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadBefore = strings.Join(strings.Fields(string(data))[:3], " ")
	}
	if conn, err := pgx.Connect(ctx, b.admin); err == nil {
		var v string
		if conn.QueryRow(ctx, "SELECT version()").Scan(&v) == nil {
			m.PGVersion = v
		}
		conn.Close(ctx)
	}
	return m
}

// addProfileAccounts adds a reconcile_accounts row for each account,
// reached through its profile of the shared credentials file, at the run's
// --rate (rate NULL).
func (d *database) addProfileAccounts(ctx context.Context, accts []simAccount) error {
	conn, err := d.conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	names, profiles := make([]string, len(accts)), make([]string, len(accts))
	for i, a := range accts {
		names[i], profiles[i] = a.Name, a.profile()
	}
	_, err = conn.Exec(ctx, `INSERT INTO reconcile_accounts (name, credentials, profile, note)
		SELECT unnest($1::text[]), 'profile', unnest($2::text[]), 'bench'`, names, profiles)
	if err != nil {
		return fmt.Errorf("adding the accounts: %w", err)
	}
	return nil
}

// accountCounts returns each account's pending and done rows
// (snapshot_callback_status; "" the default account).
func (d *database) accountCounts(ctx context.Context) (map[string][2]int64, error) {
	conn, err := d.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT coalesce(account, ''), count(*) FILTER (WHERE pending), count(*) FILTER (WHERE done)
		FROM snapshot_callback_status GROUP BY 1`)
	if err != nil {
		return nil, err
	}
	out := map[string][2]int64{}
	var name string
	var pending, done int64
	_, err = pgx.ForEachRow(rows, []any{&name, &pending, &done}, func() error {
		out[name] = [2]int64{pending, done}
		return nil
	})
	return out, err
}

// runAccounts returns every row of reconcile_run_accounts.
func (d *database) runAccounts(ctx context.Context) ([]runAccountRow, error) {
	conn, err := d.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT run_id, coalesce(account, '') AS account, status, coalesce(reason, '') AS reason,
		coalesce(error_code, '') AS error_code, pending, done, not_done, requests, throttled, coalesce(rate, 0) AS rate
		FROM reconcile_run_accounts ORDER BY run_id, account`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[runAccountRow])
}
