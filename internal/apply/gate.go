package apply

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Pacing constants of the Gate.
const (
	// WindowMargin is added to the 1-second window that the Gate's guard
	// enforces, so that scheduling jitter between the moment a request is
	// released and the moment it reaches the server cannot squeeze one
	// request too many into a 1-second window as the server sees it.
	// The send time is taken at the wire (see Commit and Sent), so the
	// margin covers only the way to the server; 15 ms keeps a steady 30/s
	// at 98.5% of its rate (30 requests per 1.015 s).
	WindowMargin = 15 * time.Millisecond
	// AIMDDecrease multiplies the rate on a throttled answer.
	AIMDDecrease = 0.9
	// AIMDIncrease is how much the rate grows per second without throttling
	// (calls/s per second), up to the configured rate.
	AIMDIncrease = 0.5
	// AIMDCooldown is the least time between two cuts, so that one burst of
	// throttled answers (requests already in flight) counts once.
	AIMDCooldown = time.Second
	// MinAdaptiveRate is the floor of the adaptive rate, as a share of the
	// configured rate.
	MinAdaptiveRate = 0.05
	// BreakerWindow is how many recent answers the circuit breaker looks at.
	BreakerWindow = 100
	// BreakerPause is the first pause after the breaker trips; it doubles on
	// each consecutive trip up to BreakerMaxPause.
	BreakerPause    = time.Second
	BreakerMaxPause = 30 * time.Second
)

// Gate decides when the next request may be sent. It combines
//   - a token bucket (x/time/rate, burst 1) at the current rate, which spaces
//     requests evenly;
//   - a sliding-window guard remembering the send times of the last
//     floor(max rate) requests (recorded by Commit, when the caller is about
//     to send, not when it booked its slot, so a caller that woke up late
//     cannot squeeze the window): a request is never sent less than
//     1s+WindowMargin after the one that many sends before it, so no
//     1-second window holds more than the configured rate, whatever the
//     token bucket does while its rate changes;
//   - an optional AIMD controller (Throttled / Answered) that cuts the rate on
//     throttling and creeps back up, and a pause honouring the server's
//     retry hint;
//   - a circuit breaker that pauses dispatching when more than a threshold of
//     the last BreakerWindow answers were 5xx or connection failures.
//
// Every attempt, retries included, must pass through Reserve and then Commit.
// A Gate is safe
// for concurrent use; its methods take the current time as an argument so
// they can be tested with a synthetic clock.
type Gate struct {
	mu       sync.Mutex
	lim      *rate.Limiter
	max      float64
	cur      float64
	adaptive bool

	ring  []time.Time // send times of the last len(ring) requests
	head  int
	count int
	sends uint64 // sends committed so far; identifies ring slots for Sent

	lastCut     time.Time // last AIMD cut
	lastGrow    time.Time // last AIMD growth step (or cut)
	pausedUntil time.Time

	threshold   float64
	answers     []bool // ring of recent answers: true = failure
	ansHead     int
	ansCount    int
	failures    int
	breakerNext time.Duration
	trips       int
}

// NewGate returns a Gate releasing at most r requests per second. With
// adaptive, Throttled lowers the rate and quiet time raises it back to r.
// breakerThreshold in (0,1] is the failure share that trips the breaker.
func NewGate(r float64, adaptive bool, breakerThreshold float64) *Gate {
	n := int(math.Floor(r))
	if n < 1 {
		n = 1
	}
	return &Gate{
		lim:         rate.NewLimiter(bucketRate(r), 1),
		max:         r,
		cur:         r,
		adaptive:    adaptive,
		ring:        make([]time.Time, n),
		threshold:   breakerThreshold,
		answers:     make([]bool, BreakerWindow),
		breakerNext: BreakerPause,
	}
}

// Reserve books the next token-bucket slot at or after now and returns its
// time (not before the window guard could admit a send); the caller waits
// until then and calls Commit. A booked slot counts even if the caller then
// gives up, which only makes the Gate more conservative.
func (g *Gate) Reserve(now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.grow(now)
	at := now
	if g.pausedUntil.After(at) {
		at = g.pausedUntil
	}
	r := g.lim.ReserveN(at, 1)
	at = at.Add(r.DelayFrom(at))
	if earliest := g.windowOpensLocked(); earliest.After(at) {
		at = earliest
	}
	return at
}

// Send identifies one committed send, for Sent.
type Send uint64

// Commit is called when the caller is about to send (after waiting for its
// Reserve time). When the window allows a request at now and no pause is
// on, it records now as the send's time and returns (0, the send);
// otherwise it records nothing and returns how long to wait before calling
// Commit again.
func (g *Gate) Commit(now time.Time) (time.Duration, Send) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pausedUntil.After(now) {
		// A pause (retry hint, breaker) began after this caller reserved.
		return g.pausedUntil.Sub(now), 0
	}
	if earliest := g.windowOpensLocked(); earliest.After(now) {
		return earliest.Sub(now), 0
	}
	g.ring[g.head] = now
	g.head = (g.head + 1) % len(g.ring)
	if g.count < len(g.ring) {
		g.count++
	}
	g.sends++
	return 0, Send(g.sends)
}

