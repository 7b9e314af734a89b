package app

import (
	"log/slog"
	"sync"
	"time"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/model"
)

// accountProgress merges the progress of the accounts of a multi-account
// pass into one line (or one terminal progress update) per interval,
// instead of one per account: each account's pass reports into it
// (apply.Options.Progress), and report logs the sum, with the per-account
// figures at debug level.
type accountProgress struct {
	log  *slog.Logger
	sink func(apply.Progress) // the Env's progress bar; nil: log lines

	mu     sync.Mutex
	latest map[string]apply.Progress
}

func newAccountProgress(log *slog.Logger, sink func(apply.Progress)) *accountProgress {
	return &accountProgress{log: log, sink: sink, latest: map[string]apply.Progress{}}
}

// reporter returns the Progress callback of one account's pass.
func (ap *accountProgress) reporter(account string) func(apply.Progress) {
	label := model.AccountLabel(account)
	return func(p apply.Progress) {
		ap.mu.Lock()
		ap.latest[label] = p
		ap.mu.Unlock()
		ap.log.Debug("account progress", "account", label, "done", p.Done, "pending", max(p.Total-p.Done, 0),
			"rate", round2(p.Rate), "current_rate_limit", round2(p.CurrentRate))
	}
}

// sum adds up the accounts' latest progress; total is the pass's rows.
func (ap *accountProgress) sum(total int64) apply.Progress {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	p := apply.Progress{Total: total}
	for _, a := range ap.latest {
		p.Done += a.Done
		p.Requests += a.Requests
		p.Rate += a.Rate
		p.CurrentRate += a.CurrentRate
		p.ETA = max(p.ETA, a.ETA)
	}
	return p
}

// loop reports the sum every interval until stop is closed.
func (ap *accountProgress) loop(interval time.Duration, total int64, accounts int, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		p := ap.sum(total)
		if ap.sink != nil {
			ap.sink(p)
			continue
		}
		ap.log.Info("progress", "done", p.Done, "pending", max(total-p.Done, 0), "requests", p.Requests,
			"rate", round2(p.Rate), "current_rate_limit", round2(p.CurrentRate), "eta", p.ETA.String(), "accounts", accounts)
	}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
