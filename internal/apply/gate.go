package apply

import (
	"math"
	"sync"
	"time"
)

// Pacing constants of the Gate.
const (
	// WindowMargin is added to the 1-second window that the Gate's guard
	// enforces, so that the way from the moment a request is reported
	// written (Sent) to the moment the server has read it cannot squeeze one
	// request too many into a 1-second window as the server sees it. 15 ms
	// keeps a steady 30/s at 98.5% of its rate (30 requests per 1.015 s).
	WindowMargin = 15 * time.Millisecond
	// PendingPoll is how long Commit asks a caller to wait when the window
	// is full of sends whose time is not known yet (committed, not yet
	// written): when one of them will be written, or given up, cannot be
	// predicted.
	PendingPoll = 10 * time.Millisecond
	// AIMDDecrease multiplies the rate on a throttling episode when the
	// accepted rate could not be measured (see Gate.Throttled).
	AIMDDecrease = 0.9
	// AIMDIncrease is the fastest the adaptive rate grows (calls/s per
	// second), up to the configured rate.
	AIMDIncrease = 0.5
	// ProbeIncrease is how fast the adaptive rate grows right after a
	// throttled answer (calls/s per second): the rate was just set to the
	// budget measured, so it probes above it slowly. The growth doubles
	// every ProbeDoubling without a throttled answer, up to AIMDIncrease, so
	// a budget that was freed is taken back within a minute or so.
	ProbeIncrease = 0.1
	ProbeDoubling = 10 * time.Second
	// AIMDCooldown is the least time between two growth steps, and the
	// quiet time after a throttled answer before the rate grows again.
	AIMDCooldown = time.Second
	// MinAdaptiveRate is the floor of the adaptive rate, as a share of the
	// configured rate.
	MinAdaptiveRate = 0.05
	// PressingShare: the accepted rate measured in the second before a
	// throttled request estimates the budget only when the job was sending
	// at PressingShare of its rate or more then. A job that sent less (a
	// stalled process, arrivals bunched by a stall on the way) measures its
	// own stall, not the budget; the rate is then cut by AIMDDecrease.
	PressingShare = 0.8
	// BreakerWindow is how many recent answers the circuit breaker looks at.
	BreakerWindow = 100
	// BreakerPause is the first pause after the breaker trips; it doubles on
	// each consecutive trip up to BreakerMaxPause.
	BreakerPause    = time.Second
	BreakerMaxPause = 30 * time.Second
)

// window is the length of the sliding window the guard enforces.
const window = time.Second + WindowMargin

// historySpan is how long the Gate remembers sends for the adaptive
// estimate: an answer can come this long (less one second) after its
// request and still be measured.
const historySpan = 5 * time.Second

// Gate decides when the next request may be sent. Its guarantee: as long as
// every request is announced by Commit before it is handed to the network
// and settled by Sent (when it was written) or Abort (when it never left),
// no 1-second window as the server sees arrivals holds more than
// floor(current rate) requests (at least 1), whatever the pauses and changes
// of rate. It combines
//   - spacing: one slot every (1 s + WindowMargin)/rate, booked by Reserve
//     (a token bucket with burst 1), so requests leave evenly;
//   - the window guard: a send is committed only while fewer than
//     floor(current rate) sends are in the last 1 s + WindowMargin, where a
//     committed send counts from its Commit until it is settled — in every
//     window, since its arrival time is not known until then (a request
//     whose dial or TLS handshake takes a second still holds its place) —
//     and afterwards at the time Sent gave it; an aborted send is dropped;
//   - re-spacing: a pause (the server's retry hint, the circuit breaker) or
//     an adaptive cut invalidates every reservation booked before it; such a
//     caller's Commit books a new slot at the then current rate, after the
//     pause, so the callers that waited do not all leave at the pause's end;
//   - an optional adaptive rate (Throttled): on a throttling episode the
//     rate is set to the rate the server accepted from this job over the
//     second before the throttled request (a direct estimate of the share of
//     the budget left to it; ×AIMDDecrease when that cannot be measured);
//     it then grows back slowly (ProbeIncrease, doubling every
//     ProbeDoubling, at most AIMDIncrease) up to the configured rate;
//   - a circuit breaker (Answered) that pauses dispatching when more than a
//     threshold of the last BreakerWindow answers were 5xx or connection
//     failures.
//
// Every attempt, retries included, must pass through Reserve and then
// Commit. A Gate is safe for concurrent use; its methods take the current
// time as an argument so they can be tested with a synthetic clock.
type Gate struct {
	mu       sync.Mutex
	max      float64
	cur      float64
	adaptive bool

	// Spacing: next is the earliest free slot; epoch numbers the schedule,
	// bumped by every pause and cut (a Ticket of an older epoch is re-booked).
	next        time.Time
	epoch       uint64
	lastCommit  time.Time
	pausedUntil time.Time

	sends sendLog

	// Adaptive rate.
	lastCut       time.Time // when the rate was last cut (zero: never)
	lastGrow      time.Time // last growth step
	lastThrottled time.Time // last throttled answer
	episodeSent   time.Time // send time of the throttled request that set the last cut
	episodeFrom   time.Time // the earliest send time of the last cut's episode
	cutFrom       float64   // the rate before the last cut
	firstSend     time.Time // the first Commit

	brk breaker
}

