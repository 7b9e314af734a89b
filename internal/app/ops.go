package app

// The operator commands that read or load the desired state without calling
// the API: `reconcile import`, `reconcile plan` and `reconcile report`.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/importer"
	"github.com/reconcile/reconcile/internal/plan"
	"github.com/reconcile/reconcile/internal/report"
)

// ExitPlanPending is the exit code of `reconcile plan` when the next run has
// work to do (Terraform's -detailed-exitcode habit); also `run --dry-run`'s.
const ExitPlanPending = ExitPending

// ErrPlanPending: `reconcile plan` or `reconcile run --dry-run` found
// pending rows (exit ExitPending). The plan was printed; it is not a
// failure.
var ErrPlanPending = errors.New("the next run has pending rows")

// OpsExitCode is ExitCode; it is kept for the operator commands' callers.
func OpsExitCode(err error) int { return ExitCode(err) }

// Output formats of import, plan and report.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// opsMaxConns is the pool size of the operator commands: they use one
// connection at a time.
const opsMaxConns = 2

// ImportConfig is the configuration of `reconcile import`.
type ImportConfig struct {
	DatabaseURL string
	// File is the path of the CSV file, or "-" for Stdin.
	File  string
	Stdin io.Reader
	// Replace also deletes the desired rows absent from the file.
	Replace bool
	// SkipInvalid skips bad lines instead of stopping the import.
	SkipInvalid bool
	// Format of the counts on stdout: FormatTable or FormatJSON.
	Format string
}

// Validate checks c; errors wrap config.ErrUsage.
func (c ImportConfig) Validate() error {
	if c.File == "" {
		return config.Usagef("import needs a CSV file (or - for stdin)")
	}
	if c.Format != FormatTable && c.Format != FormatJSON {
		return config.Usagef("--format must be %s or %s (got %q)", FormatTable, FormatJSON, c.Format)
	}
	return nil
}

// PlanConfig is the configuration of `reconcile plan`.
type PlanConfig struct {
	DatabaseURL string
	// Limit is how many domains each class lists.
	Limit int
	// PageSize is how many pending rows one page reads (0: the default).
	PageSize int
	// Format: FormatTable or FormatJSON.
	Format string
}

// maxPlanLimit bounds --limit: the lists are held in memory.
const maxPlanLimit = 100000

// Validate checks c; errors wrap config.ErrUsage.
func (c PlanConfig) Validate() error {
	if c.Limit < 0 || c.Limit > maxPlanLimit {
		return config.Usagef("--limit must be 0 to %d (got %d)", maxPlanLimit, c.Limit)
	}
	if c.PageSize < 0 || c.PageSize > 100000 {
		return config.Usagef("--page-size must be 1 to 100000 (got %d)", c.PageSize)
	}
	if c.Format != FormatTable && c.Format != FormatJSON {
		return config.Usagef("--format must be %s or %s (got %q)", FormatTable, FormatJSON, c.Format)
	}
	return nil
}

// ReportConfig is the configuration of `reconcile report`.
type ReportConfig struct {
	DatabaseURL string
	// RunID is the run to report; 0: the latest run that is not a dry run.
	RunID int64
	// Format: FormatTable, FormatJSON or FormatCSV.
	Format string
}

// Validate checks c; errors wrap config.ErrUsage.
func (c ReportConfig) Validate() error {
	if c.RunID < 0 {
		return config.Usagef("--run must be a run id (got %d)", c.RunID)
	}
	switch c.Format {
	case FormatTable, FormatJSON, FormatCSV:
	default:
		return config.Usagef("--format must be %s, %s or %s (got %q)", FormatTable, FormatJSON, FormatCSV, c.Format)
	}
	return nil
}

