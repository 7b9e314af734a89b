package apply

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/model"
)

// stuckAPI answers nothing until release is closed: an account whose
// requests hang (a slow region, a partition).
type stuckAPI struct {
	entered atomic.Int64
	release chan struct{}
}

func (s *stuckAPI) wait(ctx context.Context) (live.Answer, error) {
	s.entered.Add(1)
	if hook, ok := live.SendHookFrom(ctx); ok && hook.Before != nil {
		if err := hook.Before(); err != nil {
			return live.Answer{}, err
		}
		defer hook.Wrote()
	}
	<-s.release
	return live.Answer{RequestID: "rid"}, nil
}
func (s *stuckAPI) Add(ctx context.Context, _ live.Request) (live.Answer, error) { return s.wait(ctx) }
func (s *stuckAPI) Update(ctx context.Context, _ live.Request) (live.Answer, error) {
	return s.wait(ctx)
}
func (s *stuckAPI) Describe(ctx context.Context, _, _ string) (live.Config, live.Answer, error) {
	a, err := s.wait(ctx)
	return live.Config{}, a, err
}
func (s *stuckAPI) Delete(ctx context.Context, _, _ string) (live.Answer, error) { return s.wait(ctx) }

// okAPI answers every request with success at once.
type okAPI struct{}

func (okAPI) Add(context.Context, live.Request) (live.Answer, error) {
	return live.Answer{RequestID: "rid"}, nil
}
func (okAPI) Update(context.Context, live.Request) (live.Answer, error) {
	return live.Answer{RequestID: "rid"}, nil
}
func (okAPI) Describe(context.Context, string, string) (live.Config, live.Answer, error) {
	return live.Config{}, live.Answer{RequestID: "rid"}, nil
}
func (okAPI) Delete(context.Context, string, string) (live.Answer, error) {
	return live.Answer{RequestID: "rid"}, nil
}

// TestSlowAccountDoesNotStarveOthers: two accounts share a pool of 4
// workers. One account's requests hang; the other's pass still runs to the
// end while they hang, because the hanging account holds only its share
// (2) of the pool. Without the shares the hanging account takes all four
// workers and the other's pass never ends (the test times out).
func TestSlowAccountDoesNotStarveOthers(t *testing.T) {
	t.Parallel()
	slots := NewSlots(4, 4)
	shares := map[string]*Share{"slow": slots.Join(), "fast": slots.Join()} // both before either starts
	opts := func(account string) Options {
		return Options{RunID: 1, Account: account, Share: shares[account], Apply: config.Apply{Region: "cn-shanghai", Rate: 1000,
			BreakerThreshold: 0.5, Concurrency: 4, MaxAttempts: 1, Grace: time.Second, PageSize: 100,
			FlushInterval: time.Hour, FlushSize: 100, ProgressInterval: time.Hour, BackoffBase: time.Millisecond,
			BackoffMax: time.Millisecond}}
	}
	rows := func(account string, n int) *fakeStore {
		s := &fakeStore{results: map[string]model.Result{}}
		for i := range n {
			s.rows = append(s.rows, model.Row{Domain: fmt.Sprintf("r%02d.%s.example.com", i, account),
				NotifyURL: url1, Fingerprint: "fp"})
		}
		return s
	}
	stuck := &stuckAPI{release: make(chan struct{})}
	slowStore, fastStore := rows("slow", 10), rows("fast", 30)
	slowDone := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), opts("slow"), slowStore, stuck)
		slowDone <- err
	}()
	sum, err := Run(context.Background(), opts("fast"), fastStore, okAPI{})
	if err != nil || sum.Done() != 30 {
		t.Fatalf("fast account: %d done, %v; want all 30 done while the slow one hangs", sum.Done(), err)
	}
	for _, r := range fastStore.results {
		if r.Account != "fast" {
			t.Fatalf("result %s carries account %q", r.Domain, r.Account)
		}
	}
	// (Once the fast account's pass ended, its share went to the slow one:
	// TestSlotsLeaveGrowsShares.)
	if n := stuck.entered.Load(); n < 1 || n > 4 {
		t.Fatalf("the slow account has %d requests in flight, want 1 to 4", n)
	}
	close(stuck.release)
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	if n := len(slowStore.results); n != 10 {
		t.Fatalf("slow account: %d results after release, want 10", n)
	}
}
