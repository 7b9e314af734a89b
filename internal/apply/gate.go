package apply

import (
	"sync"
	"time"
)

// Gate decides when the next request may be sent. It is the one rate
// limiter every request of a pass goes through, composed of three pieces,
// each with its own contract and file:
//   - a Limiter (limiter.go): spacing and the window guard at the wire — no
//     1-second window as the server sees arrivals holds more than
//     floor(current rate) requests (at least 1), whatever the pauses and
//     changes of rate;
//   - a RatePolicy (the default: aimd.go): given the throttled answers and
//     the send history, the current rate;
//   - a Breaker (breaker.go): given the answers, when to pause.
//
// The Gate adds only the wiring: every pause (the server's retry hint, a
// trip of the breaker) goes to the Limiter's Pause, and every rate the
// policy sets goes to the Limiter's SetRate, so a lowered rate re-spaces
// the callers that booked at the old one. NewGate is the job's default
// composition; NewGateOf composes other pieces.
//
// Its guarantee is the Limiter's: as long as every request is announced by
// Commit before it is handed to the network and settled by Sent (when it
// was written) or Abort (when it never left), no 1-second window as the
// server sees arrivals holds more than floor(current rate) requests.
// Every attempt, retries included, must pass through Reserve and then
// Commit. A Gate is safe for concurrent use: one mutex serializes its
// methods, so its pieces see one sequence of events; none of them blocks.
// They take the current time as an argument so they can be tested with a
// synthetic clock.
type Gate struct {
	mu     sync.Mutex
	lim    *Limiter
	policy RatePolicy
	brk    *Breaker
}

// RatePolicy decides the rate a Gate allows. The Gate calls it under its
// mutex (an implementation need not be safe for concurrent use) and puts
// every rate it returns in force at once (Limiter.SetRate).
type RatePolicy interface {
	// Rate returns the rate allowed at now. The Gate calls it on every
	// Reserve, with the time of the call; a policy may change the rate
	// with the time that passed (growth after quiet time).
	Rate(now time.Time) float64
	// Throttled records a throttled answer, with the history of the Gate's
	// sends up to it (the throttled send already marked throttled), and
	// returns the rate allowed from then on. set reports that the policy
	// set its rate anew: the Gate then passes it to Limiter.SetRate even
	// when it is unchanged, which re-spaces bookings unless it is a raise.
	Throttled(ev Throttle, h SendHistory) (rate float64, set bool)
}

// Throttle is one throttled answer, as a RatePolicy learns of it.
type Throttle struct {
	At time.Time // when the answer came
	// Sent is when the throttled request was written; it is set only when
	// Written: the Gate remembers the send and it was settled by Sent.
	Sent    time.Time
	Written bool
}

// FixedRate is the RatePolicy of a Gate without adaptive pacing: the rate
// never changes, whatever the answers.
type FixedRate float64

// Rate implements RatePolicy.
func (f FixedRate) Rate(time.Time) float64 { return float64(f) }

// Throttled implements RatePolicy: it never sets a rate.
func (f FixedRate) Throttled(Throttle, SendHistory) (float64, bool) { return float64(f), false }

// NewGate returns the job's Gate: a Limiter at r requests per second, the
// DefaultPolicy (with adaptive, throttled answers lower the rate and quiet
// time raises it back to r) and a Breaker tripping when more than
// breakerThreshold, in (0,1], of the last BreakerWindow answers failed.
func NewGate(r float64, adaptive bool, breakerThreshold float64) *Gate {
	return NewGateOf(NewLimiter(r), DefaultPolicy(r, adaptive), NewBreaker(breakerThreshold))
}

// NewGateOf returns a Gate composed of lim, policy and brk, which it owns
// from then on: they must not be used elsewhere.
func NewGateOf(lim *Limiter, policy RatePolicy, brk *Breaker) *Gate {
	return &Gate{lim: lim, policy: policy, brk: brk}
}

// Reserve books the next slot at or after now (after any pause), at the
// rate the policy allows at now, and returns it; the caller waits until
// t.At and calls Commit(now, &t). See Limiter.Reserve.
func (g *Gate) Reserve(now time.Time) Ticket {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.policy.Rate(now); r != g.lim.Rate() {
		g.lim.SetRate(r)
	}
	return g.lim.Reserve(now)
}

// Commit is called when the caller is about to hand its request to the
// network (after waiting until t.At). It returns (0, send) when the request
// may go now — the caller must then settle send with Sent or Abort — and
// otherwise how long to wait before calling Commit again with the same t
// (t may have been re-booked: a pause or a cut came after it). See
// Limiter.Commit.
func (g *Gate) Commit(now time.Time, t *Ticket) (time.Duration, Send) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lim.Commit(now, t)
}

// Sent records that send s was written to the connection at t (or, when that
// is not known, may have reached the server as late as t): from then on it
// counts in the windows around t only. Only the first Sent or Abort of a
// send counts; a send the Gate no longer remembers is ignored.
func (g *Gate) Sent(s Send, t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lim.Sent(s, t)
}

// Abort records that send s never reached the server (no connection was
// obtained for it): it no longer counts in any window.
func (g *Gate) Abort(s Send) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lim.Abort(s)
}

// Throttled records, at now, a throttled answer to send s (0 when the send
// is not known): it pauses every release until now+retryAfter when the
// server gave a hint, marks s throttled in the send history, and puts in
// force the rate the policy sets in answer (with the default adaptive
// policy, a cut once per throttling episode; see AIMD). Reservations
// booked before a pause or a cut are re-booked (see Commit).
func (g *Gate) Throttled(now time.Time, s Send, retryAfter time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if retryAfter > 0 {
		g.lim.Pause(now.Add(retryAfter))
	}
	ev := Throttle{At: now}
	if sent, written := g.lim.sends.markThrottled(s); written {
		ev.Sent, ev.Written = sent, true
	}
	if r, set := g.policy.Throttled(ev, &g.lim.sends); set {
		g.lim.SetRate(r)
	}
}

// Answered records whether an answer at now was a transient failure (5xx,
// reset, timeout). When the breaker trips, releases pause for its pause
// (reservations booked before are re-booked after it, see Commit), and
// Answered reports the pause (0 otherwise). See Breaker.
func (g *Gate) Answered(now time.Time, failure bool) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	pause := g.brk.Answer(failure)
	if pause > 0 {
		g.lim.Pause(now.Add(pause))
	}
	return pause
}

// Rate returns the rate in force (the configured one unless the policy
// lowered it).
func (g *Gate) Rate() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lim.Rate()
}

// Trips returns how many times the circuit breaker tripped.
func (g *Gate) Trips() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.brk.Trips()
}
