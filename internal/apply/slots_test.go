package apply

import (
	"context"
	"testing"
)

// tryAcquire takes a slot only if one is free within the share now (a
// cancelled context makes Acquire give up instead of waiting).
func tryAcquire(sh *Share) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return sh.Acquire(ctx) == nil
}

func TestSlotsFairShare(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name              string
		total, perAccount int
		accounts          int
		want              int // slots the first account gets while all are members
	}{
		{name: "even split", total: 8, perAccount: 8, accounts: 2, want: 4},
		{name: "rounded down", total: 9, perAccount: 9, accounts: 2, want: 4},
		{name: "per-account cap", total: 100, perAccount: 3, accounts: 2, want: 3},
		{name: "more accounts than slots", total: 2, perAccount: 5, accounts: 5, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSlots(tc.total, tc.perAccount)
			shares := make([]*Share, tc.accounts)
			for i := range shares {
				shares[i] = s.Join()
			}
			got := 0
			for tryAcquire(shares[0]) {
				got++
			}
			if got != tc.want {
				t.Fatalf("first account got %d slots, want %d", got, tc.want)
			}
			// The others still get theirs, up to the total.
			rest := 0
			for _, sh := range shares[1:] {
				for tryAcquire(sh) {
					rest++
				}
			}
			if got+rest > tc.total {
				t.Fatalf("%d slots taken, total is %d", got+rest, tc.total)
			}
			if want := min(tc.total-got, (tc.accounts-1)*tc.want); rest != want {
				t.Fatalf("the other accounts got %d slots, want %d", rest, want)
			}
		})
	}
}

// TestSlotsLeaveGrowsShares: once an account's pass ends, its share goes to
// the accounts still working.
func TestSlotsLeaveGrowsShares(t *testing.T) {
	t.Parallel()
	s := NewSlots(4, 4)
	a, b := s.Join(), s.Join()
	for range 2 {
		if !tryAcquire(a) {
			t.Fatal("a cannot take its share")
		}
	}
	if tryAcquire(a) {
		t.Fatal("a took more than its share while b is working")
	}
	b.Leave()
	b.Leave() // idempotent
	for range 2 {
		if !tryAcquire(a) {
			t.Fatal("a cannot take b's share after b left")
		}
	}
	if tryAcquire(a) {
		t.Fatal("a took more than the total")
	}
}

// TestSlotsReleaseWakesWaiter: a blocked Acquire proceeds when a slot is
// released, and gives up when its context ends.
func TestSlotsReleaseWakesWaiter(t *testing.T) {
	t.Parallel()
	s := NewSlots(1, 1)
	a := s.Join()
	if !tryAcquire(a) {
		t.Fatal("cannot take the only slot")
	}
	got := make(chan error, 1)
	go func() { got <- a.Acquire(context.Background()) }()
	a.Release()
	if err := <-got; err != nil {
		t.Fatalf("waiting Acquire: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { got <- a.Acquire(ctx) }()
	cancel()
	if err := <-got; err == nil {
		t.Fatal("Acquire took a slot that is held")
	}
}
