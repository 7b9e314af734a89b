package metrics

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// request is one request the fake Pushgateway received.
type request struct {
	Method, Path, ContentType string
	User, Password            string
	HasAuth                   bool
	Body                      string
}

// fakePGW stands in for a Pushgateway. It keeps groups with the
// Pushgateway's semantics: a group is identified by its complete grouping
// label set (job included); PUT replaces the whole group, POST replaces only
// the metric families it sends (keeping the others), DELETE removes the
// group. Bodies must be in the text exposition format.
type fakePGW struct {
	t      *testing.T
	mu     sync.Mutex
	reqs   []request
	groups map[string]group
	status int // answer; 0 means 200
	// failOn: requests whose path contains it are answered 500.
	failOn string
}

type group struct {
	labels   map[string]string
	families map[string]*dto.MetricFamily
}

func newFake(t *testing.T) (*fakePGW, *httptest.Server) {
	f := &fakePGW{t: t, groups: map[string]group{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// parseGroupingPath turns /metrics/job/<job>/<name>/<value>... into labels,
// decoding <name>@base64 values as the Pushgateway does.
func parseGroupingPath(p string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(p, "/metrics/")
	if !ok {
		return nil, fmt.Errorf("path %q does not start with /metrics/", p)
	}
	parts := strings.Split(rest, "/")
	if len(parts)%2 != 0 || len(parts) < 2 {
		return nil, fmt.Errorf("path %q: odd number of components", p)
	}
	labels := map[string]string{}
	for i := 0; i < len(parts); i += 2 {
		name, value := parts[i], parts[i+1]
		if n, ok := strings.CutSuffix(name, "@base64"); ok {
			if value == "=" {
				value = ""
			} else {
				b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "="))
				if err != nil {
					return nil, err
				}
				value = string(b)
			}
			name = n
		}
		labels[name] = value
	}
	if _, ok := labels["job"]; !ok || parts[0] != "job" && parts[0] != "job@base64" {
		return nil, fmt.Errorf("path %q: the first label must be job", p)
	}
	return labels, nil
}

func groupKey(labels map[string]string) string {
	var ks []string
	for k, v := range labels {
		ks = append(ks, k+"="+v)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func (f *fakePGW) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := request{Method: r.Method, Path: r.URL.EscapedPath(), ContentType: r.Header.Get("Content-Type"), Body: string(body)}
	req.User, req.Password, req.HasAuth = r.BasicAuth()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if f.status != 0 {
		http.Error(w, "pushed metrics are invalid or inconsistent with existing metrics", f.status)
		return
	}
	if f.failOn != "" && strings.Contains(req.Path, f.failOn) {
		http.Error(w, "storage failure", http.StatusInternalServerError)
		return
	}
	labels, err := parseGroupingPath(req.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key := groupKey(labels)
	switch r.Method {
	case http.MethodDelete:
		delete(f.groups, key)
		w.WriteHeader(http.StatusAccepted)
		return
	case http.MethodPut, http.MethodPost:
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !strings.HasPrefix(req.ContentType, "text/plain") {
		http.Error(w, "this fake only takes the text format, got "+req.ContentType, http.StatusUnsupportedMediaType)
		return
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, mf := range fams {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if _, clash := labels[l.GetName()]; clash {
					http.Error(w, "metric has a grouping label "+l.GetName(), http.StatusBadRequest)
					return
				}
			}
		}
	}
	g, ok := f.groups[key]
	if !ok || r.Method == http.MethodPut {
		g = group{labels: labels, families: map[string]*dto.MetricFamily{}}
	}
	for name, mf := range fams {
		g.families[name] = mf // POST: replaces the families it sends, keeps the others
	}
	f.groups[key] = g
	w.WriteHeader(http.StatusOK)
}

func (f *fakePGW) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// sample is one series as a scrape of the Pushgateway shows it: the metric's
// labels plus its group's grouping labels.
type sample struct {
	Labels map[string]string
	Value  float64
	Type   dto.MetricType
}

// scrape returns every series of name over all groups.
func (f *fakePGW) scrape(name string) []sample {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sample
	for _, g := range f.groups {
		mf, ok := g.families[name]
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for k, v := range g.labels {
				ls[k] = v
			}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			out = append(out, sample{Labels: ls, Value: m.GetGauge().GetValue(), Type: mf.GetType()})
		}
	}
	return out
}

// value returns the one series of name whose labels include want.
func (f *fakePGW) value(t *testing.T, name string, want map[string]string) (float64, bool) {
	t.Helper()
	var found []sample
	for _, s := range f.scrape(name) {
		match := true
		for k, v := range want {
			if s.Labels[k] != v {
				match = false
			}
		}
		if match {
			found = append(found, s)
		}
	}
	if len(found) > 1 {
		t.Fatalf("%s%v: %d series, want at most 1: %v", name, want, len(found), found)
	}
	if len(found) == 0 {
		return 0, false
	}
	if found[0].Type != dto.MetricType_GAUGE {
		t.Errorf("%s: type %v, want gauge", name, found[0].Type)
	}
	return found[0].Value, true
}

func (f *fakePGW) mustValue(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := f.value(t, name, want)
	if !ok {
		t.Fatalf("no series %s%v; groups: %v", name, want, f.groupKeys())
	}
	return v
}

func (f *fakePGW) groupKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks []string
	for k := range f.groups {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var (
	t1 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	t2 = t1.Add(time.Hour)
)

func succeededRun() RunMetrics {
	return RunMetrics{
		RunID: 41, Status: StatusSucceeded,
		Outcomes:         map[string]int64{"applied": 900, "already_exists": 80, "updated": 20, "legacy_outcome": 3},
		InvalidUnchanged: 0, Requests: 1100, Throttled: 50, Retries: 100, BreakerTrips: 1,
		Duration: 42500 * time.Millisecond, Rate: 25, Success: true, Finished: t1,
	}
}

func failedRun() RunMetrics {
	return RunMetrics{
		RunID: 42, Status: StatusFailed,
		Outcomes:         map[string]int64{"applied": 10, "failed": 7, "invalid": 2},
		InvalidUnchanged: 5, Requests: 300, Throttled: 120, Retries: 60,
		Duration: 90 * time.Second, Rate: 30, Success: false, Finished: t2,
	}
}

func TestPushSucceededRun(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	if err := Push(context.Background(), srv.URL, "", []RunMetrics{succeededRun()}); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2 (run group, success group): %+v", len(reqs), reqs)
	}
	// The groups: the path's label order is the client's (a group is a label set).
	wantGroups := []string{"account=default,job=reconcile", "account=default,job=reconcile,result=success"}
	for i, r := range reqs {
		if r.Method != http.MethodPut {
			t.Errorf("request %d: method %s, want PUT (replace the group)", i, r.Method)
		}
		if labels, err := parseGroupingPath(r.Path); err != nil || groupKey(labels) != wantGroups[i] {
			t.Errorf("request %d: path %s (%v), want the group %s", i, r.Path, err, wantGroups[i])
		}
		if !strings.HasPrefix(r.ContentType, "text/plain; version=0.0.4") {
			t.Errorf("request %d: content type %q, want the text exposition format", i, r.ContentType)
		}
		if r.HasAuth {
			t.Errorf("request %d: basic auth sent without credentials in the URL", i)
		}
	}

	// The run group, as text.
	body := reqs[0].Body
	for _, line := range []string{
		"# TYPE reconcile_rows gauge",
		`reconcile_rows{outcome="applied"} 900`,
		`reconcile_rows{outcome="already_exists"} 80`,
		`reconcile_rows{outcome="updated"} 20`,
		`reconcile_rows{outcome="invalid"} 0`,
		`reconcile_rows{outcome="failed"} 0`,
		`reconcile_rows{outcome="legacy_outcome"} 3`,
		"reconcile_invalid_unchanged_rows 0",
		"# TYPE reconcile_requests gauge",
		"reconcile_requests 1100",
		"reconcile_throttled_requests 50",
		"reconcile_retries 100",
		"reconcile_breaker_trips 1",
		"reconcile_run_duration_seconds 42.5",
		"reconcile_rate_limit_requests_per_second 25",
		"reconcile_run_id 41",
		"reconcile_run_success 1",
		`reconcile_run_status{status="succeeded"} 1`,
		`reconcile_run_status{status="failed"} 0`,
		`reconcile_run_status{status="interrupted"} 0`,
		fmt.Sprintf("reconcile_last_run_timestamp_seconds %s", fmtFloat(float64(t1.Unix()))),
	} {
		if !containsLine(body, line) {
			t.Errorf("run group body lacks line %q:\n%s", line, body)
		}
	}
	if strings.Contains(body, NameLastSuccessTimestamp) {
		t.Errorf("run group carries %s; it belongs to the success group only", NameLastSuccessTimestamp)
	}
	if strings.Contains(body, "job=") || strings.Contains(body, "instance=") || strings.Contains(body, "account=") {
		t.Errorf("run group metrics carry job/instance/account labels (the grouping key adds them):\n%s", body)
	}
	// The success group holds the success timestamp only.
	want := fmt.Sprintf("# HELP %s Unix time when the last run that left every desired row done ended.\n# TYPE %s gauge\n%s %s\n",
		NameLastSuccessTimestamp, NameLastSuccessTimestamp, NameLastSuccessTimestamp, fmtFloat(float64(t1.Unix())))
	if reqs[1].Body != want {
		t.Errorf("success group body:\n%s\nwant:\n%s", reqs[1].Body, want)
	}
	// As a scrape of the Pushgateway shows it.
	if v := f.mustValue(t, NameLastSuccessTimestamp, map[string]string{"job": "reconcile", "account": "default", "result": "success"}); v != float64(t1.Unix()) {
		t.Errorf("last success = %v, want %v", v, t1.Unix())
	}
}

func TestFailedRunKeepsLastSuccessAndDropsStaleSeries(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	ctx := context.Background()
	if err := Push(ctx, srv.URL, "reconcile", []RunMetrics{succeededRun()}); err != nil {
		t.Fatal(err)
	}
	if err := Push(ctx, srv.URL, "reconcile", []RunMetrics{failedRun()}); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("got %d requests, want 3 (the failed run pushes only its run group): %+v", len(reqs), reqs)
	}
	if r := reqs[2]; r.Method != http.MethodPut || !slices.Contains([]string{"/metrics/job/reconcile/account/default"}, r.Path) {
		t.Errorf("failed run: %s %s, want PUT /metrics/job/reconcile/account/default", r.Method, r.Path)
	}
	if strings.Contains(reqs[2].Body, NameLastSuccessTimestamp) {
		t.Errorf("failed run pushed %s", NameLastSuccessTimestamp)
	}

	// The last success survives: its group was not touched.
	if v := f.mustValue(t, NameLastSuccessTimestamp, nil); v != float64(t1.Unix()) {
		t.Errorf("last success after a failed run = %v, want the earlier success %v", v, t1.Unix())
	}
	// The rest describes the failed run.
	if v := f.mustValue(t, NameLastRunTimestamp, nil); v != float64(t2.Unix()) {
		t.Errorf("last run timestamp = %v, want %v", v, t2.Unix())
	}
	for status, want := range map[string]float64{"succeeded": 0, "failed": 1, "interrupted": 0} {
		if v := f.mustValue(t, NameStatus, map[string]string{"status": status}); v != want {
			t.Errorf("run status %s = %v, want %v", status, v, want)
		}
	}
	for outcome, want := range map[string]float64{"applied": 10, "already_exists": 0, "updated": 0, "invalid": 2, "failed": 7} {
		if v := f.mustValue(t, NameRows, map[string]string{"outcome": outcome}); v != want {
			t.Errorf("rows{outcome=%q} = %v, want %v", outcome, v, want)
		}
	}
	for name, want := range map[string]float64{NameRequests: 300, NameThrottled: 120, NameRetries: 60, NameSuccess: 0,
		NameInvalidUnchanged: 5, NameBreakerTrips: 0, NameDuration: 90, NameRunID: 42, NameRateLimit: 30} {
		if v := f.mustValue(t, name, nil); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	// PUT replaced the run group: the first run's extra outcome is gone.
	if _, ok := f.value(t, NameRows, map[string]string{"outcome": "legacy_outcome"}); ok {
		t.Errorf("a series of the earlier run survived the PUT")
	}

	// An interrupted run does not touch the success group either; a later
	// success moves it.
	in := failedRun()
	in.Status, in.Finished = StatusInterrupted, t2.Add(time.Minute)
	if err := Push(ctx, srv.URL, "reconcile", []RunMetrics{in}); err != nil {
		t.Fatal(err)
	}
	if v := f.mustValue(t, NameLastSuccessTimestamp, nil); v != float64(t1.Unix()) {
		t.Errorf("last success after an interrupted run = %v, want %v", v, t1.Unix())
	}
	ok := succeededRun()
	ok.Finished = t2.Add(2 * time.Hour)
	if err := Push(ctx, srv.URL, "reconcile", []RunMetrics{ok}); err != nil {
		t.Fatal(err)
	}
	if v := f.mustValue(t, NameLastSuccessTimestamp, nil); v != float64(ok.Finished.Unix()) {
		t.Errorf("last success after a new success = %v, want %v", v, ok.Finished.Unix())
	}
	if got := f.groupKeys(); !slices.Equal(got, []string{"account=default,job=reconcile", "account=default,job=reconcile,result=success"}) {
		t.Errorf("groups = %v", got)
	}
}

// A pass that completed but left rows invalid or failed is not a success.
func TestSucceededStatusWithRowsNotDoneIsNoSuccess(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	m := failedRun()
	m.Status = StatusSucceeded // the pass completed; Success is false
	if err := Push(context.Background(), srv.URL, "", []RunMetrics{m}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	if _, ok := f.value(t, NameLastSuccessTimestamp, nil); ok {
		t.Error("last success pushed for a run that left rows not done")
	}
	if v := f.mustValue(t, NameSuccess, nil); v != 0 {
		t.Errorf("run success = %v, want 0", v)
	}
	// And Success without the succeeded status (contradictory input) is none either.
	m = succeededRun()
	m.Status = StatusInterrupted
	if err := Push(context.Background(), srv.URL, "", []RunMetrics{m}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.value(t, NameLastSuccessTimestamp, nil); ok {
		t.Error("last success pushed for an interrupted run")
	}
}

// The fake models POST as the Pushgateway does; this is why Push uses
// separate groups rather than POST: a POST merges, so stale series stay.
func TestFakeModelsPostMerge(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	post := func(body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/metrics/job/x", strings.NewReader(body))
		req.Header.Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	post("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n")
	post("# TYPE a gauge\na 2\n")
	if v := f.mustValue(t, "a", nil); v != 2 {
		t.Errorf("a = %v, want 2", v)
	}
	if v := f.mustValue(t, "b", nil); v != 1 {
		t.Errorf("b = %v, want 1 (POST keeps families it does not send)", v)
	}
}

func TestPushTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a Pushgateway that never answers
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	start := time.Now()
	err := Push(context.Background(), srv.URL, "", []RunMetrics{succeededRun()}, Timeout(150*time.Millisecond))
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Push took %v with a 150ms timeout", el)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if !strings.Contains(err.Error(), "pushing run metrics") || !strings.Contains(err.Error(), "pushing last success timestamp") {
		t.Errorf("err = %v: both pushes should be reported", err)
	}

	// The caller's context bounds it too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = Push(ctx, srv.URL, "", []RunMetrics{failedRun()})
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Push took %v with a 100ms context", el)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}

	// Without options the bound is DefaultTimeout.
	if DefaultTimeout != 10*time.Second {
		t.Errorf("DefaultTimeout = %v, want 10s", DefaultTimeout)
	}
}

func TestPushNeverCarriesTheURLPassword(t *testing.T) {
	t.Parallel()
	const password = "s3cretPushPassw0rd"
	f, srv := newFake(t)
	u := strings.Replace(srv.URL, "http://", "http://pusher:"+password+"@", 1) + "/"
	if err := Push(context.Background(), u, "", []RunMetrics{succeededRun()}); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.requests() {
		if !r.HasAuth || r.User != "pusher" || r.Password != password {
			t.Errorf("%s %s: basic auth = %v %q, want the URL's credentials", r.Method, r.Path, r.HasAuth, r.User)
		}
		if strings.Contains(r.Path, password) || strings.Contains(r.Body, password) {
			t.Errorf("%s %s: the password is in the path or body", r.Method, r.Path)
		}
	}

	// An error answer: the error names the URL, without the password.
	f.status = http.StatusBadRequest
	err := Push(context.Background(), u, "", []RunMetrics{succeededRun()})
	if err == nil {
		t.Fatal("no error for a 400 answer")
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("error holds the password: %v", err)
	}
	if !strings.Contains(err.Error(), "400") {
		t.Errorf("error does not say what went wrong: %v", err)
	}

	// A connection error (nothing listens): same.
	srv.Close()
	err = Push(context.Background(), u, "", []RunMetrics{succeededRun()}, Timeout(2*time.Second))
	if err == nil || strings.Contains(err.Error(), password) {
		t.Errorf("connection error = %v (want one, without the password)", err)
	}

	if got := SafeURL("https://pusher:" + password + "@pgw.example.com:9091/prefix"); got != "https://pusher@pgw.example.com:9091/prefix" {
		t.Errorf("SafeURL = %q", got)
	}
}

func TestEmptyURLDisablesPushing(t *testing.T) {
	t.Parallel()
	if err := Push(context.Background(), "", "", []RunMetrics{succeededRun()}); err != nil {
		t.Errorf("Push with no URL = %v, want nil", err)
	}
	if err := ValidateURL(""); err != nil {
		t.Errorf("ValidateURL(\"\") = %v", err)
	}
}

func TestValidateURL(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"http://localhost:9091", "https://pgw.example.com", "http://u:p@pgw:9091/", "https://pgw.example.com/prefix"} {
		if err := ValidateURL(ok); err != nil {
			t.Errorf("ValidateURL(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"pgw:9091", "ftp://pgw", "http://", "http://pgw:9091/?x=1", "http://pgw#frag", "://x", "http://u:pw@:9091"} {
		err := ValidateURL(bad)
		if err == nil {
			t.Errorf("ValidateURL(%q) = nil, want an error", bad)
			continue
		}
		if strings.Contains(bad, "pw@") && strings.Contains(err.Error(), "pw@") {
			t.Errorf("ValidateURL error repeats the password: %v", err)
		}
	}
}

func TestGroupingAndPathPrefix(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	// A Pushgateway behind a proxy at /pgw: the path is a prefix.
	mux := http.NewServeMux()
	mux.Handle("/pgw/", http.StripPrefix("/pgw", f))
	prefixed := httptest.NewServer(mux)
	t.Cleanup(prefixed.Close)
	_ = srv

	err := Push(context.Background(), prefixed.URL+"/pgw", "video-reconcile", []RunMetrics{succeededRun()},
		Grouping("env", "prod"), Grouping("cluster", "eu/1"))
	if err != nil {
		t.Fatal(err)
	}
	got := f.groupKeys()
	want := []string{"account=default,cluster=eu/1,env=prod,job=video-reconcile", "account=default,cluster=eu/1,env=prod,job=video-reconcile,result=success"}
	if !slices.Equal(got, want) {
		t.Errorf("groups = %v, want %v", got, want)
	}
	for _, r := range f.requests() {
		if !strings.Contains(r.Path, "/cluster@base64/") {
			t.Errorf("path %s: a value with / must be base64-encoded", r.Path)
		}
	}

	for _, reserved := range []string{"job", "result", "account"} {
		if err := Push(context.Background(), srv.URL, "", []RunMetrics{succeededRun()}, Grouping(reserved, "x")); err == nil {
			t.Errorf("Grouping(%q) accepted", reserved)
		}
	}
}

func TestUnknownStatusAndZeroFinished(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	m := failedRun()
	m.Status, m.Finished = "", time.Time{}
	before := time.Now()
	if err := Push(context.Background(), srv.URL, "", []RunMetrics{m}); err != nil {
		t.Fatal(err)
	}
	if v := f.mustValue(t, NameStatus, map[string]string{"status": "unknown"}); v != 1 {
		t.Errorf("status unknown = %v", v)
	}
	v := f.mustValue(t, NameLastRunTimestamp, nil)
	if v < float64(before.Unix()) || v > float64(time.Now().Unix()+1) {
		t.Errorf("last run timestamp %v is not now", v)
	}
}

// The metrics follow Prometheus' naming conventions (promlint).
func TestMetricsPassPromlint(t *testing.T) {
	t.Parallel()
	for name, reg := range map[string]interface {
		Gather() ([]*dto.MetricFamily, error)
	}{"run": runRegistry(succeededRun()), "success": successRegistry(succeededRun())} {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s group: %s: %s", name, p.Metric, p.Text)
		}
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), "reconcile_") {
				t.Errorf("metric %s lacks the reconcile_ prefix", mf.GetName())
			}
		}
	}
}

