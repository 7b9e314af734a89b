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
	shares  []*Share // joined and not left
}

// NewSlots returns a pool of total slots where no account holds more than
// perAccount (both at least 1).
func NewSlots(total, perAccount int) *Slots {
	return &Slots{total: max(total, 1), perAccount: max(perAccount, 1)}
}

// Share is one account's membership of a Slots.
type Share struct {
	s    *Slots
	held int
	left bool
	// wake is signalled when the account may be able to take a slot: it
	// released one, the full pool freed one, or its share grew.
	wake chan struct{}
}

// Join adds an account to the pool; its share counts until Leave.
func (s *Slots) Join() *Share {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members++
	sh := &Share{s: s, wake: make(chan struct{}, 1)}
	s.shares = append(s.shares, sh)
	return sh
}

// limit is an account's fair share. s.mu must be held.
func (s *Slots) limit() int {
	return min(s.perAccount, max(1, s.total/max(s.members, 1)))
}

// signal wakes sh's Acquire, if it waits.
func (sh *Share) signal() {
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// broadcast wakes every member's Acquire. s.mu must be held.
func (s *Slots) broadcast() {
	for _, sh := range s.shares {
		sh.signal()
	}
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
		s.mu.Unlock()
		select {
		case <-sh.wake:
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
	full := s.used == s.total
	s.used--
	sh.held--
	// An account waits for its own slots (it holds its share) or for the
	// pool (it is full): wake only those this release can help.
	sh.signal()
	if full {
		s.broadcast()
	}
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
	for i, m := range s.shares {
		if m == sh {
			s.shares = append(s.shares[:i], s.shares[i+1:]...)
			break
		}
	}
	s.broadcast()
}
