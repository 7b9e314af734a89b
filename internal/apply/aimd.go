package apply

import (
	"math"
	"time"
)

// Constants of the adaptive rate (AIMD).
const (
	// AIMDDecrease multiplies the rate on a throttling episode when the
	// accepted rate could not be measured (see AIMD.Throttled).
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
)

// DefaultPolicy returns the RatePolicy of the job's Gate at --rate r: AIMD
// when adaptive (--adaptive), else FixedRate. Replacing the adaptive
// algorithm means replacing AIMD here.
func DefaultPolicy(r float64, adaptive bool) RatePolicy {
	if adaptive {
		return NewAIMD(r)
	}
	return FixedRate(r)
}

// AIMD is the adaptive RatePolicy: it lowers the rate once per throttling
// episode and raises it back slowly while no answer is throttled, never
// above the configured rate nor below MinAdaptiveRate of it.
//   - A cut sets the rate to the rate the server accepted from this job
//     over the second before the throttled request (a direct estimate of
//     the share of the budget left to it), when the job was pressing on the
//     budget then (PressingShare) and that is below the current rate; else
//     to the current rate × AIMDDecrease.
//   - Episodes: a throttled request sent less than 1 s + WindowMargin after
//     the last cut had in its server-side window requests paced by the old
//     rate, so it says nothing about the new one and does not cut again —
//     except that one sent earlier than the request that set the cut, in
//     the same episode, refines the cut (answers come out of order, and the
//     earliest throttled request of an episode is the one whose window held
//     only accepted requests, so it measures the budget best).
//   - Growth: after AIMDCooldown without a throttled answer the rate grows,
//     in steps at least AIMDCooldown apart, at ProbeIncrease calls/s per
//     second, doubling every ProbeDoubling of quiet time, at most
//     AIMDIncrease.
//
// Not safe for concurrent use: the Gate calls it under its mutex.
type AIMD struct {
	max, cur float64

	lastCut       time.Time // when the rate was last cut (zero: never)
	lastGrow      time.Time // last growth step
	lastThrottled time.Time // last throttled answer
	episodeSent   time.Time // send time of the throttled request that set the last cut
	episodeFrom   time.Time // the earliest send time of the last cut's episode
	cutFrom       float64   // the rate before the last cut
}

// NewAIMD returns an AIMD policy starting at, and never above, r.
func NewAIMD(r float64) *AIMD {
	return &AIMD{max: r, cur: r}
}

// Rate implements RatePolicy: it first takes the growth step due at now,
// if any.
func (a *AIMD) Rate(now time.Time) float64 {
	a.grow(now)
	return a.cur
}

// Throttled implements RatePolicy (see AIMD for the algorithm). It reports
// set for every cut and refinement, even one that lands on the floor it was
// already at, so that the Gate re-spaces its bookings.
func (a *AIMD) Throttled(ev Throttle, h SendHistory) (rate float64, set bool) {
	now := ev.At
	a.lastThrottled = now
	sent, known := ev.Sent, ev.Written
	if !known {
		sent = now // the latest it can have been sent
	}
	measurable := known && h.Covers(now, sent.Add(-time.Second))
	if !a.lastCut.IsZero() && sent.Before(a.lastCut.Add(window)) {
		// Sent before the last cut took full effect: the old rate's fault,
		// already paid for — unless it was sent before the request that set
		// the cut, in the same episode (see AIMD).
		if !measurable || !sent.Before(a.episodeSent) || sent.Before(a.episodeFrom) {
			return a.cur, false
		}
		if n, ok := a.budgetBefore(h, sent, a.cutFrom); ok && n < a.cur {
			a.cur = math.Max(n, a.max*MinAdaptiveRate)
			a.episodeSent = sent
			return a.cur, true
		}
		return a.cur, false
	}
	next := a.cur * AIMDDecrease
	if measurable {
		if n, ok := a.budgetBefore(h, sent, a.cur); ok && n < a.cur {
			next = n
		} else if !ok {
			measurable = false // nothing to refine this episode with
		}
	}
	a.cutFrom = a.cur
	a.episodeFrom = a.lastCut.Add(window)
	if a.lastCut.IsZero() {
		a.episodeFrom = time.Time{}
	}
	a.episodeSent = time.Time{} // nothing to refine unless measured
	if measurable {
		a.episodeSent = sent
	}
	a.lastCut, a.lastGrow = now, now
	a.cur = math.Max(next, a.max*MinAdaptiveRate)
	return a.cur, true
}

// budgetBefore estimates the budget left to this job from the second before
// sent: the number of its requests accepted then. ok is false when the job
// sent fewer than PressingShare of rate in that second (or in the part of
// it since its first send): it was not pressing on the budget, so what was
// accepted says nothing about it.
func (a *AIMD) budgetBefore(h SendHistory, sent time.Time, rate float64) (n float64, ok bool) {
	all, accepted := h.Before(sent)
	span := min(time.Second, sent.Sub(h.First()))
	return float64(accepted), float64(all) >= PressingShare*math.Floor(rate)*span.Seconds()
}

// grow raises the rate by its growth speed times the time since the last
// growth step, in steps at least AIMDCooldown apart and not within
// AIMDCooldown of a throttled answer.
func (a *AIMD) grow(now time.Time) {
	if a.cur >= a.max {
		return
	}
	if now.Sub(a.lastGrow) < AIMDCooldown || now.Sub(a.lastThrottled) < AIMDCooldown {
		return
	}
	quiet := now.Sub(a.lastThrottled)
	speed := math.Min(AIMDIncrease, ProbeIncrease*math.Exp2(quiet.Seconds()/ProbeDoubling.Seconds()))
	a.cur = math.Min(a.max, a.cur+speed*now.Sub(a.lastGrow).Seconds())
	a.lastGrow = now
}
