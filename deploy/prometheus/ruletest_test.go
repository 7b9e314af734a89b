// Package prometheus tests the alerting rules in this folder with
// Prometheus' own PromQL engine, rule file parser and template expander:
// it runs reconcile-alerts.test.yml, a file in promtool's rule-test format
// (`promtool test rules reconcile-alerts.test.yml` runs it too), without
// building promtool.
//
// It is a module of its own so that the Prometheus server module stays out
// of the job's go.mod: the job's build never sees it. scripts/test.sh runs
// it.
package prometheus

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/template"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"go.yaml.in/yaml/v3"
)

// The subset of promtool's rule-test file format that the tests use.
type testFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	Tests              []testGroup    `yaml:"tests"`
}

type testGroup struct {
	Name        string         `yaml:"name"`
	Interval    model.Duration `yaml:"interval"`
	InputSeries []struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	} `yaml:"input_series"`
	AlertRuleTests []struct {
		EvalTime  model.Duration `yaml:"eval_time"`
		Alertname string         `yaml:"alertname"`
		ExpAlerts []struct {
			ExpLabels      map[string]string `yaml:"exp_labels"`
			ExpAnnotations map[string]string `yaml:"exp_annotations"`
		} `yaml:"exp_alerts"`
	} `yaml:"alert_rule_test"`
}

const testFilePath = "reconcile-alerts.test.yml"

// TestAlertRules runs every test of reconcile-alerts.test.yml: for each
// alert_rule_test, the alert is evaluated at every evaluation_interval from
// 0 to eval_time, as Prometheus' rule manager would (an alert fires once its
// expression held for its `for` duration), and the firing alerts' labels and
// expanded annotations must be exactly the expected ones.
func TestAlertRules(t *testing.T) {
	var tf testFile
	readYAML(t, testFilePath, &tf)
	if len(tf.Tests) == 0 {
		t.Fatal("no tests")
	}
	p := parser.NewParser(parser.Options{})
	alerts := map[string]rulefmt.Rule{}
	for _, f := range tf.RuleFiles {
		groups, errs := rulefmt.ParseFile(filepath.Join(filepath.Dir(testFilePath), f), false,
			model.UTF8Validation, p, promslog.NewNopLogger())
		for _, err := range errs {
			t.Fatalf("rule file %s: %v", f, err)
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					alerts[r.Alert] = r
				}
			}
		}
	}
	tested := map[string]bool{}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: time.Minute,
		LookbackDelta: 5 * time.Minute, Parser: p})
	every := time.Duration(tf.EvaluationInterval)
	if every == 0 {
		every = time.Minute
	}
	for _, g := range tf.Tests {
		t.Run(g.Name, func(t *testing.T) {
			st := loadSeries(t, p, g)
			for _, at := range g.AlertRuleTests {
				rule, ok := alerts[at.Alertname]
				if !ok {
					t.Fatalf("no alert %q in %v", at.Alertname, tf.RuleFiles)
				}
				tested[at.Alertname] = true
				got := firing(t, engine, st, rule, time.Duration(at.EvalTime), every)
				var want []string
				for _, e := range at.ExpAlerts {
					l := maps.Clone(e.ExpLabels)
					if l == nil {
						l = map[string]string{}
					}
					l["alertname"] = at.Alertname
					want = append(want, describe(l, e.ExpAnnotations))
				}
				sort.Strings(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s at %v:\n got  %q\n want %q", at.Alertname, time.Duration(at.EvalTime), got, want)
				}
			}
		})
	}
	for name := range alerts {
		if !tested[name] {
			t.Errorf("alert %s has no alert_rule_test", name)
		}
	}
}

