package apply

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff computes retry delays: exponential with full jitter (a uniform
// draw in [0, min(max, base·2^(attempt-1)))), from a seeded source. It is
// safe for concurrent use.
type Backoff struct {
	Base, Max time.Duration

	mu  sync.Mutex
	rnd *rand.Rand
}

// NewBackoff returns a Backoff drawing from a PCG source seeded with seed.
func NewBackoff(base, max time.Duration, seed uint64) *Backoff {
	return &Backoff{Base: base, Max: max, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Delay returns the delay before retry number attempt (1 = the first retry).
func (b *Backoff) Delay(attempt int) time.Duration {
	ceiling := b.Ceiling(attempt)
	if ceiling <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Duration(b.rnd.Int64N(int64(ceiling)))
}

// Ceiling returns the upper bound of Delay(attempt).
func (b *Backoff) Ceiling(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	c := b.Base
	for i := 1; i < attempt && c < b.Max; i++ {
		c *= 2
	}
	return min(c, b.Max)
}

// MaxThrottledAttempts bounds the throttled answers one request of a row may
// get in a run. Throttled answers do not count against --max-attempts (a
// throttled attempt is the job's fault while its adaptive rate comes down,
// not the row's), so this generous bound is what stops a row that stays
// throttled (a budget used up by someone else) from being retried forever:
// it then ends failed with the throttling code. With the backoff's ceilings (here by
// throttled answer: 200 ms doubling up to --backoff-max) and the Gate's
// pacing, 50 throttled answers take some minutes.
const MaxThrottledAttempts = 50
