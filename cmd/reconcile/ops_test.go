package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reconcile/reconcile/internal/app"
	"github.com/reconcile/reconcile/internal/importer"
	"github.com/reconcile/reconcile/internal/testdb"
)

func TestParseWithArgs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		pos     []string
		replace bool
		format  string
		usage   bool
	}{
		{name: "flags first", args: []string{"--replace", "--format", "json", "a.csv"}, pos: []string{"a.csv"}, replace: true, format: "json"},
		{name: "flags after", args: []string{"a.csv", "--replace", "--format=json"}, pos: []string{"a.csv"}, replace: true, format: "json"},
		{name: "stdin", args: []string{"-", "--replace"}, pos: []string{"-"}, replace: true, format: "table"},
		{name: "two files", args: []string{"a.csv", "b.csv"}, pos: []string{"a.csv", "b.csv"}, format: "table"},
		{name: "after --", args: []string{"--", "--replace"}, pos: []string{"--replace"}, format: "table"},
		{name: "environment", args: []string{"a.csv"}, env: map[string]string{"RECONCILE_REPLACE": "true", "RECONCILE_FORMAT": "json"},
			pos: []string{"a.csv"}, replace: true, format: "json"},
		{name: "flag wins over environment", args: []string{"a.csv", "--format", "table"}, env: map[string]string{"RECONCILE_FORMAT": "json"},
			pos: []string{"a.csv"}, format: "table"},
		{name: "unknown flag", args: []string{"a.csv", "--nope"}, usage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("import", flag.ContinueOnError)
			replace := fs.Bool("replace", false, "")
			format := fs.String("format", "table", "")
			var stderr bytes.Buffer
			pos, err := parseWithArgs(fs, tc.args, app.Env{Stderr: &stderr}, "usage")
			if tc.usage {
				if app.OpsExitCode(err) != 2 {
					t.Fatalf("parseWithArgs = %v, want a usage error", err)
				}
				return
			}
			if err != nil || !slices.Equal(pos, tc.pos) || *replace != tc.replace || *format != tc.format {
				t.Fatalf("parseWithArgs = %q, %v; replace %v format %q", pos, err, *replace, *format)
			}
		})
	}
}