// Sent records that send s actually left at t (the request was written to
// the connection), when that is later than its Commit time: a caller that
// stalled between Commit and the network then counts from when it really
// sent, so the requests after it cannot squeeze into its 1-second window. A
// send already out of the window's memory is ignored.
func (g *Gate) Sent(s Send, t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s == 0 || g.sends-uint64(s) >= uint64(len(g.ring)) {
		return
	}
	// The ring slot of send s: head is where send g.sends+1 will go.
	back := int(g.sends - uint64(s) + 1)
	i := (g.head - back + len(g.ring)) % len(g.ring)
	if t.After(g.ring[i]) {
		g.ring[i] = t
	}
}

// windowOpensLocked returns the earliest time the window admits another
// send (zero when it is not full).
func (g *Gate) windowOpensLocked() time.Time {
	if g.count < len(g.ring) {
		return time.Time{}
	}
	// The send len(ring) sends back, at its real time when Sent moved it.
	return g.ring[g.head].Add(time.Second + WindowMargin)
}

// Throttled records, at now, a throttled answer to a request sent at sent:
// with adaptive pacing it cuts the rate, once per throttling episode — not
// for requests sent before the last cut (they were paced by the old rate),
// and at most once per AIMDCooldown — and it pauses every release until
// now+retryAfter when the server gave a hint.
func (g *Gate) Throttled(now, sent time.Time, retryAfter time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if retryAfter > 0 {
		if until := now.Add(retryAfter); until.After(g.pausedUntil) {
			g.pausedUntil = until
		}
	}
	if !g.adaptive || !g.lastCut.IsZero() && (sent.Before(g.lastCut) || now.Sub(g.lastCut) < AIMDCooldown) {
		return
	}
	g.cur = math.Max(g.cur*AIMDDecrease, g.max*MinAdaptiveRate)
	g.lim.SetLimitAt(now, bucketRate(g.cur))
	g.lastCut, g.lastGrow = now, now
}

// grow raises the adaptive rate by AIMDIncrease per second since the last
// cut or growth step, in steps at least AIMDCooldown apart. Called with
// g.mu held (only after a cut: cur < max).
func (g *Gate) grow(now time.Time) {
	if !g.adaptive || g.cur >= g.max {
		return
	}
	elapsed := now.Sub(g.lastGrow)
	if elapsed < AIMDCooldown {
		return
	}
	g.cur = math.Min(g.max, g.cur+AIMDIncrease*elapsed.Seconds())
	g.lim.SetLimitAt(now, bucketRate(g.cur))
	g.lastGrow = now
}

// Answered records whether an answer at now was a transient failure (5xx,
// reset, timeout). When more than the threshold of the last BreakerWindow
// answers failed, the breaker trips: releases pause for a backoff that
// doubles per consecutive trip, and Answered reports the pause (0 otherwise).
func (g *Gate) Answered(now time.Time, failure bool) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ansCount == len(g.answers) && g.answers[g.ansHead] {
		g.failures--
	}
	g.answers[g.ansHead] = failure
	g.ansHead = (g.ansHead + 1) % len(g.answers)
	if g.ansCount < len(g.answers) {
		g.ansCount++
	}
	if failure {
		g.failures++
	}
	if g.ansCount < len(g.answers) {
		return 0
	}
	if float64(g.failures) <= g.threshold*float64(len(g.answers)) {
		if g.failures == 0 {
			g.breakerNext = BreakerPause
		}
		return 0
	}
	pause := g.breakerNext
	g.breakerNext = min(2*g.breakerNext, BreakerMaxPause)
	if until := now.Add(pause); until.After(g.pausedUntil) {
		g.pausedUntil = until
	}
	// Start a fresh window: the breaker judges the answers after the pause.
	g.ansCount, g.ansHead, g.failures = 0, 0, 0
	g.trips++
	return pause
}

// bucketRate is the token bucket's rate for a Gate rate r: the rate the
// window guard can sustain (r requests per 1 s + WindowMargin), so that
// requests are spaced evenly and the guard only catches what pacing alone
// would let through (after a change of rate, a late caller). A bucket at r
// itself would run ahead of the guard, and every request would then be
// turned back at the window and built again.
func bucketRate(r float64) rate.Limit {
	return rate.Limit(r * float64(time.Second) / float64(time.Second+WindowMargin))
}

// Rate returns the current rate (the configured one unless adaptive pacing
// lowered it).
func (g *Gate) Rate() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}

// Trips returns how many times the circuit breaker tripped.
func (g *Gate) Trips() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.trips
}
