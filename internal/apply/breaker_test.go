package apply

import (
	"slices"
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	t.Parallel()
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

// TestBreakerPauses: the Breaker judges full windows only, starts a fresh
// window after each trip, doubles its pause per consecutive trip up to
// BreakerMaxPause, and starts again from BreakerPause after a full window
// without a failure.
func TestBreakerPauses(t *testing.T) {
	t.Parallel()
	b := NewBreaker(0.5)
	// answers feeds n answers, the first fails of them failures, and
	// returns the pauses it reported, with the index of the answer each
	// came at.
	answers := func(n, fails int) (pauses []time.Duration, at []int) {
		for i := range n {
			if p := b.Answer(i < fails); p > 0 {
				pauses, at = append(pauses, p), append(at, i)
			}
		}
		return pauses, at
	}
	if p, _ := answers(BreakerWindow-1, BreakerWindow-1); len(p) != 0 {
		t.Fatalf("tripped before a full window of answers: %v", p)
	}
	want := []time.Duration{BreakerPause}
	if p, at := answers(1, 1); !slices.Equal(p, want) || at[0] != 0 {
		t.Fatalf("a full window of failures: pauses %v, want %v", p, want)
	}
	// Each trip needs a fresh full window: BreakerWindow failures per trip.
	var got []time.Duration
	for range 6 {
		p, at := answers(BreakerWindow, BreakerWindow)
		if len(p) != 1 || at[0] != BreakerWindow-1 {
			t.Fatalf("a window of failures after a trip: pauses %v at answers %v, want one at the last", p, at)
		}
		got = append(got, p[0])
	}
	want = []time.Duration{2 * BreakerPause, 4 * BreakerPause, 8 * BreakerPause, 16 * BreakerPause, BreakerMaxPause, BreakerMaxPause}
	if !slices.Equal(got, want) {
		t.Fatalf("consecutive trips paused %v, want %v", got, want)
	}
	// A full window without a failure: the next trip starts from
	// BreakerPause again.
	if p, _ := answers(BreakerWindow, 0); len(p) != 0 {
		t.Fatalf("a window of successes tripped: %v", p)
	}
	if p, _ := answers(BreakerWindow, BreakerWindow/2+1); !slices.Equal(p, []time.Duration{BreakerPause}) {
		t.Fatalf("a trip after a clean window paused %v, want %v", p, BreakerPause)
	}
	if got, want := b.Trips(), 8; got != want {
		t.Fatalf("Trips() = %d, want %d", got, want)
	}
}
