package apply

import (
	"testing"
	"time"
)

// TestAdaptiveRateSharedBudget simulates, on a synthetic clock, a job at
// --rate 30 against an API that accepts only 18 calls per sliding second
// (another tool spends the rest), with 100 ms answers. The AIMD controller
// must settle below the budget: few throttled calls, most of the budget used.
func TestAdaptiveRateSharedBudget(t *testing.T) {
	for _, tt := range []struct {
		name       string
		retryAfter bool // the server sends a hint with each throttled answer
	}{{"no hint", false}, {"retry hint", true}} {
		t.Run(tt.name, func(t *testing.T) {
			const (
				limit   = 18
				latency = 100 * time.Millisecond
				calls   = 3000
			)
			g := NewGate(30, true, 0.5)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			now := t0
			var accepted []time.Time // accepted arrivals, for the server's window
			type answer struct {
				sent, at  time.Time
				throttled bool
				hint      time.Duration
			}
			var inflight []answer
			throttled, ok := 0, 0
			var last time.Time
			for sent := 0; ok < calls; sent++ {
				at := g.Reserve(now)
				// Deliver answers that arrive before this send.
				for len(inflight) > 0 && !inflight[0].at.After(at) {
					a := inflight[0]
					inflight = inflight[1:]
					if a.throttled {
						g.Throttled(a.at, a.sent, a.hint)
						at = g.Reserve(a.at) // re-book after the cut
					}
				}
				for d, _ := g.Commit(at); d > 0; d, _ = g.Commit(at) {
					at = at.Add(d)
				}
				now, last = at, at
				// The server: accept if fewer than limit accepted in (at-1s, at].
				n := 0
				for i := len(accepted) - 1; i >= 0 && at.Sub(accepted[i]) < time.Second; i-- {
					n++
				}
				a := answer{sent: at, at: at.Add(latency)}
				if n >= limit {
					throttled++
					a.throttled = true
					if tt.retryAfter {
						a.hint = accepted[len(accepted)-n].Add(time.Second).Sub(at)
					}
				} else {
					ok++
					accepted = append(accepted, at)
				}
				inflight = append(inflight, a)
			}
			total := ok + throttled
			achieved := float64(ok-1) / last.Sub(t0).Seconds()
			t.Logf("%d calls, %d throttled (%.1f%%), achieved %.2f/s of %d, final rate %.2f",
				total, throttled, 100*float64(throttled)/float64(total), achieved, limit, g.Rate())
			if float64(throttled) > 0.05*float64(total) {
				t.Errorf("throttled %d of %d calls (> 5%%)", throttled, total)
			}
			if achieved < 0.85*limit {
				t.Errorf("achieved %.2f calls/s, want >= %.2f (85%% of %d)", achieved, 0.85*limit, limit)
			}
		})
	}
}
