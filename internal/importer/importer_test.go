package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// desired is a desired_snapshot_callbacks row as the tests see it; empty
// key and region are NULL.
type desired struct {
	url    string
	auth   bool
	key    string
	region string
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func insertRows(t *testing.T, pool *pgxpool.Pool, rows map[string]desired) {
	t.Helper()
	for d, r := range rows {
		_, err := pool.Exec(testutil.Context(t), `INSERT INTO desired_snapshot_callbacks (domain_name, notify_url, notify_req_auth,
notify_auth_key, region_id, updated_at) VALUES ($1, $2, $3, $4, $5, now() - interval '1 day')`,
			d, r.url, r.auth, nullable(r.key), nullable(r.region))
		if err != nil {
			t.Fatal(err)
		}
	}
}

// tableState reads the whole table, and per domain its row version (xmin)
// and updated_at.
type rowMeta struct {
	xmin      uint32
	updatedAt time.Time
}

func tableState(t *testing.T, pool *pgxpool.Pool) (map[string]desired, map[string]rowMeta) {
	t.Helper()
	rows, err := pool.Query(testutil.Context(t), `SELECT domain_name, notify_url, notify_req_auth, coalesce(notify_auth_key, ''),
coalesce(region_id, ''), notify_auth_key IS NULL, region_id IS NULL, xmin::text::bigint, updated_at
FROM desired_snapshot_callbacks`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	state, meta := map[string]desired{}, map[string]rowMeta{}
	for rows.Next() {
		var d string
		var r desired
		var keyNull, regionNull bool
		var xmin int64
		var m rowMeta
		if err := rows.Scan(&d, &r.url, &r.auth, &r.key, &r.region, &keyNull, &regionNull, &xmin, &m.updatedAt); err != nil {
			t.Fatal(err)
		}
		if keyNull != (r.key == "") || regionNull != (r.region == "") {
			t.Errorf("%s: empty key or region stored as '' instead of NULL", d)
		}
		m.xmin = uint32(xmin)
		state[d], meta[d] = r, m
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return state, meta
}

const k1, k2 = "Key0123456789abcdefA", "Key0123456789abcdefB"

func TestImport(t *testing.T) {
	t.Parallel()
	existing := map[string]desired{
		"a.example.com": {url: "https://h.example.com/a"},
		"b.example.com": {url: "https://h.example.com/b"},
		"c.example.com": {url: "https://h.example.com/c", auth: true, key: k1, region: "cn-beijing"},
		"z.example.com": {url: "https://h.example.com/z"},
	}
	type badWant struct {
		line   int64
		field  string
		reason string
	}
	for _, tc := range []struct {
		name     string
		existing map[string]desired
		file     string // after the header
		opts     Options
		wantErr  error
		want     Result // the counts and Bad; BadLines checked with bad
		bad      []badWant
		table    map[string]desired // the table afterwards; nil: unchanged
	}{
		{
			name: "into an empty table",
			file: "a.example.com,https://h.example.com/a,false,,\n" +
				"c.example.com,https://h.example.com/c,true," + k1 + ",cn-beijing\n",
			want: Result{Lines: 2, Inserted: 2},
			table: map[string]desired{
				"a.example.com": {url: "https://h.example.com/a"},
				"c.example.com": {url: "https://h.example.com/c", auth: true, key: k1, region: "cn-beijing"},
			},
		},
		{
			name:     "insert, update, unchanged; others kept",
			existing: existing,
			file: "a.example.com,https://h.example.com/a,false,,\n" + // same
				"b.example.com,https://h.example.com/b2,false,,\n" + // url changed
				"c.example.com,https://h.example.com/c,true," + k2 + ",cn-beijing\n" + // key changed
				"d.example.com,https://h.example.com/d,no,,cn-shanghai\n", // new
			want: Result{Lines: 4, Inserted: 1, Updated: 2, Unchanged: 1},
			table: map[string]desired{
				"a.example.com": {url: "https://h.example.com/a"},
				"b.example.com": {url: "https://h.example.com/b2"},
				"c.example.com": {url: "https://h.example.com/c", auth: true, key: k2, region: "cn-beijing"},
				"d.example.com": {url: "https://h.example.com/d", region: "cn-shanghai"},
				"z.example.com": {url: "https://h.example.com/z"},
			},
		},
		{
			name:     "replace deletes absent domains",
			existing: existing,
			file: "a.example.com,https://h.example.com/a,false,,\n" +
				"c.example.com,https://h.example.com/c,false,,\n", // auth off, key and region gone
			opts: Options{Replace: true},
			want: Result{Lines: 2, Updated: 1, Unchanged: 1, Deleted: 2},
			table: map[string]desired{
				"a.example.com": {url: "https://h.example.com/a"},
				"c.example.com": {url: "https://h.example.com/c"},
			},
		},
		{
			name:     "replace with only the header is refused",
			existing: existing,
			opts:     Options{Replace: true},
			wantErr:  ErrEmptyReplace,
			want:     Result{},
		},
		{
			name:     "replace with only bad lines is refused, even with skip-invalid",
			existing: existing,
			file:     "x,https://h.example.com/x,false,,\n",
			opts:     Options{Replace: true, SkipInvalid: true},
			wantErr:  ErrEmptyReplace,
			want:     Result{Lines: 1, Bad: 1},
			bad:      []badWant{{2, "domain_name", "two labels"}},
		},
		{
			name:     "a bad line stops everything",
			existing: existing,
			file: "a.example.com,https://h.example.com/a2,false,,\n" +
				"d.example.com,https://h.example.com/d,true,,\n" + // no key
				"e.example.com,https://h.example.com/e,false,,\n",
			opts:    Options{Replace: true},
			wantErr: ErrBadLines,
			want:    Result{Lines: 3, Bad: 1},
			bad:     []badWant{{3, "notify_auth_key", "required"}},
		},
		{
			name:     "skip-invalid imports the good lines",
			existing: existing,
			file: "a.example.com,https://h.example.com/a2,false,,\n" +
				"d.example.com,https://h.example.com/d,true,,\n" +
				"e.example.com,https://h.example.com/e,maybe,,\n" +
				"f.example.com,https://h.example.com/f,false,,\n" +
				"too,few\n",
			opts: Options{SkipInvalid: true},
			want: Result{Lines: 5, Inserted: 1, Updated: 1, Skipped: 3, Bad: 3},
			bad:  []badWant{{3, "notify_auth_key", "required"}, {4, "notify_req_auth", "must be"}, {6, "", "columns"}},
			table: map[string]desired{
				"a.example.com": {url: "https://h.example.com/a2"},
				"b.example.com": {url: "https://h.example.com/b"},
				"c.example.com": {url: "https://h.example.com/c", auth: true, key: k1, region: "cn-beijing"},
				"f.example.com": {url: "https://h.example.com/f"},
				"z.example.com": {url: "https://h.example.com/z"},
			},
		},
		{
			name:     "replace keeps the domain of a skipped line",
			existing: existing,
			file: "a.example.com,https://h.example.com/a,false,,\n" +
				"b.example.com,https://h.example.com/b2,true,,\n" + // bad: b is neither updated nor deleted
				"c.example.com,https://h.example.com/c,yes,,\n", // bad too
			opts: Options{Replace: true, SkipInvalid: true},
			want: Result{Lines: 3, Unchanged: 1, Deleted: 1, Skipped: 2, Bad: 2},
			bad:  []badWant{{3, "notify_auth_key", "required"}, {4, "notify_auth_key", "required"}},
			table: map[string]desired{
				"a.example.com": existing["a.example.com"],
				"b.example.com": existing["b.example.com"],
				"c.example.com": existing["c.example.com"],
			},
		},
		{
			name: "duplicate domains stop the import",
			file: "a.example.com,https://h.example.com/1,false,,\n" +
				"b.example.com,https://h.example.com/b,false,,\n" +
				"a.example.com,https://h.example.com/2,false,,\n" +
				"a.example.com,https://h.example.com/3,false,,\n",
			wantErr: ErrBadLines,
			want:    Result{Lines: 4, Bad: 2},
			bad:     []badWant{{4, "domain_name", "already on line 2"}, {5, "domain_name", "already on line 2"}},
			table:   map[string]desired{},
		},
		{
			name: "duplicates skipped: the first line wins",
			file: "a.example.com,https://h.example.com/1,false,,\n" +
				"a.example.com,https://h.example.com/2,false,,\n" +
				"b.example.com,https://h.example.com/b,false,,\n",
			opts: Options{SkipInvalid: true},
			want: Result{Lines: 3, Inserted: 2, Skipped: 1, Bad: 1},
			bad:  []badWant{{3, "domain_name", "already on line 2"}},
			table: map[string]desired{
				"a.example.com": {url: "https://h.example.com/1"},
				"b.example.com": {url: "https://h.example.com/b"},
			},
		},
		{
			name: "a bad line and a valid line of one domain are not duplicates",
			file: "a.example.com,https://h.example.com/1,maybe,,\n" +
				"a.example.com,https://h.example.com/2,false,,\n",
			opts:  Options{SkipInvalid: true},
			want:  Result{Lines: 2, Inserted: 1, Skipped: 1, Bad: 1},
			bad:   []badWant{{2, "notify_req_auth", "must be"}},
			table: map[string]desired{"a.example.com": {url: "https://h.example.com/2"}},
		},
		{
			name:     "bad lines and duplicates are reported in line order",
			existing: existing,
			file: "a.example.com,https://h.example.com/1,false,,\n" +
				"x,https://h.example.com/x,false,,\n" +
				"a.example.com,https://h.example.com/2,false,,\n" +
				"y.example.com,notaurl,false,,\n",
			wantErr: ErrBadLines,
			want:    Result{Lines: 4, Bad: 3},
			bad: []badWant{{3, "domain_name", "two labels"}, {4, "domain_name", "already on line 2"},
				{5, "notify_url", "scheme"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tdb := testdb.New(t)
			insertRows(t, tdb.Pool, tc.existing)
			_, metaBefore := tableState(t, tdb.Pool)

			res, err := Import(testutil.Context(t), tdb.Pool, strings.NewReader(Header+"\n"+tc.file), tc.opts)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Import = %v, want %v", err, tc.wantErr)
			}
			got := res
			got.BadLines = nil
			want := tc.want
			want.Committed = tc.wantErr == nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("result = %+v\n           want %+v", got, want)
			}
			if len(res.BadLines) != len(tc.bad) {
				t.Fatalf("bad lines = %+v, want %d", res.BadLines, len(tc.bad))
			}
			for i, w := range tc.bad {
				b := res.BadLines[i]
				if b.Line != w.line || b.Field != w.field || !strings.Contains(b.Reason, w.reason) {
					t.Errorf("bad line %d = %+v, want %+v", i, b, w)
				}
			}

			table, metaAfter := tableState(t, tdb.Pool)
			wantTable := tc.table
			if wantTable == nil {
				wantTable = tc.existing
			}
			if len(table) != len(wantTable) {
				t.Errorf("table has %d rows, want %d: %v", len(table), len(wantTable), table)
			}
			for d, w := range wantTable {
				if table[d] != w {
					t.Errorf("%s = %+v, want %+v", d, table[d], w)
				}
			}
			// Rows with the same values are not written at all; changed
			// rows get a new updated_at.
			for d, before := range metaBefore {
				after, ok := metaAfter[d]
				if !ok {
					continue
				}
				same := tc.existing[d] == table[d]
				if same && after != before {
					t.Errorf("%s: unchanged row was rewritten (%+v -> %+v)", d, before, after)
				}
				if !same && !after.updatedAt.After(before.updatedAt) {
					t.Errorf("%s: changed row kept updated_at %v", d, after.updatedAt)
				}
			}
		})
	}
}

func TestImportHeaderChecked(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	insertRows(t, tdb.Pool, map[string]desired{"a.example.com": {url: "https://h.example.com/a"}})
	for _, in := range []string{"", "domain,url\n", "a.example.com,https://h.example.com/,false,,\n"} {
		_, err := Import(testutil.Context(t), tdb.Pool, strings.NewReader(in), Options{Replace: true})
		if !errors.Is(err, ErrHeader) {
			t.Errorf("Import(%q) = %v, want ErrHeader", in, err)
		}
	}
	if table, _ := tableState(t, tdb.Pool); len(table) != 1 {
		t.Errorf("table changed: %v", table)
	}
}

// A failing input, or a cancelled context, in the middle of the file rolls
// everything back.
func TestImportAbortsCleanly(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	insertRows(t, tdb.Pool, map[string]desired{"a.example.com": {url: "https://h.example.com/a"}})
	before, _ := tableState(t, tdb.Pool)

	broken := io.MultiReader(&genReader{n: 5000}, iotest.ErrReader(errors.New("connection reset by peer")))
	if _, err := Import(testutil.Context(t), tdb.Pool, broken, Options{Replace: true}); !errors.Is(err, ErrRead) {
		t.Fatalf("Import with a failing reader = %v, want ErrRead", err)
	}

	ctx, cancel := context.WithCancel(testutil.Context(t))
	cancelling := &cancelAfter{r: &genReader{n: 100000}, n: 200000, cancel: cancel}
	if _, err := Import(ctx, tdb.Pool, cancelling, Options{Replace: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Import cancelled mid-file = %v, want context.Canceled", err)
	}

	after, _ := tableState(t, tdb.Pool)
	if len(after) != len(before) || after["a.example.com"] != before["a.example.com"] {
		t.Fatalf("table changed by aborted imports: %d rows", len(after))
	}
	// The connection pool is still usable, and no import lock is left.
	if _, err := Import(testutil.Context(t), tdb.Pool, &genReader{n: 10}, Options{}); err != nil {
		t.Fatalf("Import after the aborted ones: %v", err)
	}
}

type cancelAfter struct {
	r      io.Reader
	n      int
	read   int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.read += n; c.read >= c.n {
		c.cancel()
	}
	return n, err
}

// Two imports at once: the import lock makes them run one after the other,
// so each one's counts are exact and the second sees the first's rows.
func TestImportConcurrent(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	var wg sync.WaitGroup
	results := make([]Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = Import(testutil.Context(t), tdb.Pool, &genReader{n: 3000}, Options{Replace: true})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("import %d: %v", i, err)
		}
	}
	a, b := results[0], results[1]
	if a.Inserted+b.Inserted != 3000 || a.Unchanged+b.Unchanged != 3000 || a.Inserted*b.Inserted != 0 {
		t.Fatalf("concurrent imports: %+v and %+v; want one to insert 3000 and the other to find them unchanged", a, b)
	}
}

// TestImportGenerated imports 20,000 generated lines three times: into an
// empty table, unchanged, and with a tenth changed and some dropped
// (--replace). It logs the throughput; `reconcile import` of 1,000,000 lines
// is measured by hand (see README).
func TestImportGenerated(t *testing.T) {
	t.Parallel()
	const n = 20000
	tdb := testdb.New(t)
	run := func(r io.Reader, o Options) Result {
		t.Helper()
		start := time.Now()
		res, err := Import(testutil.Context(t), tdb.Pool, r, o)
		if err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		t.Logf("%d lines in %v (%.0f lines/s): %+v", res.Lines, el, float64(res.Lines)/el.Seconds(), res)
		if el > time.Minute {
			t.Errorf("%d lines took %v", n, el)
		}
		return res
	}
	if got := run(&genReader{n: n}, Options{}); got.Inserted != n || got.Lines != n {
		t.Fatalf("first import: %+v", got)
	}
	if got := run(&genReader{n: n}, Options{}); got.Unchanged != n {
		t.Fatalf("second import: %+v", got)
	}
	// Every tenth line gets a new URL, lines 0-99 are dropped (replace).
	var b strings.Builder
	b.WriteString(Header + "\n")
	for i := 100; i < n; i++ {
		l := genLine(i)
		if i%10 == 0 {
			l = strings.Replace(l, "/snap/", "/snap2/", 1)
		}
		b.WriteString(l)
	}
	got := run(strings.NewReader(b.String()), Options{Replace: true})
	want := Result{Lines: n - 100, Updated: (n - 100) / 10, Unchanged: (n - 100) - (n-100)/10, Deleted: 100, Committed: true}
	got.BadLines = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("third import: %+v, want %+v", got, want)
	}
	var count int
	if err := tdb.Pool.QueryRow(testutil.Context(t), `SELECT count(*) FROM desired_snapshot_callbacks WHERE notify_url LIKE '%/snap2/%'`).Scan(&count); err != nil || count != (n-100)/10 {
		t.Fatalf("changed rows in the table: %d, %v", count, err)
	}
}

// More bad lines than MaxReported: the count is exact, the list is the
// first ones, and nothing in the result or error holds an auth key.
func TestImportManyBadLines(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	var b strings.Builder
	b.WriteString(Header + "\n")
	for i := range 300 {
		// Every line is bad: the key is one character short.
		fmt.Fprintf(&b, "d%03d.example.com,https://h.example.com/,true,Secret%07dXY,\n", i, i)
	}
	res, err := Import(testutil.Context(t), tdb.Pool, strings.NewReader(b.String()), Options{})
	if !errors.Is(err, ErrBadLines) || res.Bad != 300 || len(res.BadLines) != DefaultMaxReported {
		t.Fatalf("Import = %v, bad %d, %d listed", err, res.Bad, len(res.BadLines))
	}
	if res.BadLines[0].Line != 2 || res.BadLines[DefaultMaxReported-1].Line != DefaultMaxReported+1 {
		t.Errorf("listed lines %d..%d, want 2..%d", res.BadLines[0].Line, res.BadLines[len(res.BadLines)-1].Line, DefaultMaxReported+1)
	}
	out, _ := json.Marshal(res)
	for _, text := range []string{string(out), err.Error()} {
		if strings.Contains(text, "Secret0") {
			t.Fatalf("an auth key is printed: %s", text)
		}
	}
}

// accountsOf reads every desired row's account ("" for NULL) and
// fingerprint.
func accountsOf(t *testing.T, pool *pgxpool.Pool) (accounts, fingerprints map[string]string) {
	t.Helper()
	rows, err := pool.Query(testutil.Context(t), `SELECT domain_name, coalesce(account, ''), account = '', fingerprint
FROM desired_snapshot_callbacks`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	accounts, fingerprints = map[string]string{}, map[string]string{}
	for rows.Next() {
		var d, a, fp string
		var empty *bool
		if err := rows.Scan(&d, &a, &empty, &fp); err != nil {
			t.Fatal(err)
		}
		if empty != nil && *empty {
			t.Errorf("%s: the default account stored as '' instead of NULL", d)
		}
		accounts[d], fingerprints[d] = a, fp
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return accounts, fingerprints
}

// The account column: stored (empty as NULL), part of the values (a line
// that only moves a domain to another account is an update, and the row's
// fingerprint changes so that it becomes pending), and a bad name is a bad
// line like any other.
func TestImportAccounts(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	ctx := testutil.Context(t)
	imp := func(header, body string, o Options) (Result, error) {
		t.Helper()
		return Import(ctx, tdb.Pool, strings.NewReader(header+"\n"+body), o)
	}
	res, err := imp(HeaderWithAccount, "a.example.com,https://h.example.com/a,false,,,\n"+
		"b.example.com,https://h.example.com/b,false,,,tenant-a\n"+
		"c.example.com,https://h.example.com/c,false,,,tenant-b\n", Options{})
	if err != nil || res.Inserted != 3 {
		t.Fatalf("first import = %+v, %v", res, err)
	}
	acc, fp1 := accountsOf(t, tdb.Pool)
	if !reflect.DeepEqual(acc, map[string]string{"a.example.com": "", "b.example.com": "tenant-a", "c.example.com": "tenant-b"}) {
		t.Fatalf("accounts = %v", acc)
	}

	// Mark every row done for its current values: then only a change of
	// values makes one pending again.
	run, err := db.BeginRun(ctx, tdb.Pool, db.RunStart{Status: db.RunRunning, Rate: 25, Concurrency: 4, HostName: "h", Version: "v"})
	if err != nil {
		t.Fatal(err)
	}
	var done []model.Result
	for d, fp := range fp1 {
		done = append(done, model.Result{Domain: d, Outcome: model.OutcomeApplied, Attempts: 1, Fingerprint: fp, Account: acc[d]})
	}
	if _, err := db.WriteOutcomes(ctx, tdb.Pool, run, done, db.RunCounters{}); err != nil {
		t.Fatal(err)
	}
	pending := func() map[string]bool {
		t.Helper()
		out := map[string]bool{}
		rows, err := tdb.Pool.Query(ctx, `SELECT domain_name FROM snapshot_callback_status WHERE pending`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				t.Fatal(err)
			}
			out[d] = true
		}
		return out
	}
	if p := pending(); len(p) != 0 {
		t.Fatalf("pending before the second import: %v", p)
	}
	_, meta1 := tableState(t, tdb.Pool)

	// Only the accounts change: a moves to tenant-a, b to tenant-c, c stays.
	res, err = imp(HeaderWithAccount, "a.example.com,https://h.example.com/a,false,,,tenant-a\n"+
		"b.example.com,https://h.example.com/b,false,,,tenant-c\n"+
		"c.example.com,https://h.example.com/c,false,,,tenant-b\n", Options{})
	if err != nil || res.Updated != 2 || res.Unchanged != 1 || res.Inserted != 0 {
		t.Fatalf("account-only change = %+v, %v; want 2 updated, 1 unchanged", res, err)
	}
	acc, fp2 := accountsOf(t, tdb.Pool)
	if acc["a.example.com"] != "tenant-a" || acc["b.example.com"] != "tenant-c" || acc["c.example.com"] != "tenant-b" {
		t.Fatalf("accounts = %v", acc)
	}
	if fp2["a.example.com"] == fp1["a.example.com"] || fp2["b.example.com"] == fp1["b.example.com"] ||
		fp2["c.example.com"] != fp1["c.example.com"] {
		t.Fatalf("fingerprints: %v -> %v; want a and b changed, c kept", fp1, fp2)
	}
	if p := pending(); !reflect.DeepEqual(p, map[string]bool{"a.example.com": true, "b.example.com": true}) {
		t.Fatalf("pending after moving a and b = %v", p)
	}
	_, meta2 := tableState(t, tdb.Pool)
	if meta2["c.example.com"] != meta1["c.example.com"] {
		t.Errorf("c was rewritten although unchanged")
	}
	if !meta2["a.example.com"].updatedAt.After(meta1["a.example.com"].updatedAt) {
		t.Errorf("a kept updated_at after moving to another account")
	}

	// A file without the account column puts its rows in the default
	// account: b moves back, a NULL account, and a's default-account
	// fingerprint is the one it had at first.
	res, err = imp(Header, "a.example.com,https://h.example.com/a,false,,\n", Options{})
	if err != nil || res.Updated != 1 {
		t.Fatalf("import without the column = %+v, %v", res, err)
	}
	acc, fp3 := accountsOf(t, tdb.Pool)
	if acc["a.example.com"] != "" || fp3["a.example.com"] != fp1["a.example.com"] {
		t.Fatalf("a: account %q fingerprint %s, want the default account and %s", acc["a.example.com"], fp3["a.example.com"], fp1["a.example.com"])
	}

	// Bad account names: reported with line and field; with --skip-invalid
	// the rest goes on, and the skipped line's row is left as it was.
	res, err = imp(HeaderWithAccount, "b.example.com,https://h.example.com/b,false,,,Tenant-C\n"+
		"c.example.com,https://h.example.com/c,false,,,default\n"+
		"d.example.com,https://h.example.com/d,false,,,tenant-d\n", Options{})
	if !errors.Is(err, ErrBadLines) || res.Bad != 2 || len(res.BadLines) != 2 {
		t.Fatalf("bad accounts = %+v, %v", res, err)
	}
	for i, line := range []int64{2, 3} {
		if b := res.BadLines[i]; b.Line != line || b.Field != AccountColumn || b.Column != 6 {
			t.Errorf("bad line %d = %+v", i, b)
		}
	}
	res, err = imp(HeaderWithAccount, "b.example.com,https://h.example.com/b,false,,,Tenant-C\n"+
		"d.example.com,https://h.example.com/d,false,,,tenant-d\n", Options{SkipInvalid: true, Replace: true})
	if err != nil || res.Inserted != 1 || res.Skipped != 1 || res.Deleted != 2 {
		t.Fatalf("skip-invalid = %+v, %v", res, err)
	}
	acc, _ = accountsOf(t, tdb.Pool)
	if !reflect.DeepEqual(acc, map[string]string{"b.example.com": "tenant-c", "d.example.com": "tenant-d"}) {
		t.Fatalf("accounts after skip-invalid replace = %v", acc)
	}
}
