package apply

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/model"
)

// testRunner is a runner for call alone, on a synthetic clock (Sleep
// advances it).
func testRunner(maxAttempts int) *runner {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := Options{Apply: config.Apply{MaxAttempts: maxAttempts}, Now: func() time.Time { return now },
		Sleep: func(ctx context.Context, d time.Duration) error { now = now.Add(d); return ctx.Err() }}
	r := &runner{o: o, gate: NewGate(30, true, 0.5), backoff: NewBackoff(200*time.Millisecond, 10*time.Second, 1),
		log: slog.New(slog.DiscardHandler)}
	r.dispatch, r.stop = context.WithCancelCause(context.Background())
	r.requests = context.Background()
	return r
}

// fakeCall answers with the errors of answers in turn, then OK; it runs the
// send hook as the real client does.
func fakeCall(answers []error, calls *int) func(ctx context.Context) (live.Answer, error) {
	return func(ctx context.Context) (live.Answer, error) {
		if h, ok := live.SendHookFrom(ctx); ok {
			if err := h.Before(); err != nil {
				return live.Answer{}, err
			}
			h.Wrote()
		}
		*calls++
		if i := *calls - 1; i < len(answers) {
			return live.Answer{HTTPStatus: 400}, answers[i]
		}
		return live.Answer{HTTPStatus: 200}, nil
	}
}

// TestThrottledAttemptsDoNotCountAgainstMaxAttempts: a row throttled more
// often than --max-attempts while the job slows down still gets done, and
// res.Attempts counts every request sent (item 9).
func TestThrottledAttemptsDoNotCountAgainstMaxAttempts(t *testing.T) {
	t.Parallel()
	r := testRunner(3)
	throttled := &live.APIError{Op: live.OpAdd, Code: "Throttling.User", HTTPStatus: 400}
	transient := &live.APIError{Op: live.OpAdd, Code: "InternalError", HTTPStatus: 500}
	answers := []error{throttled, throttled, transient, throttled, throttled, throttled, transient}
	var calls int
	var res model.Result
	_, class, err := r.call(&res, fakeCall(answers, &calls))
	if err != nil || class != live.ClassOK {
		t.Fatalf("call = %v, %v; want OK after 5 throttled and 2 transient answers with --max-attempts 3", class, err)
	}
	if res.Attempts != 8 || calls != 8 {
		t.Fatalf("res.Attempts = %d (calls %d), want 8: every request sent", res.Attempts, calls)
	}
}

// TestThrottledAttemptsAreBounded: a row that stays throttled gives up after
// MaxThrottledAttempts throttled answers, with the throttling error.
func TestThrottledAttemptsAreBounded(t *testing.T) {
	t.Parallel()
	r := testRunner(3)
	answers := make([]error, 1000)
	for i := range answers {
		answers[i] = &live.APIError{Op: live.OpAdd, Code: "Throttling.User", HTTPStatus: 400}
	}
	var calls int
	var res model.Result
	_, class, _ := r.call(&res, fakeCall(answers, &calls))
	if class != live.ClassThrottled || res.Attempts != MaxThrottledAttempts {
		t.Fatalf("call = %v after %d attempts, want throttled after %d", class, res.Attempts, MaxThrottledAttempts)
	}
	// Transient answers still count against --max-attempts.
	r = testRunner(3)
	for i := range answers {
		answers[i] = &live.APIError{Op: live.OpAdd, Code: "InternalError", HTTPStatus: 500}
	}
	calls, res = 0, model.Result{}
	if _, class, _ := r.call(&res, fakeCall(answers, &calls)); class != live.ClassTransient || res.Attempts != 3 {
		t.Fatalf("call = %v after %d attempts, want transient after 3", class, res.Attempts)
	}
}
