package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/reconcile/reconcile/internal/livesim"
)

// TestPushMetrics: a run pushes its metrics to the Pushgateway, the success
// timestamp only when every row is done, and never a secret.
func TestPushMetrics(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	pushed := map[string]string{} // path -> body
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		pushed[r.Method+" "+groupOf(r.URL.Path)] = string(body)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()

	h := newHarness(t, livesim.Options{})
	h.insert(row{"m1.example.com", goodURL, true, "metricsKey12345678", nil}, row{"m2.example.com", "ftp://bad", false, nil, nil})
	c := h.config()
	c.PushgatewayURL = gw.URL
	if err := h.run(c, testSecret); ExitCode(err) != 1 {
		t.Fatalf("run = %v, want exit 1", err)
	}
	group := "account=default,instance=" + h.db.Name + ",job=reconcile" // the default grouping: the database name, per account
	mu.Lock()
	run, okRun := pushed["PUT "+group]
	_, okSuccess := pushed["PUT "+group+",result=success"]
	mu.Unlock()
	if !okRun || okSuccess {
		t.Fatalf("pushes %v: want the run group and no success group (a row is invalid)", keys(pushed))
	}
	for _, want := range []string{`reconcile_rows{outcome="applied"} 1`, `reconcile_rows{outcome="invalid"} 1`, "reconcile_requests 1"} {
		if !strings.Contains(run, want) {
			t.Errorf("pushed metrics lack %q:\n%s", want, run)
		}
	}
	for _, secret := range []string{testSecret, "metricsKey12345678"} {
		if strings.Contains(run, secret) {
			t.Fatalf("pushed metrics contain a secret")
		}
	}
	// Fix the row: the next run succeeds and pushes the success timestamp.
	h.exec(`UPDATE desired_snapshot_callbacks SET notify_url = $1 WHERE domain_name = 'm2.example.com'`, goodURL)
	if err := h.run(c, testSecret); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	success := pushed["PUT "+group+",result=success"]
	mu.Unlock()
	if !strings.Contains(success, "reconcile_last_success_timestamp_seconds") {
		t.Fatalf("no success timestamp pushed: %v", keys(pushed))
	}
}

// TestTwoDeploymentsPushToTwoGroups: two jobs on two databases sharing a
// Pushgateway keep separate groups (so separate last-success times) by
// default, and --metrics-grouping sets the labels instead.
func TestTwoDeploymentsPushToTwoGroups(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var paths []string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()
	a, b := newHarness(t, livesim.Options{}), newHarness(t, livesim.Options{})
	for _, h := range []*harness{a, b} {
		h.insert(row{"g.example.com", goodURL, false, nil, nil})
		c := h.config()
		c.PushgatewayURL = gw.URL
		if err := h.run(c, testSecret); err != nil {
			t.Fatal(err)
		}
	}
	c := b.config()
	c.PushgatewayURL, c.MetricsGrouping = gw.URL, "env=prod,tenant=b"
	if err := b.run(c, testSecret); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var groups []string
	for _, p := range paths {
		groups = append(groups, groupOf(strings.TrimPrefix(p, "PUT ")))
	}
	want := []string{
		"account=default,instance=" + a.db.Name + ",job=reconcile", "account=default,instance=" + a.db.Name + ",job=reconcile,result=success",
		"account=default,instance=" + b.db.Name + ",job=reconcile", "account=default,instance=" + b.db.Name + ",job=reconcile,result=success",
		"account=default,env=prod,job=reconcile,tenant=b", "account=default,env=prod,job=reconcile,result=success,tenant=b",
	}
	if !slices.Equal(groups, want) {
		t.Errorf("pushed groups:\n%s\nwant:\n%s", strings.Join(groups, "\n"), strings.Join(want, "\n"))
	}
}

// groupOf returns a Pushgateway path's group as its sorted label set
// ("instance=db,job=reconcile"): the order of labels in the path is the
// push client's choice.
func groupOf(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/metrics/"), "/")
	var labels []string
	for i := 0; i+1 < len(parts); i += 2 {
		labels = append(labels, parts[i]+"="+parts[i+1])
	}
	slices.Sort(labels)
	return strings.Join(labels, ",")
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
