package apply

import (
	"slices"
	"time"
)

// Send states.
const (
	sendPending = iota // committed; not known to be written yet
	sendWritten        // written (or may have arrived) at its time
	sendAborted        // never reached the server
)

// historySpan is how long the send log remembers written sends for a
// RatePolicy: an answer can come this long (less one second) after its
// request and the second before the request is still known.
const historySpan = 5 * time.Second

// sendRec is what the log remembers of one send.
type sendRec struct {
	t         time.Time // commit time while pending, then the time Sent gave
	state     uint8
	throttled bool // its answer was a throttling one
}

// SendHistory is the record of a Gate's recent sends that its RatePolicy
// reads when it decides on a throttled answer. The Gate calls the policy
// under its mutex, so the history does not change during that call.
type SendHistory interface {
	// Before counts the sends written in the open interval (t-1s, t): all
	// of them, and those whose answer is not known to be throttled
	// (accepted, or not answered yet).
	Before(t time.Time) (all, accepted int)
	// First returns when the first send was committed (zero: none yet).
	First() time.Time
	// Covers reports whether, at now, the history still holds every send
	// written at or after t (it forgets sends older than historySpan).
	Covers(now, t time.Time) bool
}

// sendLog is the memory of a Limiter's sends, with two views: the window
// guard's (how many sends are pending and the sorted times of the written
// ones in the last window: commit, settle, wait), and the SendHistory a
// RatePolicy reads (every send of the last historySpan by id, with its
// throttled mark). Not safe for concurrent use (the Gate's mutex guards
// it).
type sendLog struct {
	first   Send      // id of recs[0]
	recs    []sendRec // by id, from first
	last    Send      // the last id given out
	pending int
	times   []time.Time // sorted times of the written sends in the last window
	start   time.Time   // the first commit
}

// commit counts a new pending send at now and returns its id.
func (l *sendLog) commit(now time.Time) Send {
	l.prune(now)
	if l.start.IsZero() {
		l.start = now
	}
	l.last++
	if len(l.recs) == 0 {
		l.first = l.last
	}
	l.recs = append(l.recs, sendRec{t: now, state: sendPending})
	l.pending++
	return l.last
}

// prune forgets settled sends older than historySpan (and aborted ones)
// from the front; a pending send stops it, to keep ids contiguous.
func (l *sendLog) prune(now time.Time) {
	cut := now.Add(-historySpan)
	k := 0
	for k < len(l.recs) {
		r := l.recs[k]
		if r.state == sendPending || r.state == sendWritten && !r.t.Before(cut) {
			break
		}
		k++
	}
	if k > 0 {
		l.recs = l.recs[k:]
		l.first += Send(k)
	}
}

// rec returns the record of s, or nil when it is not remembered.
func (l *sendLog) rec(s Send) *sendRec {
	if s == 0 || s < l.first || s > l.last || int(s-l.first) >= len(l.recs) {
		return nil
	}
	return &l.recs[s-l.first]
}

// settle ends the pending state of s: aborted, or written at t. A send that
// is not pending any more, or not remembered, is left alone.
func (l *sendLog) settle(s Send, t time.Time, abort bool) {
	r := l.rec(s)
	if r == nil || r.state != sendPending {
		return
	}
	l.pending--
	if abort {
		r.state = sendAborted
		return
	}
	r.state, r.t = sendWritten, t
	i, _ := slices.BinarySearchFunc(l.times, t, func(a, b time.Time) int { return a.Compare(b) })
	l.times = slices.Insert(l.times, i, t)
}

// wait returns how long from now until the window admits one more send
// under limit: 0 when it does now.
func (l *sendLog) wait(now time.Time, limit int) time.Duration {
	k := 0
	for k < len(l.times) && now.Sub(l.times[k]) >= window {
		k++
	}
	l.times = l.times[k:]
	n := l.pending + len(l.times)
	switch {
	case n < limit:
		return 0
	case l.pending >= limit:
		return PendingPoll
	}
	// The written sends up to index n-limit must leave the window.
	return l.times[n-limit].Add(window).Sub(now)
}

// markThrottled marks s throttled and returns its time, and whether that
// is the time it was written (false when s is not remembered or was never
// settled as written).
func (l *sendLog) markThrottled(s Send) (time.Time, bool) {
	r := l.rec(s)
	if r == nil {
		return time.Time{}, false
	}
	r.throttled = true
	return r.t, r.state == sendWritten
}

// Before implements SendHistory.
func (l *sendLog) Before(t time.Time) (all, accepted int) {
	from := t.Add(-time.Second)
	for _, r := range l.recs {
		if r.state == sendWritten && r.t.After(from) && r.t.Before(t) {
			all++
			if !r.throttled {
				accepted++
			}
		}
	}
	return all, accepted
}

// First implements SendHistory.
func (l *sendLog) First() time.Time {
	return l.start
}

// Covers implements SendHistory: prune, called at each commit (at or before
// now), forgets only written sends older than historySpan then (and
// aborted ones, which are no sends).
func (l *sendLog) Covers(now, t time.Time) bool {
	return now.Sub(t) <= historySpan
}
