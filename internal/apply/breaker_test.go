package apply

import (
	"testing"
	"time"
)

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
