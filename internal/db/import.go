package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/model"
)

// ImportStagingTable is the temporary table an import stages its lines in.
// It lives only inside the import's transaction (ON COMMIT DROP, and gone on
// rollback), so concurrent imports on other sessions do not see each other's.
const ImportStagingTable = "reconcile_import_staging"

// importLockName derives the transaction-level advisory lock that serialises
// imports against each other (not against runs: a run reads pages, each its
// own snapshot, and sees an import's rows once it commits).
const importLockName = "reconcile.import"

// importWorkMem is the work_mem of the import transaction (SET LOCAL): the
// duplicate check and the upsert each sort the staged lines; at 1,000,000
// lines the sorts fit in memory instead of spilling to disk.
const importWorkMem = "64MB"

var importColumns = []string{"line", "domain_name", "notify_url", "notify_req_auth", "notify_auth_key", "region_id", "account", "valid"}

const (
	sqlImportLock    = `SELECT pg_advisory_xact_lock(hashtextextended('` + importLockName + `', 0))`
	sqlImportWorkMem = `SET LOCAL work_mem = '` + importWorkMem + `'`

	sqlCreateStaging = `CREATE TEMPORARY TABLE ` + ImportStagingTable + ` (
    line            bigint  NOT NULL,
    domain_name     text,
    notify_url      text,
    notify_req_auth boolean,
    notify_auth_key text,
    region_id       text,
    account         text,
    valid           boolean NOT NULL
) ON COMMIT DROP`

	sqlAnalyzeStaging = `ANALYZE ` + ImportStagingTable

	// sqlImportDuplicates lists the valid lines whose domain already appeared
	// on an earlier valid line, with that first line, in line order, and in
	// every row the total number of such lines. The duplicate domains are
	// found with a hash aggregate (no sort of the whole file); when there is
	// none, the join reads nothing more.
	sqlImportDuplicates = `WITH dup AS (
    SELECT domain_name, min(line) AS first_line, count(*) - 1 AS extra
    FROM ` + ImportStagingTable + ` WHERE valid
    GROUP BY domain_name HAVING count(*) > 1
)
SELECT s.line, s.domain_name, dup.first_line, (SELECT sum(extra) FROM dup)::bigint AS total
FROM ` + ImportStagingTable + ` s JOIN dup ON dup.domain_name = s.domain_name
WHERE s.valid AND s.line <> dup.first_line
ORDER BY s.line
LIMIT $1`

	sqlImportCountDuplicates = `SELECT coalesce(sum(n - 1), 0)::bigint FROM (
    SELECT count(*) AS n FROM ` + ImportStagingTable + ` WHERE valid GROUP BY domain_name HAVING count(*) > 1) x`

	// The upsert reads the staged rows (srcAll: every valid line, when no
	// domain repeats; srcFirst: the first valid line of each domain) ...
	importSrcAll = `WITH src AS (
    SELECT domain_name, notify_url, notify_req_auth, notify_auth_key, region_id, account
    FROM ` + ImportStagingTable + ` WHERE valid
)`
	importSrcFirst = `WITH src AS (
    SELECT DISTINCT ON (domain_name) domain_name, notify_url, notify_req_auth, notify_auth_key, region_id, account
    FROM ` + ImportStagingTable + ` WHERE valid
    ORDER BY domain_name, line
)`
	// ... drops those equal to the desired row already there, account
	// included (an anti-join,
	// so that unchanged rows are not even locked: no write at all for them),
	// and upserts the rest. The WHERE of DO UPDATE guards against a row made
	// equal meanwhile by another session. xmax = 0 tells an inserted row from
	// an updated one (an updated row version carries the updating
	// transaction in xmax). It returns the number inserted and updated.
	importUpsert = `, up AS (
    INSERT INTO desired_snapshot_callbacks AS d (domain_name, notify_url, notify_req_auth, notify_auth_key, region_id, account)
    SELECT s.domain_name, s.notify_url, s.notify_req_auth, s.notify_auth_key, s.region_id, s.account
    FROM src s
    WHERE NOT EXISTS (
        SELECT FROM desired_snapshot_callbacks e
        WHERE e.domain_name = s.domain_name
          AND (e.notify_url, e.notify_req_auth, e.notify_auth_key, e.region_id, e.account)
              IS NOT DISTINCT FROM (s.notify_url, s.notify_req_auth, s.notify_auth_key, s.region_id, s.account))
    ON CONFLICT (domain_name) DO UPDATE SET
        notify_url      = excluded.notify_url,
        notify_req_auth = excluded.notify_req_auth,
        notify_auth_key = excluded.notify_auth_key,
        region_id       = excluded.region_id,
        account         = excluded.account,
        updated_at      = now()
    WHERE (d.notify_url, d.notify_req_auth, d.notify_auth_key, d.region_id, d.account)
          IS DISTINCT FROM (excluded.notify_url, excluded.notify_req_auth, excluded.notify_auth_key, excluded.region_id,
                            excluded.account)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`

	sqlImportUpsertAll   = importSrcAll + importUpsert
	sqlImportUpsertFirst = importSrcFirst + importUpsert

	// sqlImportDeleteAbsent deletes the desired rows whose domain is on no
	// line of the file: staged lines that were skipped (valid = false) keep
	// their domain.
	sqlImportDeleteAbsent = `DELETE FROM desired_snapshot_callbacks d
WHERE NOT EXISTS (SELECT FROM ` + ImportStagingTable + ` s WHERE s.domain_name = d.domain_name)`
)

