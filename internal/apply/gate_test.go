package apply

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// maxInWindow returns the most times within any half-open window [t, t+w).
func maxInWindow(ts []time.Time, w time.Duration) int {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

func TestGateNeverExceedsRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		rate     float64
		adaptive bool
	}{
		{"30/s", 30, false},
		{"25/s", 25, false},
		{"1000/s", 1000, false},
		{"fractional 2.5/s", 2.5, false},
		{"adaptive 30/s", 30, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGate(tt.rate, tt.adaptive, 0.5)
			rnd := rand.New(rand.NewPCG(1, 2))
			now := t0
			var released []time.Time
			for i := 0; i < int(tt.rate)*20; i++ {
				// Callers arrive in bursts and pauses; some get throttled.
				if rnd.IntN(10) == 0 {
					now = now.Add(time.Duration(rnd.IntN(2000)) * time.Millisecond)
				}
				tk := g.Reserve(now)
				at := tk.At
				if at.Before(now) {
					t.Fatalf("Reserve(%v) = %v, before now", now, at)
				}
				// Some callers wake up late.
				if rnd.IntN(4) == 0 {
					at = at.Add(time.Duration(rnd.IntN(30)) * time.Millisecond)
				}
				d, s := g.Commit(at, &tk)
				for ; d > 0; d, s = g.Commit(at, &tk) {
					at = at.Add(d)
				}
				g.Sent(s, at)
				released = append(released, at)
				if tt.adaptive && rnd.IntN(20) == 0 {
					g.Throttled(at, s, 0)
				}
			}
			limit := int(tt.rate)
			if limit < 1 {
				limit = 1
			}
			if got := maxInWindow(released, time.Second); got > limit {
				t.Fatalf("max requests in a 1 s window = %d, want <= %d", got, limit)
			}
		})
	}
}

func TestGateSteadyRate(t *testing.T) {
	// Backlogged callers are released at (almost) the configured rate.
	g := NewGate(30, false, 0.5)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var first, last time.Time
	for i := 0; i < 1800; i++ {
		tk := g.Reserve(now)
		at := tk.At
		d, s := g.Commit(at, &tk)
		if d != 0 {
			t.Fatalf("Commit at the reserved time asks to wait %v", d)
		}
		g.Sent(s, at)
		if i == 0 {
			first = at
		}
		last = at
	}
	got := 1799 / last.Sub(first).Seconds()
	if got < 0.98*30 || got > 30 {
		t.Fatalf("steady rate = %.2f/s, want within [29.4, 30]", got)
	}
}

func TestGateAIMD(t *testing.T) {
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

func TestGateNotAdaptive(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(30, false, 0.5)
	g.Throttled(now, 0, 0)
	if got := g.Rate(); got != 30 {
		t.Fatalf("non-adaptive gate changed its rate to %v", got)
	}
}

func TestGateRetryAfterPauses(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(30, false, 0.5)
	g.Throttled(now, 0, 700*time.Millisecond)
	if at := g.Reserve(now).At; at.Before(now.Add(700 * time.Millisecond)) {
		t.Fatalf("released at %v, before the retry hint", at.Sub(now))
	}
}

func TestBreaker(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		failEvery int // every n-th answer fails; 0 = none
		wantTrip  bool
	}{
		{"healthy", 0, false},
		{"20% failures", 5, false},
		{"half fail (not above)", 2, false},
		{"all fail", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGate(30, false, 0.5)
			var pause time.Duration
			for i := 1; i <= BreakerWindow; i++ {
				fail := tt.failEvery > 0 && i%tt.failEvery == 0
				if p := g.Answered(now, fail); p > 0 {
					pause = p
				}
			}
			if (pause > 0) != tt.wantTrip {
				t.Fatalf("pause = %v, want trip %v", pause, tt.wantTrip)
			}
			if tt.wantTrip {
				if at := g.Reserve(now).At; at.Before(now.Add(pause)) {
					t.Fatalf("released %v after a trip, before the pause %v", at.Sub(now), pause)
				}
				// A second consecutive trip pauses twice as long.
				var second time.Duration
				for i := 0; i < BreakerWindow; i++ {
					if p := g.Answered(now, true); p > 0 {
						second = p
					}
				}
				if second != 2*pause {
					t.Fatalf("second pause = %v, want %v", second, 2*pause)
				}
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := NewBackoff(200*time.Millisecond, 5*time.Second, 42)
	for attempt, want := range map[int]time.Duration{1: 200 * time.Millisecond, 2: 400 * time.Millisecond,
		3: 800 * time.Millisecond, 6: 5 * time.Second, 30: 5 * time.Second} {
		if got := b.Ceiling(attempt); got != want {
			t.Errorf("Ceiling(%d) = %v, want %v", attempt, got, want)
		}
		for i := 0; i < 100; i++ {
			if d := b.Delay(attempt); d < 0 || d >= want {
				t.Fatalf("Delay(%d) = %v, outside [0, %v)", attempt, d, want)
			}
		}
	}
	// Same seed, same sequence.
	x, y := NewBackoff(time.Second, time.Minute, 7), NewBackoff(time.Second, time.Minute, 7)
	for i := 1; i < 10; i++ {
		if a, b := x.Delay(i), y.Delay(i); a != b {
			t.Fatalf("seeded backoffs differ: %v vs %v", a, b)
		}
	}
}

func TestGateOneCutPerEpisode(t *testing.T) {
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

// TestGatePendingSendHoldsTheWindow: a committed send counts in every
// window until Sent gives its time or Abort drops it.
func TestGatePendingSendHoldsTheWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(10, false, 0.5)
	var sends []Send
	for i := 0; i < 10; i++ {
		tk := g.Reserve(now)
		_, s := g.Commit(tk.At, &tk)
		sends = append(sends, s) // none written yet
	}
	at := now.Add(5 * time.Second) // long after any of them could have left the window
	tk := g.Reserve(at)
	if d, _ := g.Commit(at, &tk); d != PendingPoll {
		t.Fatalf("Commit with ten pending sends asks to wait %v, want %v", d, PendingPoll)
	}
	g.Abort(sends[1]) // its dial failed: it never reached the server
	d, s := g.Commit(at, &tk)
	if d != 0 {
		t.Fatalf("after an Abort, Commit asks to wait %v", d)
	}
	g.Sent(sends[0], at) // written at +5 s: it counts around then only
	tk = g.Reserve(at)
	if d, _ := g.Commit(at.Add(time.Millisecond), &tk); d != window-time.Millisecond {
		t.Fatalf("Commit asks to wait %v, want %v (until the send written at +5 s leaves the window)", d, window-time.Millisecond)
	}
	// Only the first report of a send counts; unknown sends are ignored.
	g.Sent(sends[0], at.Add(time.Hour))
	g.Abort(sends[0])
	g.Sent(Send(1<<40), at)
	g.Abort(Send(1 << 40))
	if d, _ := g.Commit(at.Add(time.Millisecond), &tk); d != window-time.Millisecond {
		t.Fatalf("after stale reports, Commit asks to wait %v, want %v", d, window-time.Millisecond)
	}
	_ = s
}

// TestGateStallIsNotTheBudget: a throttled answer to a request sent right
// after the job stalled (it sent 3 requests in the second before, at a rate
// of 30) measures the stall, not the budget: the rate is cut by
// AIMDDecrease, not to 3.
func TestGateStallIsNotTheBudget(t *testing.T) {
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
