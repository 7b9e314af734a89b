package apply

import (
	"math"
	"time"
)

// Constants of the Limiter.
const (
	// WindowMargin is added to the 1-second window that the Limiter's guard
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
)

// window is the length of the sliding window the guard enforces.
const window = time.Second + WindowMargin

// Limiter is the part of a Gate that enforces a rate at the wire. Its
// guarantee: as long as every request is announced by Commit before it is
// handed to the network and settled by Sent (when it was written) or Abort
// (when it never left), no 1-second window as the server sees arrivals
// holds more than floor(rate) requests (at least 1), where rate is the one
// in force at each Commit — whatever the pauses and changes of rate. It has
// three parts:
//   - spacing: one slot every (1 s + WindowMargin)/rate, booked by Reserve
//     (a token bucket with burst 1), so requests leave evenly;
//   - the window guard (Commit): a send is committed only while fewer than
//     floor(rate) sends are in the last 1 s + WindowMargin, where a
//     committed send counts from its Commit until it is settled — in every
//     window, since its arrival time is not known until then (a request
//     whose dial or TLS handshake takes a second still holds its place) —
//     and afterwards at the time Sent gave it; an aborted send is dropped;
//   - re-spacing: a Pause, or a SetRate that does not raise the rate,
//     invalidates every Ticket booked before it; such a caller's Commit
//     books a new slot at the then current rate, after the pause, so the
//     callers that waited do not all leave at the pause's end.
//
// The window guard alone makes the guarantee; spacing only spreads the
// sends so that the guard rarely has to hold one back.
//
// A Limiter never blocks: Reserve and Commit say how long to wait, and
// every method takes the current time, so it runs on a synthetic clock as
// well as on the real one. It is not safe for concurrent use: the Gate
// calls it under its mutex.
type Limiter struct {
	rate float64

	// next is the earliest free slot; epoch numbers the schedule, bumped by
	// every pause and cut (a Ticket of an older epoch is re-booked).
	next        time.Time
	epoch       uint64
	lastCommit  time.Time
	pausedUntil time.Time

	// sends is the window guard's memory; it is also the send history the
	// Gate shows its RatePolicy.
	sends sendLog
}

// NewLimiter returns a Limiter allowing r requests per second (r > 0).
func NewLimiter(r float64) *Limiter {
	return &Limiter{rate: r}
}

// Ticket is a slot booked by Reserve; pass it to Commit.
type Ticket struct {
	// At is when the caller may call Commit.
	At    time.Time
	epoch uint64
}

// Send identifies one committed send, for Sent, Abort and Throttled. The
// zero Send is no send.
type Send uint64

// Reserve books the next slot at or after now (after any pause) and returns
// it; the caller waits until t.At and calls Commit(now, &t). Slots are
// handed out in the order of the calls, one interval apart. A booked slot
// counts even if the caller then gives up, which only makes the Limiter
// more conservative.
func (l *Limiter) Reserve(now time.Time) Ticket {
	at := now
	if l.pausedUntil.After(at) {
		at = l.pausedUntil
	}
	if l.next.After(at) {
		at = l.next
	}
	l.next = at.Add(l.interval())
	return Ticket{At: at, epoch: l.epoch}
}

// interval is the spacing of slots at the current rate: the rate the window
// guard can sustain (floor(rate) requests per 1 s + WindowMargin), so that
// requests are spaced evenly and the guard only catches what spacing alone
// would let through.
func (l *Limiter) interval() time.Duration {
	return time.Duration(math.Ceil(float64(window) / l.rate))
}

// limit is the most sends the window may hold at the current rate.
func (l *Limiter) limit() int {
	return max(1, int(math.Floor(l.rate)))
}

// Commit is called when the caller is about to hand its request to the
// network (after waiting until t.At). When t was booked before the latest
// pause or re-spacing, or a pause is on at now, it books a new slot into t
// and returns how long to wait for it. Otherwise, when the window admits a
// send at now, it counts a new send from now on and returns (0, the send),
// which the caller must settle with Sent or Abort; else it returns how long
// to wait before calling Commit again with the same t (PendingPoll when the
// window is full of unsettled sends).
func (l *Limiter) Commit(now time.Time, t *Ticket) (time.Duration, Send) {
	if t.epoch != l.epoch || l.pausedUntil.After(now) {
		*t = l.Reserve(now)
		if d := t.At.Sub(now); d > 0 {
			return d, 0
		}
	}
	if d := l.sends.wait(now, l.limit()); d > 0 {
		return d, 0
	}
	l.lastCommit = now
	return 0, l.sends.commit(now)
}

// Sent records that send s was written to the connection at t (or, when that
// is not known, may have reached the server as late as t): from then on it
// counts in the windows around t only. Only the first Sent or Abort of a
// send counts; a send the Limiter no longer remembers is ignored.
func (l *Limiter) Sent(s Send, t time.Time) {
	l.sends.settle(s, t, false)
}

// Abort records that send s never reached the server (no connection was
// obtained for it): it no longer counts in any window. Like Sent, only the
// first report of a send counts.
func (l *Limiter) Abort(s Send) {
	l.sends.settle(s, time.Time{}, true)
}

// Rate returns the rate in force.
func (l *Limiter) Rate() float64 {
	return l.rate
}

// SetRate puts rate r (> 0) in force for every later booking and Commit.
// When r is not above the rate in force it also re-spaces: every Ticket
// booked before is re-booked at r by its Commit, and the next slot is one
// interval at r after the last Commit, so callers booked at the old spacing
// do not leave at it. A raise keeps the bookings: they are spaced more
// widely than r needs, which is only conservative.
func (l *Limiter) SetRate(r float64) {
	raise := r > l.rate
	l.rate = r
	if raise {
		return
	}
	l.epoch++
	l.next = l.lastCommit.Add(l.interval())
}

// Pause holds every release until until, unless a longer pause is on:
// Reserve books no slot before it and Commit commits nothing before it.
// Tickets booked before the pause are re-booked by their Commit, one
// interval apart after it.
func (l *Limiter) Pause(until time.Time) {
	if !until.After(l.pausedUntil) {
		return
	}
	l.pausedUntil = until
	l.epoch++
	l.next = until
}
