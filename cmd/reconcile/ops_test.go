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
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.want || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("reconcile %s: exit %d, want %d; stderr %q lacks %q", strings.Join(tc.args, " "), code, tc.want, stderr.String(), tc.stderr)
		}
	}
}

// The built binary: exit codes and outputs of import, plan and report.
func TestOpsBinary(t *testing.T) {
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
}
