package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/importer"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/logging"
	"github.com/reconcile/reconcile/internal/plan"
	"github.com/reconcile/reconcile/internal/report"
	"github.com/reconcile/reconcile/internal/testdb"
)

const opsKey = "OpsImportKey0123456789" // an auth key in the test files

// opsEnv is an Env writing stdout and stderr to buffers.
func opsEnv() (Env, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	red := logging.NewRedactor()
	return Env{Stdout: &stdout, Stderr: &stderr, Redactor: red,
		Logger: logging.New(&stderr, logging.Options{Format: "json", Level: "info", Redactor: red})}, &stdout, &stderr
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "desired.csv")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpsConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"import ok", ImportConfig{File: "x.csv", Format: FormatTable}.Validate()},
		{"import no file", ImportConfig{Format: FormatTable}.Validate()},
		{"import csv format", ImportConfig{File: "x.csv", Format: FormatCSV}.Validate()},
		{"plan ok", PlanConfig{Limit: 10, Format: FormatJSON}.Validate()},
		{"plan negative limit", PlanConfig{Limit: -1, Format: FormatTable}.Validate()},
		{"plan csv", PlanConfig{Limit: 1, Format: FormatCSV}.Validate()},
		{"report ok", ReportConfig{Format: FormatCSV}.Validate()},
		{"report negative run", ReportConfig{RunID: -3, Format: FormatTable}.Validate()},
		{"report yaml", ReportConfig{Format: "yaml"}.Validate()},
	} {
		wantOK := strings.HasSuffix(tc.name, " ok")
		if wantOK != (tc.err == nil) || !wantOK && (!errors.Is(tc.err, config.ErrUsage) || OpsExitCode(tc.err) != 2) {
			t.Errorf("%s: %v (exit %d)", tc.name, tc.err, OpsExitCode(tc.err))
		}
	}
}

func TestOpsExitCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{ErrPlanPending, 5},
		{errors.Join(errors.New("x"), ErrPlanPending), 5},
		{importer.ErrBadLines, 1},
		{importer.ErrHeader, 1},
		{db.ErrRunNotFound, 1},
		{config.ErrUsage, 2},
		{ErrSchema, 2},
	} {
		if got := OpsExitCode(tc.err); got != tc.want {
			t.Errorf("OpsExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestOpsImport(t *testing.T) {
	t.Parallel()
	good := importer.Header + "\n" +
		"a.ops.example.com,https://hooks.example.com/a,false,,\n" +
		"b.ops.example.com,https://hooks.example.com/b,true," + opsKey + ",cn-beijing\n"
	bad := importer.Header + "\n" +
		"a.ops.example.com,https://hooks.example.com/a,false,,\n" +
		"b.ops.example.com,,true," + opsKey + ",\n" +
		"c.ops.example.com,https://hooks.example.com/c,true," + opsKey + "!,\n"
	tdb := testdb.New(t)
	ctx := context.Background()
	count := func() int {
		var n int
		if err := tdb.Pool.QueryRow(ctx, `SELECT count(*) FROM desired_snapshot_callbacks`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	for _, tc := range []struct {
		name       string
		c          ImportConfig
		wantExit   int
		wantRows   int
		stdout     []string
		stderr     []string
		jsonResult *importer.Result
	}{
		{
			name:     "bad lines stop the import",
			c:        ImportConfig{File: writeFile(t, bad), Format: FormatTable},
			wantExit: 1,
			stderr: []string{"line 3, column 2 (notify_url) of \"b.ops.example.com\": is empty",
				"line 4, column 4 (notify_auth_key) of \"c.ops.example.com\": must contain only letters and digits"},
		},
		{
			name:     "json result even when stopped",
			c:        ImportConfig{File: writeFile(t, bad), Format: FormatJSON},
			wantExit: 1,
			jsonResult: &importer.Result{Lines: 3, Bad: 2, BadLines: []importer.LineError{
				{Line: 3, Column: 2, Field: "notify_url", Domain: "b.ops.example.com", Reason: "is empty"},
				{Line: 4, Column: 4, Field: "notify_auth_key", Domain: "c.ops.example.com", Reason: "must contain only letters and digits"}}},
		},
		{
			name:     "skip invalid",
			c:        ImportConfig{File: writeFile(t, bad), SkipInvalid: true, Format: FormatTable},
			wantRows: 1,
			stdout:   []string{"inserted 1", "skipped 2"},
			stderr:   []string{"skipped 2 bad line(s)"},
		},
		{
			name:     "from stdin",
			c:        ImportConfig{File: "-", Stdin: strings.NewReader(good), Format: FormatTable},
			wantRows: 2,
			stdout:   []string{"lines 2", "inserted 1", "unchanged 1", "deleted 0"},
		},
		{
			name:       "again, as json",
			c:          ImportConfig{File: writeFile(t, good), Format: FormatJSON},
			wantRows:   2,
			jsonResult: &importer.Result{Lines: 2, Unchanged: 2, BadLines: []importer.LineError{}, Committed: true},
		},
		{
			name:     "missing file",
			c:        ImportConfig{File: filepath.Join(t.TempDir(), "nope.csv"), Format: FormatTable},
			wantExit: 1,
			wantRows: 2,
		},
		{
			name:     "no header",
			c:        ImportConfig{File: writeFile(t, "a.ops.example.com,https://hooks.example.com/a,false,,\n"), Format: FormatTable},
			wantExit: 1,
			wantRows: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, stdout, stderr := opsEnv()
			c := tc.c
			c.DatabaseURL = tdb.URL
			err := Import(ctx, c, env)
			if got := OpsExitCode(err); got != tc.wantExit {
				t.Fatalf("Import = %v (exit %d), want exit %d\nstderr: %s", err, got, tc.wantExit, stderr)
			}
			if n := count(); n != tc.wantRows {
				t.Errorf("%d desired rows, want %d", n, tc.wantRows)
			}
			out := strings.Join(strings.Fields(stdout.String()), " ")
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q: %s", w, stdout)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q: %s", w, stderr)
				}
			}
			if tc.jsonResult != nil {
				var got importer.Result
				if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
					t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
				}
				g, w := jsonString(got), jsonString(*tc.jsonResult)
				if g != w {
					t.Errorf("JSON result\n got %s\nwant %s", g, w)
				}
			}
			for _, text := range []string{stdout.String(), stderr.String(), errString(err)} {
				if strings.Contains(text, opsKey) {
					t.Fatalf("the auth key is printed: %s", text)
				}
			}
		})
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestOpsSchemaChecked(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t, testdb.Unmigrated())
	env, _, _ := opsEnv()
	ctx := context.Background()
	for name, err := range map[string]error{
		"import": Import(ctx, ImportConfig{DatabaseURL: tdb.URL, File: "-", Stdin: strings.NewReader(importer.Header + "\n"), Format: FormatTable}, env),
		"plan":   Plan(ctx, PlanConfig{DatabaseURL: tdb.URL, Format: FormatTable}, env),
		"report": Report(ctx, ReportConfig{DatabaseURL: tdb.URL, Format: FormatTable}, env),
	} {
		if !errors.Is(err, ErrSchema) || OpsExitCode(err) != 2 {
			t.Errorf("%s on an unmigrated database = %v (exit %d), want ErrSchema, exit 2", name, err, OpsExitCode(err))
		}
	}
}

