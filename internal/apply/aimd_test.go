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
	t.Parallel()
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

func TestGateAIMD(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(30, true, 0.5)
	// A throttled answer to a send the Gate does not know: ×AIMDDecrease.
	g.Throttled(now, 0, 0)
	if got := g.Rate(); got != 30*AIMDDecrease {
		t.Fatalf("after one throttle: rate %v, want %v", got, 30*AIMDDecrease)
	}
	g.Throttled(now.Add(100*time.Millisecond), 0, 0) // within a window of the cut: the same episode
	if got := g.Rate(); got != 30*AIMDDecrease {
		t.Fatalf("throttle within the episode changed the rate to %v", got)
	}
	g.Throttled(now.Add(window), 0, 0)
	want := 30 * AIMDDecrease * AIMDDecrease
	if got := g.Rate(); got != want {
		t.Fatalf("after second throttle: rate %v, want %v", got, want)
	}
	// Quiet time: after AIMDCooldown it grows at ProbeIncrease, doubling
	// every ProbeDoubling, capped at AIMDIncrease and the max.
	last := now.Add(window)
	g.Reserve(last.Add(AIMDCooldown / 2)) // within the cooldown: no growth
	if got := g.Rate(); got != want {
		t.Fatalf("half a cooldown after the throttle: rate %v, want %v", got, want)
	}
	g.Reserve(last.Add(AIMDCooldown))
	g.Reserve(last.Add(3 * time.Second))
	grown := want + ProbeIncrease*math.Exp2(1/ProbeDoubling.Seconds())*1 + // the step at +1 s
		ProbeIncrease*math.Exp2(3/ProbeDoubling.Seconds())*2 // at +3 s, 2 s after the previous step
	if got := g.Rate(); math.Abs(got-grown) > 1e-9 {
		t.Fatalf("3 s after the throttle: rate %v, want %v", got, grown)
	}
	g.Reserve(now.Add(time.Hour))
	if got := g.Rate(); got != 30 {
		t.Fatalf("after an hour quiet: rate %v, want 30", got)
	}
	// The floor.
	for i := 0; i < 100; i++ {
		at := now.Add(time.Hour + time.Duration(i)*window)
		g.Throttled(at, 0, 0)
	}
	if got := g.Rate(); got != 30*MinAdaptiveRate {
		t.Fatalf("floor: rate %v, want %v", got, 30*MinAdaptiveRate)
	}
}

// TestGateCutToAcceptedRate: on a throttling episode the rate is set to
// the number of this job's requests in the second before the throttled one
// that were not throttled: the budget the server granted it.
func TestGateCutToAcceptedRate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(30, true, 0.5)
	var sends []Send
	at := now
	for i := 0; i < 40; i++ {
		tk := g.Reserve(at)
		at = tk.At
		d, s := g.Commit(at, &tk)
		if d != 0 {
			t.Fatalf("send %d: Commit asks to wait %v", i, d)
		}
		g.Sent(s, at)
		sends = append(sends, s)
	}
	// The server took 12 in a second: sends 12.. were throttled. The answer
	// to send 20 comes first: the answers to 12..19 are not in, so they
	// count as accepted (0..19 are in the second before it).
	g.Throttled(at, sends[20], 0)
	if got := g.Rate(); got != 20 {
		t.Fatalf("rate %v after the first throttled answer, want 20", got)
	}
	// The answers to the earlier throttled sends refine it: the second
	// before send 12 held 12 accepted requests.
	for _, s := range sends[12:20] {
		g.Throttled(at.Add(time.Millisecond), s, 0)
	}
	if got := g.Rate(); got != 12 {
		t.Fatalf("rate %v after the episode's earlier answers, want 12 (the accepted rate)", got)
	}
	// The other throttled answers of the episode do not cut again.
	for _, s := range sends[21:] {
		g.Throttled(at.Add(2*time.Millisecond), s, 0)
	}
	if got := g.Rate(); got != 12 {
		t.Fatalf("rate %v after the rest of the episode, want 12", got)
	}
}

func TestGateOneCutPerEpisode(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(30, true, 0.5)
	send := func(at time.Time) Send {
		tk := g.Reserve(at)
		d, s := g.Commit(tk.At, &tk)
		for ; d > 0; d, s = g.Commit(tk.At, &tk) {
			tk.At = tk.At.Add(d)
		}
		g.Sent(s, tk.At)
		return s
	}
	early := send(now)
	g.Throttled(now.Add(300*time.Millisecond), 0, 0) // cut at +300 ms
	// Two seconds later, an answer to a request sent before that cut (a
	// slow answer): the old rate's fault, already paid for.
	g.Throttled(now.Add(2*time.Second), early, 0)
	if got := g.Rate(); got != 30*AIMDDecrease {
		t.Fatalf("rate %v after a throttle of a request sent before the cut, want %v", got, 30*AIMDDecrease)
	}
	// Sent within a window after the cut: its server-side window still held
	// requests of the old rate.
	mid := send(now.Add(800 * time.Millisecond))
	g.Throttled(now.Add(2*time.Second), mid, 0)
	if got := g.Rate(); got != 30*AIMDDecrease {
		t.Fatalf("rate %v after a throttle of a request sent within a window of the cut, want %v", got, 30*AIMDDecrease)
	}
	// A request sent a window after the cut and throttled: a new episode.
	late := send(now.Add(1500 * time.Millisecond))
	g.Throttled(now.Add(2*time.Second), late, 0)
	if got := g.Rate(); got >= 30*AIMDDecrease {
		t.Fatalf("rate %v, want a cut below %v", got, 30*AIMDDecrease)
	}
}