// NewGate returns a Gate releasing at most r requests per second. With
// adaptive, Throttled lowers the rate and quiet time raises it back to r.
// breakerThreshold in (0,1] is the failure share that trips the breaker.
func NewGate(r float64, adaptive bool, breakerThreshold float64) *Gate {
	return &Gate{
		max:      r,
		cur:      r,
		adaptive: adaptive,
		brk:      breaker{threshold: breakerThreshold, answers: make([]bool, BreakerWindow), next: BreakerPause},
	}
}

// Ticket is a slot booked by Reserve; pass it to Commit.
type Ticket struct {
	// At is when the caller may call Commit.
	At    time.Time
	epoch uint64
}

// Reserve books the next slot at or after now (after any pause) and returns
// it; the caller waits until t.At and calls Commit(now, &t). A booked slot
// counts even if the caller then gives up, which only makes the Gate more
// conservative.
func (g *Gate) Reserve(now time.Time) Ticket {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.grow(now)
	return g.reserveLocked(now)
}

func (g *Gate) reserveLocked(now time.Time) Ticket {
	at := now
	if g.pausedUntil.After(at) {
		at = g.pausedUntil
	}
	if g.next.After(at) {
		at = g.next
	}
	g.next = at.Add(g.interval())
	return Ticket{At: at, epoch: g.epoch}
}

// interval is the spacing of slots at the current rate: the rate the window
// guard can sustain (floor(rate) requests per 1 s + WindowMargin), so that
// requests are spaced evenly and the guard only catches what spacing alone
// would let through.
func (g *Gate) interval() time.Duration {
	return time.Duration(math.Ceil(float64(window) / g.cur))
}

// limit is the most sends the window may hold at the current rate.
func (g *Gate) limit() int {
	return max(1, int(math.Floor(g.cur)))
}

// Send identifies one committed send, for Sent, Abort and Throttled. The
// zero Send is no send.
type Send uint64

// Commit is called when the caller is about to hand its request to the
// network (after waiting until t.At). When t was booked before the latest
// pause or cut, it books a new slot into t and returns how long to wait for
// it. Otherwise, when the window admits a send at now, it counts a new send
// from now on and returns (0, the send), which the caller must settle with
// Sent or Abort; else it returns how long to wait before calling Commit
// again with the same t.
func (g *Gate) Commit(now time.Time, t *Ticket) (time.Duration, Send) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.epoch != g.epoch || g.pausedUntil.After(now) {
		*t = g.reserveLocked(now)
		if d := t.At.Sub(now); d > 0 {
			return d, 0
		}
	}
	if d := g.sends.wait(now, g.limit()); d > 0 {
		return d, 0
	}
	g.lastCommit = now
	if g.firstSend.IsZero() {
		g.firstSend = now
	}
	return 0, g.sends.commit(now)
}

// Sent records that send s was written to the connection at t (or, when that
// is not known, may have reached the server as late as t): from then on it
// counts in the windows around t only. Only the first Sent or Abort of a
// send counts; a send the Gate no longer remembers is ignored.
func (g *Gate) Sent(s Send, t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sends.settle(s, t, false)
}

// Abort records that send s never reached the server (no connection was
// obtained for it): it no longer counts in any window.
func (g *Gate) Abort(s Send) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sends.settle(s, time.Time{}, true)
}