// The three commands around a real run: import, plan (exit 5), run, plan
// (exit 0), report; and the report and the plan agree with the run.
func TestOpsAroundARun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{ForceErrors: map[string]livesim.ForcedError{
		"refused.ops.example.com": {Status: 400, Code: "InvalidParameter", Message: "refused by the test"},
	}})
	ctx := context.Background()
	var b strings.Builder
	b.WriteString(importer.Header + "\n")
	for _, d := range []string{"a", "b", "c", "refused"} {
		b.WriteString(d + ".ops.example.com,https://hooks.example.com/" + d + ",true," + opsKey + ",\n")
	}
	b.WriteString("bad.ops.example.com,http://hooks.example.com/bad x,false,,\n")
	env, stdout, stderr := opsEnv()
	if err := Import(ctx, ImportConfig{DatabaseURL: h.db.URL, File: writeFile(t, b.String()), Format: FormatTable, SkipInvalid: true}, env); err != nil {
		t.Fatalf("import: %v\n%s", err, stderr)
	}
	// The skipped line is not in the table; add it by hand, as a user might.
	h.exec(`INSERT INTO desired_snapshot_callbacks (domain_name, notify_url) VALUES ('bad.ops.example.com', 'ftp://x')`)

	plans := func() plan.Plan {
		t.Helper()
		env, stdout, stderr := opsEnv()
		err := Plan(ctx, PlanConfig{DatabaseURL: h.db.URL, Limit: 10, Format: FormatJSON}, env)
		var p plan.Plan
		if jerr := json.Unmarshal(stdout.Bytes(), &p); jerr != nil {
			t.Fatalf("plan output: %v\n%s\n%s", jerr, stdout, stderr)
		}
		if want := map[bool]int{true: 5, false: 0}[p.Pending > 0]; OpsExitCode(err) != want {
			t.Fatalf("plan = %v (exit %d) with %d pending, want exit %d", err, OpsExitCode(err), p.Pending, want)
		}
		return p
	}
	p := plans()
	if p.Class(plan.Add).Count != 4 || p.Class(plan.Invalid).Count != 1 || p.Pending != 5 || p.Calls != 4 {
		t.Fatalf("plan before the run: %s", jsonString(p))
	}

	if err := h.run(h.config(), testSecret); !errors.Is(err, ErrNotDone) {
		t.Fatalf("run: %v, want ErrNotDone\n%s", err, h.log.String())
	}
	p = plans()
	if p.Pending != 1 || p.Class(plan.RetryFailed).Count != 1 || p.Class(plan.Invalid).Count != 1 ||
		p.InvalidUnchanged != 1 || p.Class(plan.Done).Count != 3 {
		t.Fatalf("plan after the run: %s", jsonString(p))
	}
	if d := p.Class(plan.RetryFailed).Domains; len(d) != 1 || !strings.Contains(d[0].Detail, "InvalidParameter") {
		t.Errorf("retry-failed: %+v", d)
	}

	stdout.Reset()
	if err := Report(ctx, ReportConfig{DatabaseURL: h.db.URL, Format: FormatJSON}, env); err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report output: %v\n%s", err, stdout)
	}
	if r.Run.Status != db.RunSucceeded || r.Done != 3 || r.NotDone != 2 || r.Requests < 4 || len(r.Failures) != 2 {
		t.Fatalf("report: %s", jsonString(r))
	}
	codes := []string{r.Failures[0].ErrorCode, r.Failures[1].ErrorCode}
	if !strings.Contains(strings.Join(codes, " "), "InvalidParameter") || !strings.Contains(strings.Join(codes, " "), "Invalid.notify_url") {
		t.Errorf("failure codes %v", codes)
	}

	// Report of an unknown run: exit 1.
	if err := Report(ctx, ReportConfig{DatabaseURL: h.db.URL, RunID: 999, Format: FormatTable}, env); !errors.Is(err, db.ErrRunNotFound) || OpsExitCode(err) != 1 {
		t.Fatalf("report --run 999 = %v", err)
	}
	if strings.Contains(stdout.String()+stderr.String()+h.log.String(), opsKey) {
		t.Fatal("the auth key is printed")
	}
}
