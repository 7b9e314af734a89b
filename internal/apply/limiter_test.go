package apply

import (
	"math"
	"testing"
	"time"
)

// intervalAt is the Limiter's spacing at rate r.
func intervalAt(r float64) time.Duration {
	return time.Duration(math.Ceil(float64(window) / r))
}

// commitNow commits a send at now on l with a fresh ticket (ignoring
// spacing) and settles it as written at now; it fails the test when the
// window does not admit it.
func commitNow(t *testing.T, l *Limiter, now time.Time) Send {
	t.Helper()
	tk := Ticket{At: now, epoch: l.epoch}
	d, s := l.Commit(now, &tk)
	if d != 0 {
		t.Fatalf("Commit at +%v asks to wait %v", now, d)
	}
	l.Sent(s, now)
	return s
}

// TestLimiterCutRespaces: lowering the rate re-books the tickets booked at
// the old spacing, one interval at the new rate after the last Commit;
// raising it keeps them.
func TestLimiterCutRespaces(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(10)
	first := l.Reserve(t0)
	if d, s := l.Commit(first.At, &first); d != 0 || s == 0 {
		t.Fatalf("first Commit = %v, %v; want it sent", d, s)
	}
	old := l.Reserve(t0)
	if want := t0.Add(intervalAt(10)); !old.At.Equal(want) {
		t.Fatalf("second slot at +%v, want +%v", old.At.Sub(t0), want.Sub(t0))
	}
	l.SetRate(5)
	d, s := l.Commit(old.At, &old)
	if want := intervalAt(5) - intervalAt(10); d != want || s != 0 {
		t.Fatalf("Commit of a ticket booked before the cut = %v, %v; want to wait %v (re-booked at 5/s)", d, s, want)
	}
	if want := t0.Add(intervalAt(5)); !old.At.Equal(want) {
		t.Fatalf("re-booked at +%v, want +%v", old.At.Sub(t0), want.Sub(t0))
	}

	// A raise keeps what was booked: a slot booked after it comes after
	// the ones booked before (spaced at the old rate), not between them.
	l = NewLimiter(5)
	a := l.Reserve(t0)
	l.Reserve(t0)
	last := l.Reserve(t0)
	if d, s := l.Commit(a.At, &a); d != 0 || s == 0 {
		t.Fatalf("first Commit = %v, %v; want it sent", d, s)
	}
	l.SetRate(10)
	if got := l.Reserve(t0).At; !got.After(last.At) {
		t.Fatalf("after a raise a new slot is at +%v, not after the last one booked before (+%v)", got.Sub(t0), last.At.Sub(t0))
	}
}

// TestLimiterWindowFollowsRate: the window guard admits floor(rate) sends
// per 1 s + WindowMargin at the rate in force at each Commit.
func TestLimiterWindowFollowsRate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(10)
	commitNow(t, l, t0)
	commitNow(t, l, t0.Add(100*time.Millisecond))
	l.SetRate(2.5) // floor: 2 a window
	at := t0.Add(200 * time.Millisecond)
	tk := Ticket{At: at, epoch: l.epoch}
	if d, _ := l.Commit(at, &tk); d != window-200*time.Millisecond {
		t.Fatalf("third send at 2.5/s asks to wait %v, want %v (until the first leaves the window)", d, window-200*time.Millisecond)
	}
	l.SetRate(10)
	tk = Ticket{At: at, epoch: l.epoch}
	if d, s := l.Commit(at, &tk); d != 0 || s == 0 {
		t.Fatalf("third send back at 10/s = %v, %v; want it sent", d, s)
	}
	// Below 1/s the window still admits one send.
	l = NewLimiter(0.5)
	commitNow(t, l, t0)
	tk = Ticket{At: t0, epoch: l.epoch}
	if d, _ := l.Commit(t0.Add(time.Second), &tk); d != WindowMargin {
		t.Fatalf("second send at 0.5/s asks to wait %v, want %v", d, WindowMargin)
	}
}

// TestLimiterPause: nothing is booked or committed during a pause; tickets
// booked before it are re-booked one interval apart after it; a shorter
// pause does not shorten a longer one.
func TestLimiterPause(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(10)
	a, b := l.Reserve(t0), l.Reserve(t0)
	until := t0.Add(2 * time.Second)
	l.Pause(until)
	l.Pause(t0.Add(time.Second)) // shorter: no effect
	if got := l.Reserve(t0).At; got.Before(until) {
		t.Fatalf("booked at +%v during a pause until +%v", got.Sub(t0), until.Sub(t0))
	}
	var ats []time.Time
	for _, tk := range []*Ticket{&a, &b} {
		now := tk.At
		for {
			d, s := l.Commit(now, tk)
			if d == 0 {
				l.Sent(s, now)
				break
			}
			now = now.Add(d)
		}
		ats = append(ats, now)
	}
	if ats[0].Before(until) || ats[1].Sub(ats[0]) < intervalAt(10) {
		t.Fatalf("tickets booked before the pause sent at +%v and +%v; want after +%v, %v apart",
			ats[0].Sub(t0), ats[1].Sub(t0), until.Sub(t0), intervalAt(10))
	}
}