// ErrImportClosed: a method of an Import was called after Commit or
// Rollback.
var ErrImportClosed = errors.New("import already committed or rolled back")

// Beginner starts a transaction: *pgxpool.Pool, *pgx.Conn and *pgxpool.Conn
// satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// StagedRow is one line of an import file, as staged.
type StagedRow struct {
	// Line is the line number in the file (the header is line 1).
	Line int64
	// Domain is domain_name; for an invalid line, "" when the domain could
	// not be read or is not storable text (NUL bytes, invalid UTF-8).
	Domain    string
	NotifyURL string
	ReqAuth   bool
	// AuthKey is notify_auth_key; empty is staged as NULL. It is only ever
	// sent to Postgres.
	AuthKey model.Secret
	// Region is region_id; empty is staged as NULL.
	Region string
	// Account is the account ("" is staged as NULL: the default account).
	// The caller checks the name (importer.CheckAccount).
	Account string
	// Valid is false for a line that is skipped: only Line and Domain are
	// staged, so that it is not upserted but its domain counts as present
	// for Apply(replace).
	Valid bool
}

// StagedSource yields the rows to stage, like pgx.CopyFromSource: Next
// advances (false at the end or on error), Row returns the current row, Err
// the error that stopped Next (nil at a clean end).
type StagedSource interface {
	Next() bool
	Row() StagedRow
	Err() error
}

// ImportCounts is what Apply did to desired_snapshot_callbacks.
type ImportCounts struct {
	Inserted  int64 // new domains
	Updated   int64 // existing domains whose values (account included) changed (updated_at = now())
	Unchanged int64 // existing domains with the same values: not touched
	Deleted   int64 // with replace: domains on no line of the file
}

// Duplicate is a valid line whose domain already appeared on an earlier
// valid line (FirstLine).
type Duplicate struct {
	Line, FirstLine int64
	Domain          string
}

// Import is one import in progress: a transaction holding the import lock
// and a temporary staging table. Stage the lines, check Duplicates, then
// Apply and Commit — or Rollback, which leaves the database exactly as it
// was. Nothing is visible to other sessions before Commit. An Import is not
// safe for concurrent use.
type Import struct {
	tx     pgx.Tx
	closed bool
	// valid is the number of valid rows staged.
	valid int64
	// dups is the number of valid rows repeating an earlier valid row's
	// domain, once known (dupsKnown).
	dups      int64
	dupsKnown bool
}

// BeginImport starts an import: it begins a transaction on b, waits for the
// import lock (a transaction-level advisory lock, so two imports on one
// database run one after the other; ctx bounds the wait), raises work_mem
// for the transaction and creates the staging table. On error nothing is
// left open.
func BeginImport(ctx context.Context, b Beginner) (*Import, error) {
	tx, err := b.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("db: import: begin: %w", err)
	}
	for _, s := range []string{sqlImportLock, sqlImportWorkMem, sqlCreateStaging} {
		if _, err := tx.Exec(ctx, s); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("db: import: prepare: %w", err)
		}
	}
	return &Import{tx: tx}, nil
}

// Stage streams src into the staging table with COPY (one round trip per
// buffer, memory independent of the number of rows) and then ANALYZEs it.
// It returns the number of rows staged. When src.Err() is not nil after
// Next returned false, Stage returns that error (wrapped) and the import
// must be rolled back.
func (im *Import) Stage(ctx context.Context, src StagedSource) (int64, error) {
	if im.closed {
		return 0, fmt.Errorf("db: import: stage: %w", ErrImportClosed)
	}
	cs := &copySource{src: src}
	n, err := im.tx.CopyFrom(ctx, pgx.Identifier{ImportStagingTable}, importColumns, cs)
	im.valid += cs.valid
	im.dupsKnown = false
	if serr := src.Err(); serr != nil {
		// pgx aborts the COPY with the source's error as text; return the
		// error itself.
		return n, fmt.Errorf("db: import: stage lines: %w", serr)
	}
	if err != nil {
		return n, fmt.Errorf("db: import: stage lines: %w", err)
	}
	if _, err := im.tx.Exec(ctx, sqlAnalyzeStaging); err != nil {
		return n, fmt.Errorf("db: import: analyze staged lines: %w", err)
	}
	return n, nil
}

