package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// The monitoring files shipped in deploy/ (see docs/operations.md, "Metrics").
const (
	alertRulesPath = "../../deploy/prometheus/reconcile-alerts.yml"
	ruleTestsPath  = "../../deploy/prometheus/reconcile-alerts.test.yml"
	dashboardPath  = "../../deploy/grafana/reconcile-dashboard.json"
)

var metricName = regexp.MustCompile(`\breconcile_[a-z0-9_]+\b`)

// pushedNames returns the names of every metric a run pushes (both groups).
func pushedNames(t *testing.T) map[string]bool {
	t.Helper()
	m := RunMetrics{RunID: 1, Status: StatusSucceeded, Outcomes: map[string]int64{"applied": 1}, Success: true,
		Duration: time.Second, Rate: 25, Finished: time.Unix(1, 0)}
	names := map[string]bool{}
	for _, reg := range []*prometheus.Registry{runRegistry(m), successRegistry(m)} {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			names[f.GetName()] = true
		}
	}
	return names
}

// TestDeployReferencesOnlyPushedMetrics: every metric name in the alert
// rules' expressions, in the rule tests' input series and in the Grafana
// dashboard's queries is one the job pushes. Renaming a metric in this
// package without updating deploy/ fails here (and the rule tests in
// deploy/prometheus fail when a rule and its test disagree).
func TestDeployReferencesOnlyPushedMetrics(t *testing.T) {
	t.Parallel()
	pushed := pushedNames(t)
	refs := map[string][]string{} // file → expressions
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	readYAML(t, alertRulesPath, &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			refs[alertRulesPath] = append(refs[alertRulesPath], r.Expr)
		}
	}
	var tests struct {
		Tests []struct {
			InputSeries []struct{ Series string } `yaml:"input_series"`
		}
	}
	readYAML(t, ruleTestsPath, &tests)
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			refs[ruleTestsPath] = append(refs[ruleTestsPath], s.Series)
		}
	}
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	walkExprs(dash, func(e string) { refs[dashboardPath] = append(refs[dashboardPath], e) })

	used := map[string]bool{}
	for file, exprs := range refs {
		if len(exprs) < 4 {
			t.Errorf("%s: only %d expressions found", file, len(exprs))
		}
		for _, e := range exprs {
			names := metricName.FindAllString(e, -1)
			if len(names) == 0 {
				t.Errorf("%s: %q names no reconcile metric", file, e)
			}
			for _, n := range names {
				used[n] = true
				if !pushed[n] {
					t.Errorf("%s: %q uses %s, which the job does not push (it pushes %v)", file, e, n, sortedKeys(pushed))
				}
			}
		}
	}
	// The alerts cover what the issue asks for: a failed run, no recent
	// success, throttling, failing rows.
	for _, n := range []string{NameStatus, NameLastSuccessTimestamp, NameThrottled, NameRows} {
		if !used[n] {
			t.Errorf("no alert or panel uses %s", n)
		}
	}
}

// walkExprs calls f with every "expr" string and every "query" string of a
// templating variable in a decoded Grafana dashboard.
func walkExprs(v any, f func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "expr" || k == "query" && metricName.MatchString(s)) {
				f(s)
				continue
			}
			walkExprs(val, f)
		}
	case []any:
		for _, val := range x {
			walkExprs(val, f)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestDeployIsPerAccount: every series carries an account label (Push
// groups by it), so every alert rule selects series with one (account!="":
// groups pushed before accounts have none and must not page) and every
// dashboard query follows the $account variable.
func TestDeployIsPerAccount(t *testing.T) {
	t.Parallel()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	readYAML(t, alertRulesPath, &rules)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if !strings.Contains(r.Expr, `account!=""`) {
				t.Errorf("alert %s: %q does not select account!=\"\"", r.Alert, r.Expr)
			}
		}
	}
	if n == 0 {
		t.Fatal("no alert rules")
	}
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct{ Name string }
		}
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	hasVar := false
	for _, v := range dash.Templating.List {
		hasVar = hasVar || v.Name == AccountLabel
	}
	if !hasVar {
		t.Errorf("%s: no %q variable", dashboardPath, AccountLabel)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, sel := range metricName.FindAllStringIndex(tg.Expr, -1) {
				rest := tg.Expr[sel[1]:]
				if !strings.HasPrefix(rest, "{") || !strings.Contains(rest[:strings.Index(rest, "}")+1], `account=~"$account"`) {
					t.Errorf("panel %q: %s in %q does not select account=~\"$account\"", p.Title, tg.Expr[sel[0]:sel[1]], tg.Expr)
				}
			}
		}
	}
}
