package apply

import (
	"testing"
	"time"
)

// TestSendLogHistory: the history counts written sends only (not pending
// or aborted ones) in the open second before a time, tells the throttled
// ones apart, and keeps every written send Covers promises.
func TestSendLogHistory(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var l sendLog
	send := func(at time.Time) Send {
		s := l.commit(at)
		l.settle(s, at, false)
		return s
	}
	send(t0)
	send(t0.Add(500 * time.Millisecond))
	throttled := send(t0.Add(700 * time.Millisecond))
	if sent, written := l.markThrottled(throttled); !written || !sent.Equal(t0.Add(700*time.Millisecond)) {
		t.Fatalf("markThrottled = %v, %v; want its written time", sent, written)
	}
	l.settle(l.commit(t0.Add(750*time.Millisecond)), time.Time{}, true) // aborted
	pending := l.commit(t0.Add(760 * time.Millisecond))
	if all, accepted := l.Before(t0.Add(800 * time.Millisecond)); all != 3 || accepted != 2 {
		t.Fatalf("Before(+800ms) = %d, %d; want 3 written, 2 accepted", all, accepted)
	}
	if all, _ := l.Before(t0.Add(1000 * time.Millisecond)); all != 2 {
		t.Fatalf("Before(+1s) = %d; want 2 (the window is open: the send at +0 is out)", all)
	}
	if got := l.First(); !got.Equal(t0) {
		t.Fatalf("First() = %v, want the first commit", got)
	}
	l.settle(pending, t0.Add(2*time.Second), false)
	// Much later: what Covers promises is still counted.
	now := t0.Add(2*time.Second + historySpan)
	send(now)
	if !l.Covers(now, t0.Add(2*time.Second)) {
		t.Fatalf("Covers(+%v, +2s) = false, want true", now.Sub(t0))
	}
	if all, _ := l.Before(t0.Add(2*time.Second + time.Millisecond)); all != 1 {
		t.Fatalf("Before(+2.001s) = %d after a prune, want 1 (the send written at +2s)", all)
	}
	if l.Covers(now, t0.Add(2*time.Second-time.Nanosecond)) {
		t.Fatalf("Covers a time older than historySpan")
	}
}
