package apply

import "time"

// Constants of the Breaker.
const (
	// BreakerWindow is how many recent answers the circuit breaker looks at.
	BreakerWindow = 100
	// BreakerPause is the first pause after the breaker trips; it doubles on
	// each consecutive trip up to BreakerMaxPause.
	BreakerPause    = time.Second
	BreakerMaxPause = 30 * time.Second
)

// Breaker is the circuit breaker of a Gate: given answers, it says when to
// pause. It trips when, over a full window of the last BreakerWindow
// answers, more than threshold of them were failures (5xx, resets,
// timeouts); a trip starts a fresh window, so the next trip needs
// BreakerWindow new answers. The pause is BreakerPause, doubled on each
// trip up to BreakerMaxPause, and back to BreakerPause once a full window
// holds no failure. It only counts: it neither blocks nor keeps time (the
// Gate turns a pause into Limiter.Pause). Not safe for concurrent use: the
// Gate calls it under its mutex.
type Breaker struct {
	threshold float64
	answers   []bool // a ring of the last answers; true = failure
	head      int
	count     int
	failures  int
	next      time.Duration // the next trip's pause
	trips     int
}

// NewBreaker returns a Breaker tripping when more than threshold (in (0,1])
// of the last BreakerWindow answers failed.
func NewBreaker(threshold float64) *Breaker {
	return &Breaker{threshold: threshold, answers: make([]bool, BreakerWindow), next: BreakerPause}
}

// Answer records one answer and returns the pause when the breaker trips
// (0 otherwise).
func (b *Breaker) Answer(failure bool) time.Duration {
	if b.count == len(b.answers) && b.answers[b.head] {
		b.failures--
	}
	b.answers[b.head] = failure
	b.head = (b.head + 1) % len(b.answers)
	if b.count < len(b.answers) {
		b.count++
	}
	if failure {
		b.failures++
	}
	if b.count < len(b.answers) {
		return 0
	}
	if float64(b.failures) <= b.threshold*float64(len(b.answers)) {
		if b.failures == 0 {
			b.next = BreakerPause
		}
		return 0
	}
	pause := b.next
	b.next = min(2*b.next, BreakerMaxPause)
	// Start a fresh window: the breaker judges the answers after the pause.
	b.count, b.head, b.failures = 0, 0, 0
	b.trips++
	return pause
}

// Trips returns how many times the breaker tripped.
func (b *Breaker) Trips() int {
	return b.trips
}