// firing evaluates rule at 0, every, 2*every, ... up to evalTime and returns
// the alerts firing at evalTime, each as describe() of its labels (rule
// labels over series labels, plus alertname) and annotations.
func firing(t *testing.T, engine *promql.Engine, st storage.Queryable, rule rulefmt.Rule, evalTime, every time.Duration) []string {
	t.Helper()
	ctx := context.Background()
	activeSince := map[string]time.Duration{} // series labels → first time the expression held
	var vec promql.Vector
	for ts := time.Duration(0); ts <= evalTime; ts += every {
		q, err := engine.NewInstantQuery(ctx, st, nil, rule.Expr, time.Unix(0, 0).Add(ts))
		if err != nil {
			t.Fatalf("%s: %v", rule.Alert, err)
		}
		res := q.Exec(ctx)
		if res.Err != nil {
			t.Fatalf("%s at %v: %v", rule.Alert, ts, res.Err)
		}
		vec, err = res.Vector()
		if err != nil {
			t.Fatalf("%s: %v", rule.Alert, err)
		}
		seen := map[string]bool{}
		for _, s := range vec {
			k := s.Metric.String()
			seen[k] = true
			if _, ok := activeSince[k]; !ok {
				activeSince[k] = ts
			}
		}
		for k := range activeSince {
			if !seen[k] {
				delete(activeSince, k)
			}
		}
		q.Close()
	}
	var out []string
	for _, s := range vec {
		if evalTime-activeSince[s.Metric.String()] < time.Duration(rule.For) {
			continue // pending
		}
		l := s.Metric.Map()
		delete(l, model.MetricNameLabel)
		maps.Copy(l, rule.Labels)
		l[model.AlertNameLabel] = rule.Alert
		ann := map[string]string{}
		for name, text := range rule.Annotations {
			ann[name] = expand(t, rule.Alert+"."+name, text, s.Metric.Map(), s.F, evalTime)
		}
		out = append(out, describe(l, ann))
	}
	sort.Strings(out)
	return out
}

// expand expands an annotation as Prometheus' rule manager does: the same
// $labels/$value preamble, the same template functions.
func expand(t *testing.T, name, text string, seriesLabels map[string]string, value float64, ts time.Duration) string {
	t.Helper()
	delete(seriesLabels, model.MetricNameLabel)
	defs := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	data := template.AlertTemplateData(seriesLabels, nil, "", promql.Sample{F: value})
	e := template.NewTemplateExpander(context.Background(), defs+text, "__alert_"+name, data,
		model.Time(ts.Milliseconds()), nil, nil, nil)
	s, err := e.Expand()
	if err != nil {
		t.Fatalf("annotation %s: %v", name, err)
	}
	return s
}

func describe(l, ann map[string]string) string {
	return fmt.Sprintf("%v %v", labels.FromMap(l), labels.FromMap(ann))
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// loadSeries turns a test's input_series (promtool's expanding notation,
// parsed by Prometheus' own parser) into an in-memory storage.
func loadSeries(t *testing.T, p parser.Parser, g testGroup) storage.Queryable {
	t.Helper()
	every := time.Duration(g.Interval)
	if every == 0 {
		every = time.Minute
	}
	var series []storage.Series
	for _, in := range g.InputSeries {
		lset, vals, err := p.ParseSeriesDesc(in.Series + " " + in.Values)
		if err != nil {
			t.Fatalf("input series %s: %v", in.Series, err)
		}
		var samples []chunks.Sample
		for i, v := range vals {
			if v.Omitted || v.Histogram != nil {
				continue
			}
			samples = append(samples, fSample{t: (time.Duration(i) * every).Milliseconds(), f: v.Value})
		}
		series = append(series, storage.NewListSeries(lset, samples))
	}
	sort.Slice(series, func(i, j int) bool { return labels.Compare(series[i].Labels(), series[j].Labels()) < 0 })
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
		next:
			for _, s := range series {
				for _, m := range ms {
					if !m.Matches(s.Labels().Get(m.Name)) {
						continue next
					}
				}
				out = append(out, s)
			}
			return &listSet{series: out, i: -1}
		},
	}}
}

// fSample is one float sample.
type fSample struct {
	t int64
	f float64
}

func (s fSample) T() int64                      { return s.t }
func (s fSample) ST() int64                     { return 0 }
func (s fSample) F() float64                    { return s.f }
func (s fSample) H() *histogram.Histogram       { return nil }
func (s fSample) FH() *histogram.FloatHistogram { return nil }
func (s fSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fSample) Copy() chunks.Sample           { return s }

// listSet is a storage.SeriesSet over a sorted slice.
type listSet struct {
	series []storage.Series
	i      int
}

func (l *listSet) Next() bool                        { l.i++; return l.i < len(l.series) }
func (l *listSet) At() storage.Series                { return l.series[l.i] }
func (l *listSet) Err() error                        { return nil }
func (l *listSet) Warnings() annotations.Annotations { return nil }
