package apply

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/reconcile/reconcile/internal/validate"
)

// DryRunSummary counts what a run would do.
type DryRunSummary struct {
	Add, Update, Invalid int64
}

// DryRun pages through the pending rows like Run, validates and classifies
// each, and writes one line per row to w ("add <domain>", "update <domain>",
// "invalid <domain>: <reason>"). It sends nothing and writes no outcome.
func DryRun(ctx context.Context, store Store, pageSize int, w io.Writer) (DryRunSummary, error) {
	var s DryRunSummary
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush()
	after := ""
	for {
		rows, err := store.PendingPage(ctx, after, pageSize)
		if err != nil {
			return s, fmt.Errorf("reading pending rows: %w", err)
		}
		for _, row := range rows {
			if err := validate.Row(row); err != nil {
				s.Invalid++
				fmt.Fprintf(bw, "invalid %s\n", err)
				continue
			}
			if row.Applied {
				s.Update++
				fmt.Fprintf(bw, "update %s\n", row.Domain)
			} else {
				s.Add++
				fmt.Fprintf(bw, "add %s\n", row.Domain)
			}
		}
		if len(rows) < pageSize {
			return s, ctx.Err()
		}
		after = rows[len(rows)-1].Domain
	}
}

// DryRunPrune lists the prune candidates on w ("delete <domain>") and
// returns their number; when there are more than pruneMax it says that the
// run would refuse to delete any.
func DryRunPrune(ctx context.Context, store Store, pageSize int, pruneMax int64, w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush()
	var n int64
	after := ""
	for {
		rows, err := store.PrunePage(ctx, 0, after, pageSize)
		if err != nil {
			return n, fmt.Errorf("reading prune candidates: %w", err)
		}
		for _, row := range rows {
			n++
			fmt.Fprintf(bw, "delete %s\n", row.Domain)
		}
		if len(rows) < pageSize {
			break
		}
		after = rows[len(rows)-1].Domain
	}
	if n > pruneMax {
		fmt.Fprintf(bw, "prune refused: %d candidates, --prune-max is %d: a run would delete none\n", n, pruneMax)
	}
	return n, ctx.Err()
}