func containsLine(body, line string) bool {
	return slices.Contains(strings.Split(body, "\n"), line)
}

// fmtFloat formats v as the text exposition format does.
func fmtFloat(v float64) string {
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	name, typ := "x", dto.MetricType_GAUGE
	_ = enc.Encode(&dto.MetricFamily{Name: &name, Type: &typ, Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}}})
	s := strings.TrimSpace(buf.String())
	return s[strings.LastIndex(s, " ")+1:]
}

// TestParseGrouping: --metrics-grouping's syntax and its refusals.
func TestParseGrouping(t *testing.T) {
	t.Parallel()
	got, err := ParseGrouping(" tenant = a , env=prod,instance=db/x")
	if err != nil || len(got) != 3 || got["tenant"] != "a" || got["env"] != "prod" || got["instance"] != "db/x" {
		t.Fatalf("ParseGrouping = %v, %v", got, err)
	}
	if got, err := ParseGrouping(""); got != nil || err != nil {
		t.Fatalf(`ParseGrouping("") = %v, %v; want nil, nil (the default)`, got, err)
	}
	for _, bad := range []string{"job=x", "result=success", "account=a", "env=prod, account = a", "instance", "1x=y", "__name__=y", "a=", "a=1,a=2", "a=1,", "a-b=1"} {
		if got, err := ParseGrouping(bad); err == nil {
			t.Errorf("ParseGrouping(%q) = %v, want an error", bad, got)
		}
	}
}

