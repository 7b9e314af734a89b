package apply

import (
	"testing"
	"time"
)

// gateEvent is something that happens to a Gate at a time of the synthetic
// clock (an answer, a pause), outside the callers' sends.
type gateEvent struct {
	at time.Time
	do func(now time.Time)
}

// gateSim drives a Gate on a synthetic clock the way call does: n backlogged
// callers each Reserve, wait until the ticket's time, Commit (waiting and
// committing again as told), and hand the request to the network; the
// request reaches the server writeDelay(i) after its Commit (i counts the
// sends) and is settled with Sent then, or with Abort when abort(i). Events
// fire in time order between the callers' steps. gateSim returns the
// arrival times of the first total requests as the server sees them, and
// their commit times.
func gateSim(g *Gate, t0 time.Time, n, total int, writeDelay func(i int) time.Duration, abort func(i int) bool, events []gateEvent) (arrivals, commits []time.Time) {
	type caller struct {
		at     time.Time
		t      Ticket
		booked bool
	}
	type write struct {
		at    time.Time
		s     Send
		abort bool
	}
	cs := make([]caller, n)
	for i := range cs {
		cs[i].at = t0
	}
	var writes []write
	sent := 0
	for sent < total {
		// The next caller to act (ties: the lowest index).
		c := &cs[0]
		for i := range cs {
			if cs[i].at.Before(c.at) {
				c = &cs[i]
			}
		}
		now := c.at
		// Deliver what happened up to now, in time order.
		for {
			ei, wi := -1, -1
			var first time.Time
			for i, e := range events {
				if !e.at.After(now) && (ei < 0 || e.at.Before(first)) {
					ei, first = i, e.at
				}
			}
			for i, w := range writes {
				if !w.at.After(now) && (ei < 0 && wi < 0 || w.at.Before(first)) {
					ei, wi, first = -1, i, w.at
				}
			}
			switch {
			case wi >= 0:
				w := writes[wi]
				writes = append(writes[:wi], writes[wi+1:]...)
				if w.abort {
					g.Abort(w.s)
				} else {
					g.Sent(w.s, w.at)
				}
				continue
			case ei >= 0:
				e := events[ei]
				events = append(events[:ei], events[ei+1:]...)
				e.do(e.at)
				continue
			}
			break
		}
		if !c.booked {
			c.t, c.booked = g.Reserve(now), true
			c.at = c.t.At
			continue
		}
		d, s := g.Commit(now, &c.t)
		if d > 0 {
			c.at = now.Add(d)
			continue
		}
		i := len(commits)
		commits = append(commits, now)
		w := write{at: now.Add(writeDelay(i)), s: s, abort: abort(i)}
		if !w.abort {
			arrivals = append(arrivals, w.at)
		} else {
			total++ // an aborted request never arrives: send one more
		}
		writes = append(writes, w)
		sent++
		c.booked = false
	}
	return arrivals, commits
}

func noDelay(int) time.Duration { return 0 }
func never(int) bool            { return false }

// TestGateSlowConnectionHoldsItsPlace: a request whose dial and TLS
// handshake take 1.2 s reaches the server long after its Commit; the window
// must count it until then, or the server sees rate+1 requests in one
// second (issue "Done is true", item 8a).
func TestGateSlowConnectionHoldsItsPlace(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, slow := range []int{0, 5, 9} {
		g := NewGate(10, false, 0.5)
		delay := func(i int) time.Duration {
			if i == slow {
				return 1200 * time.Millisecond
			}
			return 0
		}
		arrivals, _ := gateSim(g, t0, 32, 60, delay, never, nil)
		if got := maxInWindow(arrivals, time.Second); got > 10 {
			t.Errorf("send %d slow: the server saw %d requests in one second, want <= 10", slow, got)
		}
	}
}

// TestGateAbortedSendFreesItsPlace: a send that never reached the server
// (its dial failed) stops counting, so it does not cost throughput.
func TestGateAbortedSendFreesItsPlace(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(10, false, 0.5)
	// Every other request fails to connect, 300 ms after its Commit.
	delay := func(i int) time.Duration {
		if i%2 == 0 {
			return 300 * time.Millisecond
		}
		return 0
	}
	arrivals, commits := gateSim(g, t0, 32, 100, delay, func(i int) bool { return i%2 == 0 }, nil)
	if got := maxInWindow(arrivals, time.Second); got > 10 {
		t.Fatalf("the server saw %d requests in one second, want <= 10", got)
	}
	// 200 commits at the spacing of 10/s take about 20 s; had the aborted
	// ones kept their place, the window would hold them for a second each.
	span := commits[len(commits)-1].Sub(commits[0])
	if span > 21*time.Second {
		t.Fatalf("200 commits took %v, want about 20 s: aborted sends still hold the window", span)
	}
}

// TestGatePauseRespacesWaitingCallers: callers that booked their slots
// before a pause (the circuit breaker's, or the server's retry hint) must
// not all leave at its end: they are spaced again at the current rate, and
// no 1-second window holds more than the current rate (item 8b).
func TestGatePauseRespacesWaitingCallers(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pauseAt := t0.Add(100 * time.Millisecond)
	for _, tt := range []struct {
		name     string
		adaptive bool
		pause    func(g *Gate, now time.Time)
		end      time.Time
	}{
		{"breaker", false, func(g *Gate, now time.Time) {
			for i := 0; i < BreakerWindow; i++ {
				g.Answered(now, true)
			}
		}, pauseAt.Add(BreakerPause)},
		{"retry hint", false, func(g *Gate, now time.Time) { g.Throttled(now, 0, 700*time.Millisecond) }, pauseAt.Add(700 * time.Millisecond)},
		{"adaptive cut and retry hint", true, func(g *Gate, now time.Time) {
			g.Throttled(now, 0, 700*time.Millisecond) // cuts the rate to 27 and pauses
		}, pauseAt.Add(700 * time.Millisecond)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGate(30, tt.adaptive, 0.5)
			arrivals, _ := gateSim(g, t0, 32, 200, noDelay, never,
				[]gateEvent{{pauseAt, func(now time.Time) { tt.pause(g, now) }}})
			var after []time.Time
			for _, a := range arrivals {
				if a.Before(pauseAt) {
					continue
				}
				if a.Before(tt.end) {
					t.Fatalf("a request left at +%v, during the pause (until +%v)", a.Sub(t0), tt.end.Sub(t0))
				}
				after = append(after, a)
			}
			// At the current rate r, 50 ms hold at most 2 slots.
			if got := maxInWindow(after, 50*time.Millisecond); got > 2 {
				t.Errorf("%d requests within 50 ms after the pause, want <= 2 (spaced at the rate)", got)
			}
			limit := max(1, int(g.Rate()))
			if got := maxInWindow(after, time.Second); got > limit {
				t.Errorf("%d requests in one second after the pause, want <= %d (the current rate)", got, limit)
			}
		})
	}
}
