package app

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/livesim"
)

// TestCircuitBreakerPausesDispatch: when every answer is a 5xx, the run
// pauses dispatching after the breaker's window instead of hammering the
// API: the simulator's own log shows the pause, and the summary counts it.
func TestCircuitBreakerPausesDispatch(t *testing.T) {
	h := newHarness(t, livesim.Options{Faults: livesim.Faults{ServerError: 1}, Seed: 9})
	var rows []row
	for i := 0; i < 150; i++ {
		rows = append(rows, row{fmt.Sprintf("cb%03d.example.com", i), goodURL, false, nil, nil})
	}
	h.insert(rows...)
	c := h.config()
	c.MaxAttempts = 1
	err := h.run(c, testSecret)
	if ExitCode(err) != 1 {
		t.Fatalf("run = %v, want exit 1 (rows failed)", err)
	}
	if !strings.Contains(h.log.String(), "circuit breaker") || !strings.Contains(h.log.String(), `"breaker_trips":1`) {
		t.Fatalf("no breaker trip logged:\n%s", h.log.String())
	}
	// At 500/s requests are 2 ms apart; the breaker's first pause is a
	// second: the arrival log must show it after the first window (plus at
	// most the requests already in flight when it tripped).
	log := h.sim.Log()
	if len(log) != 150 {
		t.Fatalf("%d requests, want 150 (one attempt per row)", len(log))
	}
	var widest time.Duration
	at := 0
	for i := 1; i < len(log); i++ {
		if d := log[i].Time.Sub(log[i-1].Time); d > widest {
			widest, at = d, i
		}
	}
	if widest < apply.BreakerPause*3/4 || at < apply.BreakerWindow || at > apply.BreakerWindow+c.Concurrency {
		t.Fatalf("widest gap between requests %v at request %d; want a pause of about %v after %d requests",
			widest, at, apply.BreakerPause, apply.BreakerWindow)
	}
}
