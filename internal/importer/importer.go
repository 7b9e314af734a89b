package importer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/reconcile/reconcile/internal/db"
)

// DefaultMaxReported is how many bad lines a Result keeps (the count is
// always complete).
const DefaultMaxReported = 50

// Options change what Import does.
type Options struct {
	// Replace also deletes the desired rows whose domain is on no line of
	// the file. A domain on a skipped line (SkipInvalid) is kept as it is.
	Replace bool
	// SkipInvalid skips bad lines (and counts them) instead of stopping the
	// import. Of several valid lines with one domain, the first is imported
	// and the others are bad lines.
	SkipInvalid bool
	// MaxReported is how many bad lines Result.BadLines keeps;
	// 0 means DefaultMaxReported.
	MaxReported int
}

// ErrEmptyReplace: --replace was given a file without a single valid line.
var ErrEmptyReplace = errors.New("refusing an empty replace")

// Result is what an import read and did.
type Result struct {
	// Lines is the number of records read after the header (empty lines
	// are not counted).
	Lines int64 `json:"lines"`
	// Counts of desired rows; all zero when the import stopped.
	Inserted  int64 `json:"inserted"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Deleted   int64 `json:"deleted"`
	// Skipped is the number of bad lines skipped (SkipInvalid).
	Skipped int64 `json:"skipped"`
	// Bad is the number of bad lines, duplicates included.
	Bad int64 `json:"bad"`
	// BadLines are the first MaxReported bad lines, in line order.
	BadLines []LineError `json:"bad_lines"`
	// Committed is true when the changes were committed.
	Committed bool `json:"committed"`
}

// Import reads an import file from r (see package doc) and applies it to
// desired_snapshot_callbacks through b, in one transaction:
//
//  1. the header is checked before anything else (ErrHeader);
//  2. every line is parsed and validated while it streams into a temporary
//     staging table with COPY (memory stays flat, whatever the size);
//  3. valid lines repeating an earlier valid line's domain are found in SQL;
//  4. if there are bad lines and o.SkipInvalid is false, the transaction is
//     rolled back: nothing is written, and the error wraps ErrBadLines
//     (Result.Bad and Result.BadLines say what was wrong);
//  5. otherwise one statement upserts the rows (new rows inserted, changed
//     rows updated with updated_at = now(), equal rows not touched), with
//     o.Replace absent domains are deleted, and the transaction commits.
//
// The account is one of the values: a line that only moves a domain to
// another account (or back to the default one, with an empty or absent
// account column) updates the row, whose fingerprint then changes, so the
// next run takes it up. A file without the account column puts every row
// it names in the default account.
//
// A read error (ErrRead), a cancelled ctx or a database error rolls back
// too. Imports on one database wait for each other (db.BeginImport). The
// auth keys are sent only to Postgres; no error or Result holds one.
func Import(ctx context.Context, b db.Beginner, r io.Reader, o Options) (Result, error) {
	if o.MaxReported <= 0 {
		o.MaxReported = DefaultMaxReported
	}
	res := Result{BadLines: []LineError{}}
	p, err := NewParser(r)
	if err != nil {
		return res, err
	}
	im, err := db.BeginImport(ctx, b)
	if err != nil {
		return res, err
	}
	defer im.Rollback(ctx)

	src := &source{p: p, maxReported: o.MaxReported}
	if _, err := im.Stage(ctx, src); err != nil {
		if src.err != nil {
			return res, src.err
		}
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			// Cancelling the context closes the COPY's connection, which
			// pgx may report as "use of closed network connection": say
			// why it closed.
			return res, fmt.Errorf("%w: %w", cerr, err)
		}
		return res, err
	}
	res.Lines = src.lines

	nDup, dups, err := im.Duplicates(ctx, o.MaxReported)
	if err != nil {
		return res, err
	}
	res.Bad = src.bad + nDup
	res.BadLines = mergeBad(src.reported, dups, o.MaxReported)
	if res.Bad > 0 && !o.SkipInvalid {
		return res, fmt.Errorf("%d %w; nothing was imported (--skip-invalid imports the good ones)", res.Bad, ErrBadLines)
	}
	if o.Replace && res.Lines-res.Bad == 0 {
		// A truncated or header-only file would otherwise empty the table.
		return res, fmt.Errorf("%w: --replace with no valid line would delete every desired row; nothing was imported", ErrEmptyReplace)
	}
	c, err := im.Apply(ctx, o.Replace)
	if err != nil {
		return res, err
	}
	if err := im.Commit(ctx); err != nil {
		return res, err
	}
	res.Inserted, res.Updated, res.Unchanged, res.Deleted = c.Inserted, c.Updated, c.Unchanged, c.Deleted
	res.Skipped = res.Bad
	res.Committed = true
	return res, nil
}

// mergeBad merges the bad lines found while parsing (in line order) with
// the duplicates (in line order) and keeps the first max.
func mergeBad(parsed []LineError, dups []db.Duplicate, max int) []LineError {
	out := make([]LineError, 0, min(len(parsed)+len(dups), max))
	out = append(out, parsed...)
	for _, d := range dups {
		out = append(out, LineError{Line: d.Line, Column: colDomain + 1, Field: Columns[colDomain], Domain: d.Domain,
			Reason: fmt.Sprintf("duplicate domain: already on line %d", d.FirstLine)})
	}
	slices.SortStableFunc(out, func(a, b LineError) int { return cmp.Compare(a.Line, b.Line) })
	if len(out) > max {
		out = out[:max]
	}
	return out
}

// source feeds the parser's records to COPY: valid lines as they are, bad
// lines with only their domain (when storable), so that Replace keeps it;
// it counts the bad lines and keeps the first maxReported.
type source struct {
	p           *Parser
	maxReported int

	cur      db.StagedRow
	lines    int64
	bad      int64
	reported []LineError
	err      error
}

func (s *source) Next() bool {
	for {
		rec, le, err := s.p.Next()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			s.err = err
			return false
		}
		s.lines++
		if le != nil {
			s.bad++
			if len(s.reported) < s.maxReported {
				s.reported = append(s.reported, *le)
			}
			if rec.Row.Domain == "" || !storable(rec.Row.Domain) {
				continue
			}
			s.cur = db.StagedRow{Line: rec.Line, Domain: rec.Row.Domain}
			return true
		}
		r := rec.Row
		s.cur = db.StagedRow{Line: rec.Line, Domain: r.Domain, NotifyURL: r.NotifyURL, ReqAuth: r.ReqAuth,
			AuthKey: r.AuthKey, Region: r.Region, Account: r.Account, Valid: true}
		return true
	}
}

func (s *source) Row() db.StagedRow { return s.cur }
func (s *source) Err() error        { return s.err }