// TestGateStallIsNotTheBudget: a throttled answer to a request sent right
// after the job stalled (it sent 3 requests in the second before, at a rate
// of 30) measures the stall, not the budget: the rate is cut by
// AIMDDecrease, not to 3.
func TestGateStallIsNotTheBudget(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(30, true, 0.5)
	at := now
	send := func() Send {
		tk := g.Reserve(at)
		if tk.At.After(at) {
			at = tk.At
		}
		d, s := g.Commit(at, &tk)
		if d != 0 {
			t.Fatalf("Commit asks to wait %v", d)
		}
		g.Sent(s, at)
		return s
	}
	for range 60 { // two seconds at the full rate
		send()
	}
	at = at.Add(1500 * time.Millisecond) // the process stalls
	var last Send
	for range 3 {
		last = send()
		at = at.Add(300 * time.Millisecond)
	}
	g.Throttled(at, last, 0)
	if got, want := g.Rate(), 30*AIMDDecrease; got != want {
		t.Fatalf("rate %v after a throttle that followed a stall, want %v (×AIMDDecrease)", got, want)
	}
}

// fakeHistory is a SendHistory with fixed answers.
type fakeHistory struct {
	all, accepted int
	first         time.Time
	covers        bool
}

func (h fakeHistory) Before(time.Time) (int, int)  { return h.all, h.accepted }
func (h fakeHistory) First() time.Time             { return h.first }
func (h fakeHistory) Covers(now, t time.Time) bool { return h.covers }

// TestAIMDCut: the first throttled answer cuts the rate to the accepted
// rate of the second before the throttled request when the history
// measures it (known send time, covered, the job pressing on the budget,
// below the current rate), else to the current rate × AIMDDecrease; never
// below the floor; and always reports the rate as set.
func TestAIMDCut(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sent, at := t0.Add(9900*time.Millisecond), t0.Add(10*time.Second)
	pressing := fakeHistory{all: 30, accepted: 12, covers: true}
	for _, tt := range []struct {
		name    string
		h       fakeHistory
		written bool
		want    float64
	}{
		{"measured", pressing, true, 12},
		{"send time unknown", pressing, false, 30 * AIMDDecrease},
		{"history forgot the second before", fakeHistory{all: 30, accepted: 12}, true, 30 * AIMDDecrease},
		{"not pressing (a stall)", fakeHistory{all: 3, accepted: 3, covers: true}, true, 30 * AIMDDecrease},
		{"accepted at the full rate", fakeHistory{all: 30, accepted: 30, covers: true}, true, 30 * AIMDDecrease},
		{"pressing since a recent first send", fakeHistory{all: 3, accepted: 2, first: sent.Add(-100 * time.Millisecond), covers: true}, true, 2},
		{"measured below the floor", fakeHistory{all: 30, covers: true}, true, 30 * MinAdaptiveRate},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := NewAIMD(30)
			ev := Throttle{At: at}
			if tt.written {
				ev.Sent, ev.Written = sent, true
			}
			if r, set := a.Throttled(ev, tt.h); r != tt.want || !set {
				t.Fatalf("Throttled = %v, %v; want %v, true", r, set, tt.want)
			}
			if r := a.Rate(at); r != tt.want {
				t.Fatalf("Rate right after the cut = %v, want %v", r, tt.want)
			}
		})
	}
	// At the floor a cut still reports the rate set (the Gate re-spaces).
	a := NewAIMD(30)
	floor := fakeHistory{all: 30, covers: true}
	a.Throttled(Throttle{At: at, Sent: sent, Written: true}, floor)
	next := at.Add(2 * window)
	if r, set := a.Throttled(Throttle{At: next, Sent: next.Add(-100 * time.Millisecond), Written: true}, floor); r != 30*MinAdaptiveRate || !set {
		t.Fatalf("a cut at the floor = %v, %v; want %v, true", r, set, 30*MinAdaptiveRate)
	}
}

// TestFixedRate: the policy of a Gate without adaptive pacing never
// changes its rate.
func TestFixedRate(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy(30, false)
	if r, set := p.Throttled(Throttle{}, fakeHistory{all: 30, covers: true}); r != 30 || set {
		t.Fatalf("Throttled = %v, %v; want 30, false", r, set)
	}
	if r := p.Rate(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); r != 30 {
		t.Fatalf("Rate = %v, want 30", r)
	}
}