func TestOpsFlags(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none") // never reached
	for _, tc := range []struct {
		args   []string
		want   int
		stderr string
	}{
		{[]string{"import"}, 2, "import takes one CSV file"},
		{[]string{"import", "a.csv", "b.csv"}, 2, "got 2 arguments"},
		{[]string{"import", "--format", "csv", "a.csv"}, 2, "--format must be table or json"},
		{[]string{"import", "-h"}, 0, "--skip-invalid"},
		{[]string{"plan", "--limit", "-1"}, 2, "--limit must be"},
		{[]string{"plan", "extra"}, 2, "unexpected argument"},
		{[]string{"plan", "-h"}, 0, "exit 0: nothing pending; 5:"},
		{[]string{"report", "--format", "xml"}, 2, "--format must be table, json or csv"},
		{[]string{"report", "--run", "x"}, 2, "-run"},
		{[]string{"report", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"history"}, 2, "history needs a subcommand: prune"},
		{[]string{"history", "trim"}, 2, "history needs a subcommand: prune"},
		{[]string{"history", "-h"}, 0, "usage: reconcile history prune"},
		{[]string{"history", "prune"}, 2, "needs --older-than"},
		{[]string{"history", "prune", "--older-than", "ninety days"}, 2, "--older-than"},
		{[]string{"history", "prune", "--older-than", "0"}, 2, "--older-than must be at least 1h"},
		{[]string{"history", "prune", "--older-than", "-90d"}, 2, "--older-than must be at least 1h"},
		{[]string{"history", "prune", "--older-than", "90"}, 2, "--older-than"},
		{[]string{"history", "prune", "--older-than", "10m"}, 2, "--older-than must be at least 1h"},
		{[]string{"history", "prune", "--older-than", "90d", "--batch-size", "0"}, 2, "--batch-size"},
		{[]string{"history", "prune", "--older-than", "90d", "extra"}, 2, "unexpected argument"},
		{[]string{"history", "prune", "-h"}, 0, "--older-than"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if out := stdout.String() + stderr.String(); code != tc.want || !strings.Contains(out, tc.stderr) { // help is on stdout
			t.Errorf("reconcile %s: exit %d, want %d; output %q lacks %q", strings.Join(tc.args, " "), code, tc.want, out, tc.stderr)
		}
	}
}

// The built binary: exit codes and outputs of import, plan and report.
func TestOpsBinary(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	dir := t.TempDir()
	const key = "BinaryImportKey0123456789"
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(importer.Header+"\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("good.csv", "a.bin.example.com,https://h.example.com/a,true,"+key+",\nb.bin.example.com,https://h.example.com/b,false,,\n")
	bad := file("bad.csv", "c.bin.example.com,https://h.example.com/c,perhaps,"+key+",\n")
	exe := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.CommandContext(context.Background(), binPath, args...)
		cmd.Env = []string{"DATABASE_URL=" + tdb.URL, "PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("reconcile %v: %v", args, err)
		}
		if strings.Contains(stdout.String()+stderr.String(), key) {
			t.Fatalf("reconcile %v prints the auth key", args)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}

	if code, _, stderr := exe("", "import", bad); code != 1 || !strings.Contains(stderr, "line 2, column 3 (notify_req_auth)") ||
		!strings.Contains(stderr, "1 bad line(s); nothing was imported") {
		t.Fatalf("import of a bad file: exit %d\n%s", code, stderr)
	}
	if code, stdout, _ := exe("", "plan"); code != 0 || !strings.Contains(stdout, "0 desired rows") {
		t.Fatalf("plan of an empty table: exit %d\n%s", code, stdout)
	}
	if code, stdout, stderr := exe("", "import", good, "--format", "json"); code != 0 || !strings.Contains(stdout, `"inserted": 2`) {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	body, _ := os.ReadFile(good)
	if code, stdout, stderr := exe(string(body), "import", "-"); code != 0 || !strings.Contains(strings.Join(strings.Fields(stdout), " "), "unchanged 2") {
		t.Fatalf("import from stdin: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr := exe("", "plan", "--format", "json", "--limit", "1")
	var p struct {
		Pending int64
		Classes []struct {
			Class   string
			Count   int64
			Domains []struct{ Domain string }
		}
	}
	if code != app.ExitPlanPending || json.Unmarshal([]byte(stdout), &p) != nil || p.Pending != 2 ||
		p.Classes[0].Class != "add" || len(p.Classes[0].Domains) != 1 || stderr != "" {
		t.Fatalf("plan with pending rows: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := exe("", "report"); code != 1 || !strings.Contains(stderr, "run not found") {
		t.Fatalf("report without runs: exit %d\n%s", code, stderr)
	}

	// history prune: two runs, 100 and 1 days ago, over the same domain,
	// and one 100 days ago over another: only the superseded row goes.
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO reconcile_runs (started_at, finished_at, status, rate, concurrency, host_name, program_version)
		 VALUES (now() - interval '100 days', now() - interval '100 days', 'succeeded', 25, 4, 'h', 'v'),
		        (now() - interval '1 day', now() - interval '1 day', 'succeeded', 25, 4, 'h', 'v')`,
		`INSERT INTO reconcile_outcomes (run_id, domain_name, outcome, fingerprint, finished_at) VALUES
		 (1, 'a.bin.example.com', 'applied', 'f', now() - interval '100 days'),
		 (1, 'b.bin.example.com', 'applied', 'f', now() - interval '100 days'),
		 (2, 'a.bin.example.com', 'updated', 'g', now() - interval '1 day')`,
		`INSERT INTO reconcile_domain_state (domain_name, last_outcome_id, last_run_id, last_outcome, last_fingerprint, last_finished_at)
		 SELECT DISTINCT ON (domain_name) domain_name, id, run_id, outcome, fingerprint, finished_at
		 FROM reconcile_outcomes ORDER BY domain_name, id DESC`,
	} {
		if _, err := tdb.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{"deleted 1", "deleted 0"} {
		code, stdout, stderr := exe("", "history", "prune", "--older-than", "90d")
		if out := strings.Join(strings.Fields(stdout), " "); code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "kept_latest 1") {
			t.Fatalf("history prune #%d: exit %d, want 0 and %q, kept_latest 1\n%s\n%s", i+1, code, want, stdout, stderr)
		}
	}
	var outcomes, runs int
	if err := tdb.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM reconcile_outcomes), (SELECT count(*) FROM reconcile_runs)`).Scan(&outcomes, &runs); err != nil || outcomes != 2 || runs != 2 {
		t.Fatalf("after history prune: %d outcomes, %d runs (%v); want 2 and 2", outcomes, runs, err)
	}
	unmigrated := testdb.New(t, testdb.Unmigrated())
	cmd := exec.CommandContext(ctx, binPath, "history", "prune", "--older-than", "90d")
	cmd.Env = []string{"DATABASE_URL=" + unmigrated.URL, "PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "schema") {
		t.Fatalf("history prune without the schema: exit %d (%v), want 2\n%s", cmd.ProcessState.ExitCode(), err, out)
	}
}
