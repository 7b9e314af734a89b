package app

// `reconcile history prune`: retention of reconcile_outcomes.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/db"
)

// History retention limits.
const (
	// MinHistoryAge is the smallest --older-than: younger history is what
	// a run going on is writing, and what an operator reads after a run.
	MinHistoryAge = time.Hour
	// maxHistoryAge bounds --older-than (a cutoff before year 1900 is a typo).
	maxHistoryAge = 100 * 365 * 24 * time.Hour
	// DefaultHistoryBatch is how many outcome rows one transaction looks at.
	DefaultHistoryBatch = 10000
	// maxHistoryBatch bounds --batch-size: a batch is one transaction that
	// holds its deleted rows' locks until it commits.
	maxHistoryBatch = 100000
)

// HistoryPruneConfig is the configuration of `reconcile history prune`.
type HistoryPruneConfig struct {
	DatabaseURL string
	// OlderThan: outcome rows that finished longer ago are deleted, unless
	// they are their domain's latest.
	OlderThan time.Duration
	// BatchSize is how many outcome rows one transaction looks at.
	BatchSize int
	// Format: FormatTable or FormatJSON.
	Format string
}

// ParseAge parses an --older-than value: whole days ("90d") or a Go
// duration ("36h", "90m"). It checks nothing else (see Validate).
func ParseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > int64(maxHistoryAge/(24*time.Hour)) || n < -int64(maxHistoryAge/(24*time.Hour)) {
			return 0, config.Usagef("--older-than %q: want whole days (90d) or a duration (36h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, config.Usagef("--older-than %q: want whole days (90d) or a duration (36h)", s)
	}
	return d, nil
}

// Validate checks c; errors wrap config.ErrUsage.
func (c HistoryPruneConfig) Validate() error {
	if c.OlderThan < MinHistoryAge || c.OlderThan > maxHistoryAge {
		return config.Usagef("--older-than must be at least %s and at most 36500d (got %s)", MinHistoryAge, c.OlderThan)
	}
	if c.BatchSize < 1 || c.BatchSize > maxHistoryBatch {
		return config.Usagef("--batch-size must be 1 to %d (got %d)", maxHistoryBatch, c.BatchSize)
	}
	if c.Format != FormatTable && c.Format != FormatJSON {
		return config.Usagef("--format must be %s or %s (got %q)", FormatTable, FormatJSON, c.Format)
	}
	return nil
}

// HistoryPruned is what `reconcile history prune` did.
type HistoryPruned struct {
	Cutoff time.Time `json:"cutoff"`
	// Scanned outcome rows were looked at; Deleted of them were deleted;
	// KeptLatest were older than the cutoff but their domain's latest.
	Scanned    int64   `json:"scanned"`
	Deleted    int64   `json:"deleted"`
	KeptLatest int64   `json:"kept_latest"`
	Batches    int64   `json:"batches"`
	Seconds    float64 `json:"seconds"`
}

// PruneHistory performs `reconcile history prune` with c (validated): it
// deletes the reconcile_outcomes rows that finished before now minus
// c.OlderThan, except each domain's latest outcome, in batches of
// c.BatchSize rows, one short transaction each, walking the table in id
// order (the order rows were written in) and stopping at the first batch
// with no row older than the cutoff. reconcile_runs (every run's summary
// and counts) and reconcile_domain_state are never touched. It may run
// while a run is going: it takes no lock a run's writes wait for. Running
// it again deletes nothing more. Stopped by a signal, it returns an error
// wrapping apply.ErrInterrupted (exit 4); what the committed batches
// deleted stays deleted.
func PruneHistory(ctx context.Context, c HistoryPruneConfig, env Env) error {
	t, _, err := ParseTarget(c.DatabaseURL)
	if err != nil {
		return err
	}
	start := time.Now()
	res := HistoryPruned{Cutoff: start.Add(-c.OlderThan).UTC().Truncate(time.Second)}
	env.Logger.Info("pruning history", "target", t, "older_than", c.OlderThan.String(), "cutoff", res.Cutoff)
	pool, err := openChecked(ctx, c.DatabaseURL, env)
	if err != nil {
		return err
	}
	defer pool.Close()
	after := int64(math.MinInt64) // ids start at 1, but a restored table may hold any
	for {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: history prune stopped after deleting %d rows", apply.ErrInterrupted, res.Deleted)
		}
		b, err := db.PruneHistoryBatch(ctx, pool, after, res.Cutoff, c.BatchSize)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: history prune stopped after deleting %d rows", apply.ErrInterrupted, res.Deleted)
			}
			return fmt.Errorf("history prune (deleted %d rows before this): %w", res.Deleted, err)
		}
		res.Batches++
		res.Scanned += b.Scanned
		res.Deleted += b.Deleted
		res.KeptLatest += b.Old - b.Deleted
		if b.Scanned == 0 || b.Old == 0 {
			break // the end of the table, or rows newer than the cutoff from here on
		}
		after = b.LastID
	}
	res.Seconds = time.Since(start).Seconds()
	env.Logger.Info("history pruned", "deleted", res.Deleted, "kept_latest", res.KeptLatest, "batches", res.Batches)
	if c.Format == FormatJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("history prune: writing the result: %w", err)
		}
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "cutoff\t%s\n", res.Cutoff.Format(time.RFC3339))
	for _, kv := range []struct {
		k string
		v int64
	}{{"scanned", res.Scanned}, {"deleted", res.Deleted}, {"kept_latest", res.KeptLatest}, {"batches", res.Batches}} {
		fmt.Fprintf(tw, "%s\t%d\n", kv.k, kv.v)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("history prune: writing the result: %w", err)
	}
	return nil
}
