package apply

import (
	"context"
	"sync"
)

// Slots is a worker pool shared by the passes of several accounts that run
// at once: at most total requests (with their waits in the gate) are in
// flight across all of them, and each account holds at most its fair share,
// min(perAccount, max(1, total / accounts still working)), rounded down so
// that every account can hold its whole share at once. An account whose
// requests are slow, or whose gate holds them back (throttled, a hidden
// lower limit, a tripped breaker), therefore never takes the slots the
// others need; when an account's pass ends (Leave), its share goes to the
// ones still working.
//
// Every account must Join before any of them starts: an account that took
// slots while it was alone would keep them past its share until they are
// released. It is safe for concurrent use.
type Slots struct {
	total, perAccount int

	mu      sync.Mutex
	used    int
	members int
	wake    chan struct{} // closed (and replaced) when a slot frees or the share grows
}

// NewSlots returns a pool of total slots where no account holds more than
// perAccount (both at least 1).
func NewSlots(total, perAccount int) *Slots {
	return &Slots{total: max(total, 1), perAccount: max(perAccount, 1), wake: make(chan struct{})}
}

// Share is one account's membership of a Slots.
type Share struct {
	s    *Slots
	held int
	left bool
}

// Join adds an account to the pool; its share counts until Leave.
func (s *Slots) Join() *Share {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members++
	return &Share{s: s}
}

// limit is an account's fair share. s.mu must be held.
func (s *Slots) limit() int {
	return min(s.perAccount, max(1, s.total/max(s.members, 1)))
}

// broadcast wakes every waiting Acquire. s.mu must be held.
func (s *Slots) broadcast() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// Acquire blocks until the account may start one more request (a free
// slot within its share) and takes it; it returns ctx's error, taking
// nothing, when ctx ends first.
func (sh *Share) Acquire(ctx context.Context) error {
	s := sh.s
	for {
		s.mu.Lock()
		if s.used < s.total && sh.held < s.limit() {
			s.used++
			sh.held++
			s.mu.Unlock()
			return nil
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Release gives back a slot taken by Acquire.
func (sh *Share) Release() {
	s := sh.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used--
	sh.held--
	s.broadcast()
}

// Leave ends the account's membership once its pass is over: the others'
// shares grow. Slots it still holds stay taken until released. Calling it
// again does nothing.
func (sh *Share) Leave() {
	s := sh.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh.left {
		return
	}
	sh.left = true
	s.members--
	s.broadcast()
}
