package apply

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// budgetServer is a synthetic API limiter: it accepts a request arriving
// at t when fewer than limit requests are in (t-1s, t]; with countsRejected
// the rejected requests count too (a client that keeps exceeding the limit
// stays throttled), else only the accepted ones do.
type budgetServer struct {
	limit          int
	countsRejected bool
	win            []time.Time
}

// arrive returns whether the request is accepted, and the time until the
// window frees a slot when it is not.
func (s *budgetServer) arrive(t time.Time) (bool, time.Duration) {
	k := 0
	for k < len(s.win) && t.Sub(s.win[k]) >= time.Second {
		k++
	}
	s.win = s.win[k:]
	if len(s.win) >= s.limit {
		hint := s.win[len(s.win)-s.limit].Add(time.Second).Sub(t)
		if s.countsRejected {
			s.win = append(s.win, t)
		}
		return false, hint
	}
	s.win = append(s.win, t)
	return true, 0
}

// TestAdaptiveRateSharedBudget simulates, on a synthetic clock, a job at
// --rate 30 with 32 workers against an API that grants it only a budget of
// 10–25 calls per sliding second (someone else spends the rest), counting
// either only accepted or also rejected requests, with lognormal answer
// latencies (median 100 ms, p99 500 ms), with and without the server's
// retry hint. Over two minutes the adaptive rate must keep the throttled
// share at most 5% and use at least 85% of the budget (issue "Done is
// true", item 9).
func TestAdaptiveRateSharedBudget(t *testing.T) {
	for _, countsRejected := range []bool{false, true} {
		for _, budget := range []int{10, 15, 20, 25} {
			for _, hint := range []bool{false, true} {
				name := fmt.Sprintf("budget %d, rejected counted %v, hint %v", budget, countsRejected, hint)
				t.Run(name, func(t *testing.T) {
					accepted, throttled := simulateSharedBudget(t, budget, countsRejected, hint, 120*time.Second)
					total := accepted + throttled
					used := float64(accepted) / (120 * float64(budget))
					t.Logf("%d requests, %d throttled (%.1f%%), %.1f%% of the budget used",
						total, throttled, 100*float64(throttled)/float64(total), 100*used)
					if throttled*20 > total {
						t.Errorf("throttled %d of %d requests (> 5%%)", throttled, total)
					}
					if used < 0.85 {
						t.Errorf("used %.1f%% of the budget, want >= 85%%", 100*used)
					}
				})
			}
		}
	}
}

// simulateSharedBudget runs 32 backlogged workers through one adaptive Gate
// at rate 30 against a budgetServer for span of synthetic time, and returns
// the accepted and throttled requests.
func simulateSharedBudget(t *testing.T, budget int, countsRejected, withHint bool, span time.Duration) (accepted, throttled int) {
	t.Helper()
	const workers = 32
	rnd := rand.New(rand.NewPCG(uint64(budget), 7))
	sigma := math.Log(5) / 2.326 // p99 = 5 × median
	latency := func() time.Duration {
		return time.Duration(float64(100*time.Millisecond) * math.Exp(sigma*rnd.NormFloat64()))
	}
	g := NewGate(30, true, 0.5)
	backoff := NewBackoff(200*time.Millisecond, 10*time.Second, 1)
	srv := &budgetServer{limit: budget, countsRejected: countsRejected}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := t0.Add(span)
	type worker struct {
		at        time.Time
		phase     int // 0: reserve; 1: commit; 2: waiting for the answer
		tk        Ticket
		send      Send
		ok        bool
		hint      time.Duration
		throttles int // consecutive throttled answers of its row
	}
	ws := make([]worker, workers)
	for i := range ws {
		ws[i].at = t0
	}
	var arrivals []time.Time
	for {
		w := &ws[0]
		for i := range ws {
			if ws[i].at.Before(w.at) {
				w = &ws[i]
			}
		}
		now := w.at
		if !now.Before(end) {
			break
		}

		switch w.phase {
		case 0:
			w.tk = g.Reserve(now)
			w.at, w.phase = w.tk.At, 1
		case 1:
			d, s := g.Commit(now, &w.tk)
			if d > 0 {
				w.at = now.Add(d)
				break
			}
			g.Sent(s, now)
			arrivals = append(arrivals, now)
			w.send = s
			w.ok, w.hint = srv.arrive(now)
			if !withHint {
				w.hint = 0
			}
			w.at, w.phase = now.Add(latency()), 2
		case 2:
			g.Answered(now, false)
			w.phase = 0
			if w.ok {
				accepted++
				w.throttles = 0
				break
			}
			throttled++
			w.throttles++
			g.Throttled(now, w.send, w.hint)
			w.at = now.Add(max(w.hint, backoff.Delay(w.throttles)))
		}
	}
	if got, limit := maxInWindow(arrivals, time.Second), 30; got > limit {
		t.Errorf("%d requests in one second, want <= %d", got, limit)
	}
	return accepted, throttled
}
