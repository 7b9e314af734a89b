package apply

import (
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
	t.Parallel()
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
	t.Parallel()
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

func TestGateNotAdaptive(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(30, false, 0.5)
	g.Throttled(now, 0, 0)
	if got := g.Rate(); got != 30 {
		t.Fatalf("non-adaptive gate changed its rate to %v", got)
	}
}

func TestGateRetryAfterPauses(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(30, false, 0.5)
	g.Throttled(now, 0, 700*time.Millisecond)
	if at := g.Reserve(now).At; at.Before(now.Add(700 * time.Millisecond)) {
		t.Fatalf("released at %v, before the retry hint", at.Sub(now))
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
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

// TestGatePendingSendHoldsTheWindow: a committed send counts in every
// window until Sent gives its time or Abort drops it.
func TestGatePendingSendHoldsTheWindow(t *testing.T) {
	t.Parallel()
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

// stubPolicy is a RatePolicy that answers with the rates it is given and
// records what the Gate tells it.
type stubPolicy struct {
	rate   float64 // what Rate returns
	cut    float64 // what Throttled returns; set when > 0
	events []Throttle
	before [][2]int // h.Before(ev.Sent + 1 ms) at each Throttled
}

func (p *stubPolicy) Rate(time.Time) float64 { return p.rate }

func (p *stubPolicy) Throttled(ev Throttle, h SendHistory) (float64, bool) {
	p.events = append(p.events, ev)
	all, accepted := h.Before(ev.Sent.Add(time.Millisecond))
	p.before = append(p.before, [2]int{all, accepted})
	return p.cut, p.cut > 0
}

// TestGateWiresItsPolicy: the Gate tells its policy each throttled answer
// with the send's written time and a history in which the send is already
// marked throttled; it puts a rate the policy sets in force at once,
// re-spacing the tickets booked before, and the rate Rate(now) returns at
// each Reserve.
func TestGateWiresItsPolicy(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &stubPolicy{rate: 10}
	g := NewGateOf(NewLimiter(10), p, NewBreaker(0.5))
	tk := g.Reserve(t0)
	_, s := g.Commit(tk.At, &tk)
	g.Sent(s, t0.Add(5*time.Millisecond))
	booked := g.Reserve(t0) // one interval at 10/s later

	p.cut = 4
	g.Throttled(t0.Add(100*time.Millisecond), s, 0)
	want := Throttle{At: t0.Add(100 * time.Millisecond), Sent: t0.Add(5 * time.Millisecond), Written: true}
	if len(p.events) != 1 || p.events[0] != want {
		t.Fatalf("the policy was told %+v, want [%+v]", p.events, want)
	}
	if p.before[0] != [2]int{1, 0} {
		t.Fatalf("the history showed (all, accepted) = %v around the throttled send, want [1 0] (marked throttled)", p.before[0])
	}
	if got := g.Rate(); got != 4 {
		t.Fatalf("Rate() = %v after the policy set 4", got)
	}
	if d, s := g.Commit(booked.At, &booked); d != intervalAt(4)-intervalAt(10) || s != 0 {
		t.Fatalf("Commit of a ticket booked before the cut = %v, %v; want to wait %v (re-booked at 4/s)", d, s, intervalAt(4)-intervalAt(10))
	}

	// A send the Gate does not know: no send time.
	p.cut = 0
	g.Throttled(t0.Add(200*time.Millisecond), 0, 0)
	if ev := p.events[1]; ev.Written || !ev.Sent.IsZero() {
		t.Fatalf("a throttled answer to no known send was told as %+v", ev)
	}
	if got := g.Rate(); got != 4 {
		t.Fatalf("Rate() = %v after the policy set nothing, want 4", got)
	}
	// The rate Rate(now) returns is in force from the next Reserve.
	p.rate = 7
	g.Reserve(t0.Add(time.Second))
	if got := g.Rate(); got != 7 {
		t.Fatalf("Rate() = %v after a Reserve with the policy at 7", got)
	}
}
