package apply

import (
	"time"
)

// progress reports every ProgressInterval until stop is closed: through
// o.Progress when set, else as a log line (done, pending, rate, ETA).
func (r *runner) progress(stop <-chan struct{}) {
	t := time.NewTicker(r.o.ProgressInterval)
	defer t.Stop()
	lastReq, lastAt := int64(0), r.o.Now()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := r.o.Now()
		req := r.nRequests.Load()
		rate := float64(req-lastReq) / now.Sub(lastAt).Seconds()
		lastReq, lastAt = req, now
		done := r.nFinished.Load()
		p := Progress{Done: done, Total: r.o.Total, Requests: req, Rate: rate, CurrentRate: r.gate.Rate()}
		if left := r.o.Total - done; left > 0 && rate > 0 {
			p.ETA = time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second)
		}
		if r.o.Progress != nil {
			r.o.Progress(p)
			continue
		}
		r.log.Info("progress", "done", p.Done, "pending", max(r.o.Total-p.Done, 0), "requests", p.Requests,
			"rate", round2(p.Rate), "current_rate_limit", round2(p.CurrentRate), "eta", p.ETA.String())
	}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
