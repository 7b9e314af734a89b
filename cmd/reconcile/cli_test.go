package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

// TestHelpAndUsageStreams: help that was asked for goes to stdout with
// exit 0, a usage error to stderr with exit 2 (stdout untouched); help and
// version work the ways people type them; verify refuses the flags of run
// it does not act on.
func TestHelpAndUsageStreams(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1") // never reached
	for _, tc := range []struct {
		args []string
		code int
		// out: substrings of stdout (code 0) or stderr (otherwise).
		out []string
	}{
		{[]string{"run", "-h"}, 0, []string{"usage: reconcile run", "--rate (env RECONCILE_RATE, default 25)"}},
		{[]string{"run", "--help"}, 0, []string{"usage: reconcile run", "--grace"}},
		{[]string{"help", "run"}, 0, []string{"usage: reconcile run", "--request-timeout"}},
		{[]string{"help", "verify"}, 0, []string{"usage: reconcile verify", "--rate"}},
		{[]string{"help", "history"}, 0, []string{"usage: reconcile history prune"}},
		{[]string{"help", "healthcheck"}, 0, []string{"usage: reconcile healthcheck", "--timeout"}},
		{[]string{"import", "-h"}, 0, []string{"--skip-invalid"}},
		{[]string{"history", "prune", "-h"}, 0, []string{"--older-than"}},
		{[]string{"help"}, 0, []string{"usage: reconcile <command>", "healthcheck"}},
		{[]string{"--help"}, 0, []string{"usage: reconcile <command>"}},
		{[]string{"--version"}, 0, []string{"reconcile ", "(revision "}},
		{[]string{"version"}, 0, []string{"reconcile ", "(revision "}},
		{[]string{"version", "extra"}, 2, []string{"unexpected argument"}},
		{nil, 2, []string{"usage: reconcile <command>"}},
		{[]string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{[]string{"help", "frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{[]string{"run", "-bogus"}, 2, []string{"unknown flag --bogus", `run "reconcile run -h" for its flags`}},
		{[]string{"plan", "--bogus"}, 2, []string{"unknown flag --bogus", `run "reconcile plan -h"`}},
		{[]string{"run", "--request-timeout", "10"}, 2, []string{`--request-timeout "10"`, "10s"}},
		{[]string{"verify", "--dry-run"}, 2, []string{"--dry-run: verify has no dry run"}},
		{[]string{"verify", "--prune"}, 2, []string{"--prune: verify never deletes"}},
		{[]string{"verify", "--no-fix-drift"}, 2, []string{"--no-fix-drift: verify always describes"}},
		{[]string{"healthcheck"}, 2, []string{"healthcheck takes one URL"}},
		{[]string{"healthcheck", "ftp://127.0.0.1/healthz"}, 2, []string{"scheme must be http or https"}},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		where, other := stdout.String(), stderr.String()
		if tc.code != 0 {
			where, other = other, where
		}
		if code != tc.code || other != "" {
			t.Errorf("reconcile %q: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, stdout.String(), stderr.String())
			continue
		}
		for _, s := range tc.out {
			if !strings.Contains(where, s) {
				t.Errorf("reconcile %q: output lacks %q:\n%s", tc.args, s, where)
			}
		}
	}
}

// TestBuildVersion: the version and revision come from the build info,
// and from the link-time stamps for what it does not know (a Docker build
// without .git); nothing known is "dev".
func TestBuildVersion(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name       string
		bi         *debug.BuildInfo
		stampV     string
		stampR     string
		want       string
		wantString string
	}{
		{"no build info", nil, "", "", "dev", "reconcile dev (revision unknown)"},
		{"devel, no stamps", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "", "",
			"dev", "reconcile dev (revision unknown; go1.26.8)"},
		{"module version and VCS", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20260101000000-0123456789ab+dirty"},
			Settings: vcs("0123456789abcdef", "true")}, "", "",
			"v0.0.0-20260101000000-0123456789ab+dirty", "reconcile v0.0.0-20260101000000-0123456789ab+dirty (revision 0123456789abcdef, modified; go1.26.8)"},
		{"Docker build: stamps only", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "v1.2.3", "fedcba9",
			"v1.2.3", "reconcile v1.2.3 (revision fedcba9; go1.26.8)"},
		{"VCS wins over stamps", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: vcs("aaaa", "false")}, "v9", "bbbb",
			"v1.4.0", "reconcile v1.4.0 (revision aaaa)"},
	} {
		v := buildVersion(tc.bi, tc.stampV, tc.stampR)
		if v.Version != tc.want || v.String() != tc.wantString {
			t.Errorf("%s: %q / %q, want %q / %q", tc.name, v.Version, v.String(), tc.want, tc.wantString)
		}
	}
}