// Import performs `reconcile import` with c (validated): it loads the file
// into desired_snapshot_callbacks in one transaction (package importer),
// lists bad lines on stderr (the first importer.DefaultMaxReported, then
// how many more) and prints the counts on stdout. It returns an error
// wrapping importer.ErrBadLines when bad lines stopped the import (nothing
// written; exit 1), importer.ErrHeader for a file without the header, and
// ErrSchema when the schema is missing or behind.
func Import(ctx context.Context, c ImportConfig, env Env) error {
	in := c.Stdin
	name := "stdin"
	if c.File != "-" {
		f, err := os.Open(c.File)
		if err != nil {
			return err // *fs.PathError: "open <file>: <reason>"
		}
		defer f.Close()
		in, name = f, c.File
	}
	if in == nil {
		return config.Usagef("import: no standard input")
	}
	t, _, err := ParseTarget(c.DatabaseURL)
	if err != nil {
		return err
	}
	env.Logger.Info("importing", "file", name, "target", t, "replace", c.Replace)
	pool, err := openChecked(ctx, c.DatabaseURL, env)
	if err != nil {
		return err
	}
	defer pool.Close()

	res, err := importer.Import(ctx, pool, in, importer.Options{Replace: c.Replace, SkipInvalid: c.SkipInvalid})
	for _, le := range res.BadLines {
		fmt.Fprintf(env.Stderr, "reconcile import: %s: %s\n", name, le.Error())
	}
	if more := res.Bad - int64(len(res.BadLines)); more > 0 {
		fmt.Fprintf(env.Stderr, "reconcile import: %s: … and %d more bad line(s)\n", name, more)
	}
	if res.Skipped > 0 {
		fmt.Fprintf(env.Stderr, "reconcile import: %s: skipped %d bad line(s)\n", name, res.Skipped)
	}
	if c.Format == FormatJSON && (err == nil || errors.Is(err, importer.ErrBadLines)) {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(res); werr != nil && err == nil {
			err = fmt.Errorf("import: writing the result: %w", werr)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if c.Format == FormatTable {
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 1, ' ', tabwriter.AlignRight)
		for _, kv := range []struct {
			k string
			v int64
		}{{"lines", res.Lines}, {"inserted", res.Inserted}, {"updated", res.Updated},
			{"unchanged", res.Unchanged}, {"deleted", res.Deleted}, {"skipped", res.Skipped}} {
			fmt.Fprintf(tw, "%s\t%d\t\n", kv.k, kv.v)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("import: writing the result: %w", err)
		}
	}
	return nil
}

// Plan performs `reconcile plan` with c (validated): it prints what the next
// run would do, read from one snapshot (a read-only REPEATABLE READ
// transaction), and returns ErrPlanPending when some rows are pending (exit
// 5), nil when none is, ErrSchema when the schema is missing or behind. It
// writes nothing.
func Plan(ctx context.Context, c PlanConfig, env Env) error {
	pool, err := openChecked(ctx, c.DatabaseURL, env)
	if err != nil {
		return err
	}
	defer pool.Close()
	var p plan.Plan
	err = readSnapshot(ctx, pool, func(tx pgx.Tx) (err error) {
		p, err = plan.Build(ctx, tx, plan.Options{Limit: c.Limit, PageSize: c.PageSize})
		return err
	})
	if err != nil {
		return err
	}
	if c.Format == FormatJSON {
		err = p.WriteJSON(env.Stdout)
	} else {
		err = p.WriteTable(env.Stdout)
	}
	if err != nil {
		return fmt.Errorf("plan: writing the plan: %w", err)
	}
	if p.Pending > 0 {
		return fmt.Errorf("%w: %d", ErrPlanPending, p.Pending)
	}
	return nil
}

// Report performs `reconcile report` with c (validated): it prints the
// audit report of one run. Errors wrap db.ErrRunNotFound when there is no
// such run (exit 1) and ErrSchema when the schema is missing or behind.
func Report(ctx context.Context, c ReportConfig, env Env) error {
	pool, err := openChecked(ctx, c.DatabaseURL, env)
	if err != nil {
		return err
	}
	defer pool.Close()
	var r report.Report
	err = readSnapshot(ctx, pool, func(tx pgx.Tx) (err error) {
		r, err = report.Build(ctx, tx, c.RunID)
		return err
	})
	if err != nil {
		return err
	}
	if err := r.Write(env.Stdout, c.Format); err != nil {
		return fmt.Errorf("report: writing the report: %w", err)
	}
	return nil
}

// openChecked connects and checks the schema: missing or behind is
// ErrSchema (exit 2); newer is logged and accepted (migrations only add).
func openChecked(ctx context.Context, url string, env Env) (*pgxpool.Pool, error) {
	pool, err := Connect(ctx, url, opsMaxConns)
	if err != nil {
		return nil, err
	}
	if err := db.CheckSchema(ctx, pool); err != nil {
		switch {
		case errors.Is(err, db.ErrSchemaAhead):
			if env.Logger != nil {
				env.Logger.Warn("the schema is newer than this program; continuing", "error", err)
			}
		case errors.Is(err, db.ErrSchemaMissing), errors.Is(err, db.ErrSchemaBehind):
			pool.Close()
			return nil, fmt.Errorf("%w: %w", ErrSchema, err)
		default:
			pool.Close()
			return nil, err
		}
	}
	return pool, nil
}

// readSnapshot runs f in a read-only REPEATABLE READ transaction, so that
// everything f reads comes from one snapshot, and ends it.
func readSnapshot(ctx context.Context, pool *pgxpool.Pool, f func(pgx.Tx) error) error {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin a read-only transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return f(tx)
}