// accountRun is succeededRun (or failedRun) for account.
func accountRun(account string, ok bool, finished time.Time) RunMetrics {
	m := failedRun()
	if ok {
		m = succeededRun()
	}
	m.Account, m.Finished = account, finished
	return m
}

// Each account has its own groups: every series carries its account, one
// account failing leaves the others' last success as it was, and an account
// a run did not work is not touched at all.
func TestPushPerAccount(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	ctx := context.Background()
	first := []RunMetrics{accountRun("", true, t1), accountRun("tenant-a", false, t1), accountRun("tenant-b", true, t1)}
	first[1].Requests, first[2].Requests = 7, 9
	if err := Push(ctx, srv.URL, "", first, Grouping("instance", "video")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"account=default,instance=video,job=reconcile", "account=default,instance=video,job=reconcile,result=success",
		"account=tenant-a,instance=video,job=reconcile",
		"account=tenant-b,instance=video,job=reconcile", "account=tenant-b,instance=video,job=reconcile,result=success",
	}
	if got := f.groupKeys(); !slices.Equal(got, want) {
		t.Fatalf("groups = %v\nwant %v", got, want)
	}
	for _, r := range f.requests() {
		// The path's label order is the client's business: the groups above
		// are label sets.
		if r.Method != http.MethodPut || !strings.Contains(r.Path, "/account/") || !strings.Contains(r.Path, "/instance/video") {
			t.Errorf("%s %s: want PUT to a group with account and instance=video", r.Method, r.Path)
		}
	}
	// Every series of every metric carries its account.
	for _, name := range []string{NameRows, NameRequests, NameStatus, NameSuccess, NameRunID, NameLastRunTimestamp, NameLastSuccessTimestamp} {
		series := f.scrape(name)
		if len(series) == 0 {
			t.Errorf("no series %s", name)
		}
		for _, s := range series {
			if a := s.Labels["account"]; a != "default" && a != "tenant-a" && a != "tenant-b" {
				t.Errorf("%s%v: account %q", name, s.Labels, a)
			}
		}
	}
	for account, want := range map[string]float64{"default": 1100, "tenant-a": 7, "tenant-b": 9} {
		if v := f.mustValue(t, NameRequests, map[string]string{"account": account}); v != want {
			t.Errorf("requests of %s = %v, want %v", account, v, want)
		}
	}
	if _, ok := f.value(t, NameLastSuccessTimestamp, map[string]string{"account": "tenant-a"}); ok {
		t.Error("a last success pushed for the failed account")
	}

	// The next run works tenant-a (now a success) and tenant-b (failing);
	// the default account was not worked (another shard holds it).
	second := []RunMetrics{accountRun("tenant-a", true, t2), accountRun("tenant-b", false, t2)}
	second[0].RunID, second[1].RunID = 50, 50
	if err := Push(ctx, srv.URL, "", second, Grouping("instance", "video")); err != nil {
		t.Fatal(err)
	}
	for account, want := range map[string]time.Time{"default": t1, "tenant-a": t2, "tenant-b": t1} {
		if v := f.mustValue(t, NameLastSuccessTimestamp, map[string]string{"account": account}); v != float64(want.Unix()) {
			t.Errorf("last success of %s = %v, want %v", account, v, want.Unix())
		}
	}
	for account, want := range map[string]float64{"default": 41, "tenant-a": 50, "tenant-b": 50} {
		if v := f.mustValue(t, NameRunID, map[string]string{"account": account}); v != want {
			t.Errorf("run id of %s = %v, want %v", account, v, want)
		}
	}
	if v := f.mustValue(t, NameStatus, map[string]string{"account": "tenant-b", "status": "failed"}); v != 1 {
		t.Errorf("tenant-b failed = %v", v)
	}
	// PUT replaced tenant-b's run group: its first run's extra outcome is gone.
	if _, ok := f.value(t, NameRows, map[string]string{"account": "tenant-b", "outcome": "legacy_outcome"}); ok {
		t.Error("a series of tenant-b's earlier run survived")
	}
	if _, ok := f.value(t, NameRows, map[string]string{"account": "default", "outcome": "legacy_outcome"}); !ok {
		t.Error("the default account's series were touched by a run that did not work it")
	}
}

