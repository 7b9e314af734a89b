package apply

import (
	"context"
	"fmt"
	"time"

	"github.com/reconcile/reconcile/internal/model"
)

// collector buffers outcomes and writes them in batches: when FlushSize are
// buffered, at least every FlushInterval, and at the end. It is the only
// goroutine that writes outcomes, so batches never interleave.
type collector struct {
	r       *runner
	buf     []model.Result
	counts  map[model.Outcome]int64
	written int64
	// flushed counters: what the database already holds for this run
	sentReq, sentThr, sentRetry int64
	err                         error
}

func newCollector(r *runner) *collector {
	return &collector{r: r, counts: make(map[model.Outcome]int64), buf: make([]model.Result, 0, r.o.FlushSize)}
}

// loop drains r.results until it is closed, then flushes what is left.
func (c *collector) loop() {
	t := time.NewTicker(c.r.o.FlushInterval)
	defer t.Stop()
	for {
		select {
		case res, ok := <-c.r.results:
			if !ok {
				c.flush()
				return
			}
			c.buf = append(c.buf, res)
			if len(c.buf) >= c.r.o.FlushSize {
				c.flush()
			}
		case <-t.C:
			c.flush()
		}
	}
}

// flush writes the buffer and the counter deltas in one call. On failure
// (the Store already retried for its deadline) it stops dispatching and
// drops the buffer: those rows stay pending, so a rerun redoes them (and a
// request that did succeed comes back as already_exists).
func (c *collector) flush() {
	req, thr, rty := c.r.nRequests.Load(), c.r.nThrottled.Load(), c.r.nRetries.Load()
	delta := Counters{Requests: req - c.sentReq, Throttled: thr - c.sentThr, Retries: rty - c.sentRetry}
	if len(c.buf) == 0 && delta == (Counters{}) {
		return
	}
	if c.err != nil {
		c.buf = c.buf[:0]
		return
	}
	// Writes must go on after a signal: use a context that only the store's
	// own deadline ends.
	if err := c.r.store.WriteOutcomes(context.WithoutCancel(c.r.dispatch), c.r.o.RunID, c.buf, delta); err != nil {
		c.err = fmt.Errorf("%w: writing %d outcomes: %w", ErrStore, len(c.buf), err)
		c.r.stop(c.err)
		c.r.log.Error("cannot write outcomes; stopping dispatch (the rows stay pending for the next run)", "error", err)
		c.buf = c.buf[:0]
		return
	}
	for _, res := range c.buf {
		c.counts[res.Outcome]++
	}
	c.written += int64(len(c.buf))
	c.sentReq, c.sentThr, c.sentRetry = req, thr, rty
	c.buf = c.buf[:0]
}
