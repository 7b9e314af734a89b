package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/reconcile/reconcile/internal/livesim"
)

// TestPushMetrics: a run pushes its metrics to the Pushgateway, the success
// timestamp only when every row is done, and never a secret.
func TestPushMetrics(t *testing.T) {
	var mu sync.Mutex
	pushed := map[string]string{} // path -> body
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		pushed[r.Method+" "+r.URL.Path] = string(body)
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
	mu.Lock()
	run, okRun := pushed["PUT /metrics/job/reconcile"]
	_, okSuccess := pushed["PUT /metrics/job/reconcile/result/success"]
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
	success := pushed["PUT /metrics/job/reconcile/result/success"]
	mu.Unlock()
	if !strings.Contains(success, "reconcile_last_success_timestamp_seconds") {
		t.Fatalf("no success timestamp pushed: %v", keys(pushed))
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
