package apply_test

import (
	"fmt"
	"time"

	"github.com/reconcile/reconcile/internal/apply"
)

// The Gate is the one rate limiter every request passes: Reserve books a
// slot, Commit is called right before the request goes to the network (it
// may ask to wait longer: the window is full, or a pause began), Sent when
// the request was written. Its methods take the time, so a synthetic clock
// shows what it does: at 2 requests/s, slots are about half a second apart.
func ExampleGate() {
	g := apply.NewGate(2, false, 0.5)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 3 {
		t := g.Reserve(start)
		now := t.At
		for {
			wait, send := g.Commit(now, &t)
			if wait == 0 {
				g.Sent(send, now)
				break
			}
			now = now.Add(wait)
		}
		fmt.Println("sent at", now.Sub(start).Round(time.Millisecond))
	}
	// Output:
	// sent at 0s
	// sent at 508ms
	// sent at 1.015s
}