// Throttled records, at now, a throttled answer to send s (0 when the send
// is not known) and pauses every release until now+retryAfter when the
// server gave a hint. With adaptive pacing it then lowers the rate once per
// throttling episode: a throttled request sent less than 1 s + WindowMargin
// after the last cut had in its server-side window requests paced by the
// old rate, so it says nothing about the new one and is ignored. The new
// rate is the number of this job's requests sent in the second before s
// and not known throttled — the share of the budget the server accepted
// from it — when s is remembered and that is below the current rate; else
// the current rate × AIMDDecrease. It never goes below MinAdaptiveRate of
// the configured rate. Reservations booked before a cut are re-booked at
// the new rate (see Commit).
func (g *Gate) Throttled(now time.Time, s Send, retryAfter time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if retryAfter > 0 {
		g.pauseLocked(now.Add(retryAfter))
	}
	sent, known := g.sends.markThrottled(s)
	if !g.adaptive {
		return
	}
	g.lastThrottled = now
	if !known {
		sent = now // the latest it can have been sent
	}
	measurable := known && now.Sub(sent) <= historySpan-time.Second
	if !g.lastCut.IsZero() && sent.Before(g.lastCut.Add(window)) {
		// Sent before the last cut took full effect: the old rate's fault,
		// already paid for — unless it was sent before the request that set
		// the cut, in the same episode: answers come out of order, and the
		// earliest throttled request of an episode is the one whose window
		// held only accepted requests, so it measures the budget best.
		if !measurable || !sent.Before(g.episodeSent) || sent.Before(g.episodeFrom) {
			return
		}
		if n, ok := g.budgetBefore(sent, g.cutFrom); ok && n < g.cur {
			g.setRateLocked(math.Max(n, g.max*MinAdaptiveRate))
			g.episodeSent = sent
		}
		return
	}
	next := g.cur * AIMDDecrease
	if measurable {
		if n, ok := g.budgetBefore(sent, g.cur); ok && n < g.cur {
			next = n
		} else if !ok {
			measurable = false // nothing to refine this episode with
		}
	}
	g.cutFrom = g.cur
	g.episodeFrom = g.lastCut.Add(window)
	if g.lastCut.IsZero() {
		g.episodeFrom = time.Time{}
	}
	g.episodeSent = time.Time{} // nothing to refine unless measured
	if measurable {
		g.episodeSent = sent
	}
	g.lastCut, g.lastGrow = now, now
	g.setRateLocked(math.Max(next, g.max*MinAdaptiveRate))
}

// budgetBefore estimates the budget left to this job from the second before
// sent: the number of its requests accepted then. ok is false when the job
// sent fewer than PressingShare of rate in that second (or in the part of
// it since its first send): it was not pressing on the budget, so what was
// accepted says nothing about it.
func (g *Gate) budgetBefore(sent time.Time, rate float64) (n float64, ok bool) {
	all, accepted := g.sends.before(sent)
	span := min(time.Second, sent.Sub(g.firstSend))
	return float64(accepted), float64(all) >= PressingShare*math.Floor(rate)*span.Seconds()
}

// setRateLocked lowers the rate to r and re-spaces: reservations booked at
// the old rate are booked again (see Commit).
func (g *Gate) setRateLocked(r float64) {
	g.cur = r
	g.epoch++
	g.next = g.lastCommit.Add(g.interval())
}

// pauseLocked pauses releases until until (unless a longer pause is on) and
// invalidates the reservations booked before.
func (g *Gate) pauseLocked(until time.Time) {
	if !until.After(g.pausedUntil) {
		return
	}
	g.pausedUntil = until
	g.epoch++
	g.next = until
}

// grow raises the adaptive rate by its growth speed times the time since
// the last growth step, in steps at least AIMDCooldown apart and not within
// AIMDCooldown of a throttled answer. Called with g.mu held.
func (g *Gate) grow(now time.Time) {
	if !g.adaptive || g.cur >= g.max {
		return
	}
	if now.Sub(g.lastGrow) < AIMDCooldown || now.Sub(g.lastThrottled) < AIMDCooldown {
		return
	}
	quiet := now.Sub(g.lastThrottled)
	speed := math.Min(AIMDIncrease, ProbeIncrease*math.Exp2(quiet.Seconds()/ProbeDoubling.Seconds()))
	g.cur = math.Min(g.max, g.cur+speed*now.Sub(g.lastGrow).Seconds())
	g.lastGrow = now
}

// Answered records whether an answer at now was a transient failure (5xx,
// reset, timeout). When more than the threshold of the last BreakerWindow
// answers failed, the breaker trips: releases pause for a backoff that
// doubles per consecutive trip (reservations booked before are re-booked
// after it, see Commit), and Answered reports the pause (0 otherwise).
func (g *Gate) Answered(now time.Time, failure bool) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	pause := g.brk.answer(failure)
	if pause > 0 {
		g.pauseLocked(now.Add(pause))
	}
	return pause
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
	return g.brk.trips
}

// breaker is the circuit breaker's state: a ring of the last answers.
type breaker struct {
	threshold float64
	answers   []bool // true = failure
	head      int
	count     int
	failures  int
	next      time.Duration // the next trip's pause
	trips     int
}

// answer records one answer and returns the pause when the breaker trips
// (0 otherwise).
func (b *breaker) answer(failure bool) time.Duration {
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
