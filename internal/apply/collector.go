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

// loop drains r.results until it is closed, then flushes what is left. A
// request on r.flushNow is answered (its channel closed) once every result
// already sent on r.results is written (or the write failed).
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
			c.add(res)
		case ack := <-c.r.flushNow:
			c.drain()
			c.flush()
			close(ack)
		case <-t.C:
			c.flush()
		}
	}
}

func (c *collector) add(res model.Result) {
	c.buf = append(c.buf, res)
	if len(c.buf) >= c.r.o.FlushSize {
		c.flush()
	}
}

// drain takes every result already waiting on r.results.
func (c *collector) drain() {
	for {
		select {
		case res, ok := <-c.r.results:
			if !ok {
				return
			}
			c.add(res)
		default:
			return
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
	stored, err := c.r.store.WriteOutcomes(context.WithoutCancel(c.r.dispatch), c.r.o.RunID, c.buf, delta)
	if err != nil {
		c.err = fmt.Errorf("%w: writing %d outcomes: %w", ErrStore, len(c.buf), err)
		c.r.stop(c.err)
		c.r.log.Error("cannot write outcomes; stopping dispatch (the rows stay pending for the next run)", "error", err)
		c.buf = c.buf[:0]
		return
	}
	// Count what the database holds, not what was handed in: a result
	// dropped as a second outcome of its domain in this run is not counted.
	for o, n := range stored {
		c.counts[o] += n
		c.written += n
	}
	c.sentReq, c.sentThr, c.sentRetry = req, thr, rty
	c.buf = c.buf[:0]
}