// A request that fails does not stop the other accounts' pushes; the error
// names the account.
func TestPushPerAccountPartialFailure(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	f.failOn = "/account/tenant-a"
	err := Push(context.Background(), srv.URL, "", []RunMetrics{accountRun("tenant-a", true, t1), accountRun("tenant-b", true, t1)})
	if err == nil || !strings.Contains(err.Error(), "account tenant-a") || strings.Contains(err.Error(), "account tenant-b") {
		t.Fatalf("err = %v, want tenant-a's two pushes reported", err)
	}
	if got := f.groupKeys(); !slices.Equal(got, []string{"account=tenant-b,job=reconcile", "account=tenant-b,job=reconcile,result=success"}) {
		t.Errorf("groups = %v", got)
	}
}

func TestPushRefusesRepeatedAccountsAndPushesNothingForNone(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	for _, ms := range [][]RunMetrics{
		{accountRun("a", true, t1), accountRun("a", false, t1)},
		{accountRun("", true, t1), accountRun("b", true, t1), accountRun("", false, t1)},
	} {
		if err := Push(context.Background(), srv.URL, "", ms); err == nil || !strings.Contains(err.Error(), "given twice") {
			t.Errorf("Push(%d metrics, one account twice) = %v", len(ms), err)
		}
	}
	if err := Push(context.Background(), srv.URL, "", nil); err != nil {
		t.Errorf("Push(nil) = %v", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}