// Duplicates returns how many valid staged lines repeat the domain of an
// earlier valid line, and the first limit of them in line order (limit 0:
// only the count). Apply keeps the first line of each domain.
func (im *Import) Duplicates(ctx context.Context, limit int) (int64, []Duplicate, error) {
	if im.closed {
		return 0, nil, fmt.Errorf("db: import: duplicates: %w", ErrImportClosed)
	}
	if limit < 0 {
		return 0, nil, fmt.Errorf("db: import: duplicates: limit %d: %w", limit, ErrInvalidArgument)
	}
	// LIMIT 0 would hide the total; read one row and drop it.
	rows, err := im.tx.Query(ctx, sqlImportDuplicates, max(limit, 1))
	if err != nil {
		return 0, nil, fmt.Errorf("db: import: find duplicate domains: %w", err)
	}
	var (
		out   []Duplicate
		d     Duplicate
		total int64
	)
	_, err = pgx.ForEachRow(rows, []any{&d.Line, &d.Domain, &d.FirstLine, &total}, func() error {
		out = append(out, d)
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("db: import: find duplicate domains: %w", err)
	}
	if len(out) > limit {
		out = out[:limit]
	}
	im.dups, im.dupsKnown = total, true
	return total, out, nil
}

// Apply upserts the staged valid lines into desired_snapshot_callbacks (the
// first line of a domain that appears more than once) and, with replace,
// deletes the desired rows whose domain is on no staged line. Inserted and
// changed rows get updated_at = now(); rows whose values are equal are not
// written, nor even locked. Nothing is visible to others before Commit.
// Call it once, after Stage (and Duplicates, whose count it reuses; without
// it, Apply counts the duplicates itself). Unchanged is derived: valid
// staged rows, less duplicates, less inserted and updated.
func (im *Import) Apply(ctx context.Context, replace bool) (ImportCounts, error) {
	if im.closed {
		return ImportCounts{}, fmt.Errorf("db: import: apply: %w", ErrImportClosed)
	}
	if !im.dupsKnown {
		if err := im.tx.QueryRow(ctx, sqlImportCountDuplicates).Scan(&im.dups); err != nil {
			return ImportCounts{}, fmt.Errorf("db: import: count duplicate domains: %w", err)
		}
		im.dupsKnown = true
	}
	// Without duplicates, no DISTINCT ON (a sort of every staged row).
	upsert := sqlImportUpsertAll
	if im.dups > 0 {
		upsert = sqlImportUpsertFirst
	}
	var c ImportCounts
	if err := im.tx.QueryRow(ctx, upsert).Scan(&c.Inserted, &c.Updated); err != nil {
		return ImportCounts{}, fmt.Errorf("db: import: upsert desired rows: %w", err)
	}
	c.Unchanged = im.valid - im.dups - c.Inserted - c.Updated
	if replace {
		tag, err := im.tx.Exec(ctx, sqlImportDeleteAbsent)
		if err != nil {
			return ImportCounts{}, fmt.Errorf("db: import: delete rows absent from the file: %w", err)
		}
		c.Deleted = tag.RowsAffected()
	}
	return c, nil
}

// Commit commits the import (and drops the staging table). After Commit,
// Rollback is a no-op.
func (im *Import) Commit(ctx context.Context) error {
	if im.closed {
		return fmt.Errorf("db: import: commit: %w", ErrImportClosed)
	}
	im.closed = true
	if err := im.tx.Commit(ctx); err != nil {
		return fmt.Errorf("db: import: commit: %w", err)
	}
	return nil
}

// Rollback abandons the import: the database is left as it was. It is safe
// to call more than once and after Commit (then it does nothing), so callers
// may defer it. It runs even when ctx is done.
func (im *Import) Rollback(ctx context.Context) error {
	if im.closed {
		return nil
	}
	im.closed = true
	if err := im.tx.Rollback(context.WithoutCancel(ctx)); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("db: import: rollback: %w", err)
	}
	return nil
}

// copySource adapts a StagedSource to pgx.CopyFromSource, reusing one
// values slice (pgx encodes each row before asking for the next).
type copySource struct {
	src   StagedSource
	vals  [8]any
	valid int64
}

func (c *copySource) Next() bool { return c.src.Next() }
func (c *copySource) Err() error { return c.src.Err() }

func (c *copySource) Values() ([]any, error) {
	r := c.src.Row()
	v := c.vals[:]
	v[0] = r.Line
	v[1] = nullText(r.Domain)
	v[7] = r.Valid
	if !r.Valid {
		v[2], v[3], v[4], v[5], v[6] = nil, nil, nil, nil, nil
		return v, nil
	}
	c.valid++
	v[2] = r.NotifyURL
	v[3] = r.ReqAuth
	v[4] = nullText(r.AuthKey.Reveal())
	v[5] = nullText(r.Region)
	v[6] = nullText(r.Account)
	return v, nil
}

// nullText is s, or NULL when s is empty.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}
