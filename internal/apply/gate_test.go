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
				at := g.Reserve(now)
				if at.Before(now) {
					t.Fatalf("Reserve(%v) = %v, before now", now, at)
				}
				// Some callers wake up late.
				if rnd.IntN(4) == 0 {
					at = at.Add(time.Duration(rnd.IntN(30)) * time.Millisecond)
				}
				for d, _ := g.Commit(at); d > 0; d, _ = g.Commit(at) {
					at = at.Add(d)
				}
				released = append(released, at)
				if tt.adaptive && rnd.IntN(20) == 0 {
					g.Throttled(at, at, 0)
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
		at := g.Reserve(now)
		if d, _ := g.Commit(at); d != 0 {
			t.Fatalf("Commit at the reserved time asks to wait %v", d)
		}
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
	g.Throttled(now, now, 0)
	if got := g.Rate(); got != 30*AIMDDecrease {
		t.Fatalf("after one throttle: rate %v, want %v", got, 30*AIMDDecrease)
	}
	g.Throttled(now.Add(100*time.Millisecond), now.Add(100*time.Millisecond), 0) // within the cooldown: same burst
	if got := g.Rate(); got != 30*AIMDDecrease {
		t.Fatalf("throttle within cooldown changed the rate to %v", got)
	}
	g.Throttled(now.Add(AIMDCooldown), now.Add(AIMDCooldown), 0)
	want := 30 * AIMDDecrease * AIMDDecrease
	if got := g.Rate(); got != want {
		t.Fatalf("after second throttle: rate %v, want %v", got, want)
	}
	// Quiet time: grows by AIMDIncrease per second, capped at the max.
	g.Reserve(now.Add(AIMDCooldown + 2*time.Second))
	if got := g.Rate(); got < want+2*AIMDIncrease-1e-9 || got > want+2*AIMDIncrease+1e-9 {
		t.Fatalf("after 2 s quiet: rate %v, want %v", got, want+2*AIMDIncrease)
	}
	g.Reserve(now.Add(time.Hour))
	if got := g.Rate(); got != 30 {
		t.Fatalf("after an hour quiet: rate %v, want 30", got)
	}
	// The floor.
	for i := 0; i < 100; i++ {
		at := now.Add(time.Hour + time.Duration(i)*AIMDCooldown)
		g.Throttled(at, at, 0)
	}
	if got := g.Rate(); got != 30*MinAdaptiveRate {
		t.Fatalf("floor: rate %v, want %v", got, 30*MinAdaptiveRate)
	}
}

func TestGateNotAdaptive(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(30, false, 0.5)
	g.Throttled(now, now, 0)
	if got := g.Rate(); got != 30 {
		t.Fatalf("non-adaptive gate changed its rate to %v", got)
	}
}

func TestGateRetryAfterPauses(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(30, false, 0.5)
	g.Throttled(now, now, 700*time.Millisecond)
	if at := g.Reserve(now); at.Before(now.Add(700 * time.Millisecond)) {
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
				if at := g.Reserve(now); at.Before(now.Add(pause)) {
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
	g.Throttled(now, now.Add(-300*time.Millisecond), 0)
	// Two seconds later, an answer to a request sent before that cut (a
	// slow answer): the old rate's fault, already paid for.
	g.Throttled(now.Add(2*time.Second), now.Add(-100*time.Millisecond), 0)
	if got := g.Rate(); got != 30*AIMDDecrease {
		t.Fatalf("rate %v after a throttle of a request sent before the cut, want %v", got, 30*AIMDDecrease)
	}
	// A request sent after the cut and throttled: a new episode.
	g.Throttled(now.Add(2*time.Second), now.Add(1500*time.Millisecond), 0)
	if got, want := g.Rate(), 30*AIMDDecrease*AIMDDecrease; got != want {
		t.Fatalf("rate %v, want %v", got, want)
	}
}

func TestGateSentMovesTheWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(10, false, 0.5)
	var first Send
	for i := 0; i < 10; i++ {
		at := g.Reserve(now)
		_, s := g.Commit(at)
		if i == 0 {
			first = s
			// The first request stalled 50 ms between Commit and the wire.
			g.Sent(s, at.Add(50*time.Millisecond))
		}
	}
	at := g.Reserve(now)
	d, _ := g.Commit(at)
	if got, want := at.Add(d), now.Add(50*time.Millisecond+time.Second+WindowMargin); !got.Equal(want) {
		t.Fatalf("the 11th send may go at +%v, want +%v (1 s + margin after the first one really left)", got.Sub(now), want.Sub(now))
	}
	// A send that left the ring's memory is ignored.
	for i := 0; i < 20; i++ {
		at := g.Reserve(now.Add(time.Hour))
		for d, _ := g.Commit(at); d > 0; d, _ = g.Commit(at) {
			at = at.Add(d)
		}
	}
	g.Sent(first, now.Add(2*time.Hour)) // must not corrupt a newer slot
	at = g.Reserve(now.Add(3 * time.Hour))
	if d, _ := g.Commit(at); d != 0 {
		t.Fatalf("a stale Sent moved a newer send: wait %v", d)
	}
}
