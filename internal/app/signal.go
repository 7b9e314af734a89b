package app

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// MsgSignal is the message of the log line written when a signal
// (SIGTERM/SIGINT, caught by cmd/reconcile) stops a pass.
const MsgSignal = "signal received; in-flight requests may finish until grace_deadline"

// watchSignal logs one MsgSignal line, with the signal, --grace and the
// deadline after which in-flight requests are abandoned, when ctx ends
// while a pass runs (cmd/reconcile cancels ctx on SIGTERM/SIGINT, with the
// signal as its cause). The returned function stops watching; once it
// returns, the line was written if ctx ended before the call, so it always
// comes before the summary.
func watchSignal(ctx context.Context, log *slog.Logger, grace time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-done:
			if ctx.Err() == nil {
				return
			}
		}
		log.Warn(MsgSignal, "signal", context.Cause(ctx).Error(), "grace", grace,
			"grace_deadline", time.Now().Add(grace).UTC().Format(time.RFC3339Nano))
	}()
	return func() { close(done); wg.Wait() }
}
