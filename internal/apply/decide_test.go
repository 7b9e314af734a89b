package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/model"
)

// step is one scripted answer of the fake API: the operation it expects and
// what it answers (a nil err is success).
type step struct {
	op  string // "add", "update", "describe", "delete"
	err error
	cfg live.Config // Describe's answer
}

// fakeAPI answers each domain's requests from its script, in order, and
// records the operations it was asked for. A request past the script, or
// for another operation than the script's next step, fails the test.
type fakeAPI struct {
	t       *testing.T
	mu      sync.Mutex
	scripts map[string][]step
	got     map[string][]string
}

func (f *fakeAPI) next(ctx context.Context, op, domain string) step {
	// Like the real client: credentials come first (a credentials failure
	// sends nothing), then the send hook (the gate may defer the request),
	// then the request is written.
	f.mu.Lock()
	s := f.scripts[domain]
	f.mu.Unlock()
	var credsFail bool
	if len(s) > 0 {
		var ce *live.CredentialsError
		credsFail = errors.As(s[0].err, &ce)
	}
	hook, ok := live.SendHookFrom(ctx)
	if ok && !credsFail && hook.Before != nil {
		if err := hook.Before(); err != nil {
			return step{op: op, err: err}
		}
		defer hook.Wrote()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got[domain] = append(f.got[domain], op)
	s = f.scripts[domain]
	if len(s) == 0 {
		f.t.Errorf("%s: unexpected %s (script exhausted)", domain, op)
		return step{op: op, err: &live.APIError{Op: op, Code: "Unexpected", HTTPStatus: 400}}
	}
	f.scripts[domain] = s[1:]
	if s[0].op != op {
		f.t.Errorf("%s: got %s, script expects %s", domain, op, s[0].op)
	}
	return s[0]
}

func (f *fakeAPI) Add(ctx context.Context, r live.Request) (live.Answer, error) {
	return live.Answer{RequestID: "rid"}, f.next(ctx, "add", r.Domain).err
}
func (f *fakeAPI) Update(ctx context.Context, r live.Request) (live.Answer, error) {
	return live.Answer{RequestID: "rid"}, f.next(ctx, "update", r.Domain).err
}
func (f *fakeAPI) Describe(ctx context.Context, domain, _ string) (live.Config, live.Answer, error) {
	s := f.next(ctx, "describe", domain)
	return s.cfg, live.Answer{RequestID: "rid"}, s.err
}
func (f *fakeAPI) Delete(ctx context.Context, domain, _ string) (live.Answer, error) {
	return live.Answer{RequestID: "rid"}, f.next(ctx, "delete", domain).err
}

// fakeStore serves rows as one page and keeps what the run writes.
type fakeStore struct {
	mu      sync.Mutex
	rows    []model.Row
	prune   []model.Row
	marked  []model.Intent
	results map[string]model.Result
}

func (s *fakeStore) page(rows []model.Row, after string, limit int) []model.Row {
	var out []model.Row
	for _, r := range rows {
		if r.Domain > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out
}
func (s *fakeStore) PendingPage(_ context.Context, after string, limit int) ([]model.Row, error) {
	return s.page(s.rows, after, limit), nil
}
func (s *fakeStore) DesiredPage(_ context.Context, after string, limit int) ([]model.Row, error) {
	return s.page(s.rows, after, limit), nil
}
func (s *fakeStore) PrunePage(_ context.Context, _ int64, after string, limit int) ([]model.Row, error) {
	return s.page(s.prune, after, limit), nil
}
func (s *fakeStore) CountPrune(context.Context, int64) (int64, error) {
	return int64(len(s.prune)), nil
}
func (s *fakeStore) MarkSending(_ context.Context, in []model.Intent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marked = append(s.marked, in...)
	return nil
}
func (s *fakeStore) WriteOutcomes(_ context.Context, _ int64, rs []model.Result, _ Counters) (map[model.Outcome]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := map[model.Outcome]int64{}
	for _, r := range rs {
		if _, dup := s.results[r.Domain]; !dup {
			s.results[r.Domain] = r
			w[r.Outcome]++
		}
	}
	return w, nil
}

// fakeClock is a synthetic clock: Sleep advances it at once.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func apiErr(code string, status int) error {
	return &live.APIError{Op: "op", Code: code, Message: code + " message", HTTPStatus: status, RequestID: "rid-" + code}
}

var (
	errExists    = apiErr("ConfigAlreadyExists", 409)
	errNotFound  = apiErr("ConfigNotFound", 400)
	errInternal  = apiErr("InternalError", 500)
	errMalformed = apiErr("MalformedParam", 400)
	errForbidden = apiErr("Forbidden.RAM", 403)
	errThrottled = apiErr("Throttling.User", 400)
	errLost      = &live.TransportError{Op: "op", Timeout: true, Msg: "no answer within 10s"}
	errCreds     = &live.CredentialsError{Provider: "sts", Err: errors.New("refresh failed")}
)

const url1, url2 = "https://h.example.com/1", "https://h.example.com/2"

// TestDecisions drives one row through Run with a scripted API: the
// requests sent and the outcome recorded for each answer sequence. It runs
// in milliseconds (no database, no HTTP, a synthetic clock).
func TestDecisions(t *testing.T) {
	t.Parallel()
	cfg := func(u string) live.Config { return live.Config{Exists: true, NotifyURL: u} }
	for _, tt := range []struct {
		name        string
		row         model.Row // Domain is set by the test
		opts        func(*Options)
		script      []step
		outcome     model.Outcome // "" = no outcome (the row stays pending)
		code        string
		attempts    int
		possibly    bool
		marked      bool
		pruneScript bool // the script is for a prune candidate
	}{
		{name: "add ok", script: []step{{op: "add"}}, outcome: model.OutcomeApplied, attempts: 1, marked: true},
		{name: "add exists, nothing else unconfirmed", script: []step{{op: "add", err: errExists}},
			outcome: model.OutcomeAlreadyExists, code: "ConfigAlreadyExists", attempts: 1, marked: true},
		{name: "add exists, other values unconfirmed, same config",
			row:     model.Row{OtherUnconfirmed: true},
			script:  []step{{op: "add", err: errExists}, {op: "describe", cfg: cfg(url1)}},
			outcome: model.OutcomeAlreadyExists, code: "ConfigAlreadyExists", attempts: 2, marked: true},
		{name: "add exists, other values unconfirmed, other config",
			row:     model.Row{OtherUnconfirmed: true},
			script:  []step{{op: "add", err: errExists}, {op: "describe", cfg: cfg(url2)}, {op: "update"}},
			outcome: model.OutcomeUpdated, attempts: 3, marked: true},
		{name: "add exists, other values unconfirmed, no-fix-drift",
			row:     model.Row{OtherUnconfirmed: true},
			opts:    func(o *Options) { o.NoFixDrift = true },
			script:  []step{{op: "add", err: errExists}, {op: "describe", cfg: cfg(url2)}},
			outcome: model.OutcomeDrifted, code: "Drifted", attempts: 2, marked: true},
		{name: "add exists, other values unconfirmed, gone meanwhile",
			row:     model.Row{OtherUnconfirmed: true},
			script:  []step{{op: "add", err: errExists}, {op: "describe"}, {op: "add"}},
			outcome: model.OutcomeApplied, attempts: 3, marked: true},
		{name: "update ok", row: model.Row{Applied: true}, script: []step{{op: "update"}},
			outcome: model.OutcomeUpdated, attempts: 1, marked: true},
		{name: "update target gone on the last attempt: add has its own",
			row: model.Row{Applied: true}, opts: func(o *Options) { o.MaxAttempts = 1 },
			script:  []step{{op: "update", err: errNotFound}, {op: "add"}},
			outcome: model.OutcomeApplied, attempts: 2, marked: true},
		{name: "verify-existing with one attempt: every step sent",
			opts:    func(o *Options) { o.MaxAttempts, o.VerifyExisting = 1, true },
			script:  []step{{op: "add", err: errExists}, {op: "describe", cfg: cfg(url2)}, {op: "update"}},
			outcome: model.OutcomeUpdated, attempts: 3, marked: true},
		{name: "5xx until attempts run out", opts: func(o *Options) { o.MaxAttempts = 3 },
			script:  []step{{op: "add", err: errInternal}, {op: "add", err: errInternal}, {op: "add", err: errInternal}},
			outcome: model.OutcomeFailed, code: "InternalError", attempts: 3, possibly: true, marked: true},
		// A refusal proves nothing about the earlier lost write: still possibly applied.
		{name: "lost answer, then a row error", opts: func(o *Options) { o.MaxAttempts = 3 },
			script:  []step{{op: "add", err: errLost}, {op: "add", err: errMalformed}},
			outcome: model.OutcomeFailed, code: "MalformedParam", attempts: 2, possibly: true, marked: true},
		{name: "lost answer, then exists", opts: func(o *Options) { o.MaxAttempts = 3 },
			script:  []step{{op: "add", err: errLost}, {op: "add", err: errExists}},
			outcome: model.OutcomeAlreadyExists, code: "ConfigAlreadyExists", attempts: 2, marked: true},
		{name: "forbidden for this domain", script: []step{{op: "add", err: errForbidden}},
			outcome: model.OutcomeFailed, code: "Forbidden.RAM", attempts: 1, marked: true},
		{name: "throttled does not use up attempts", opts: func(o *Options) { o.MaxAttempts = 1 },
			script:  []step{{op: "add", err: errThrottled}, {op: "add", err: errThrottled}, {op: "add"}},
			outcome: model.OutcomeApplied, attempts: 3, marked: true},
		{name: "throttles in one step leave the next its attempts", row: model.Row{Applied: true},
			opts: func(o *Options) { o.MaxAttempts = 3 },
			script: []step{{op: "update", err: errThrottled}, {op: "update", err: errThrottled}, {op: "update", err: errNotFound},
				{op: "add", err: errInternal}, {op: "add"}},
			outcome: model.OutcomeApplied, attempts: 5, marked: true},
		{name: "credentials outage is not an attempt", opts: func(o *Options) { o.MaxAttempts = 1 },
			script:  []step{{op: "add", err: errCreds}, {op: "add", err: errCreds}, {op: "add"}},
			outcome: model.OutcomeApplied, attempts: 1, marked: true},
		{name: "delete ok", pruneScript: true, script: []step{{op: "delete"}},
			outcome: model.OutcomeDeleted, attempts: 1, marked: true},
		{name: "delete of a config already gone", pruneScript: true, script: []step{{op: "delete", err: errNotFound}},
			outcome: model.OutcomeDeleted, code: "ConfigNotFound", attempts: 1, marked: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const d = "d.example.com"
			row := tt.row
			row.Domain, row.NotifyURL, row.Fingerprint = d, url1, "fp1"
			store := &fakeStore{results: map[string]model.Result{}}
			if tt.pruneScript {
				store.prune = []model.Row{{Domain: d, Fingerprint: "fp0", Applied: true}}
			} else {
				store.rows = []model.Row{row}
			}
			api := &fakeAPI{t: t, scripts: map[string][]step{d: slices.Clone(tt.script)}, got: map[string][]string{}}
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			o := Options{RunID: 1, Apply: config.Apply{Prune: tt.pruneScript, PruneMax: 10, Region: "cn-shanghai",
				Rate: 1000, AdaptiveRate: true, BreakerThreshold: 0.5, Concurrency: 2, MaxAttempts: 5, Grace: time.Second,
				PageSize: 10, FlushInterval: time.Hour, FlushSize: 10, ProgressInterval: time.Hour,
				BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond}, Now: clock.Now, Sleep: clock.Sleep}
			if tt.opts != nil {
				tt.opts(&o)
			}
			if _, err := Run(context.Background(), o, store, api); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if rest := api.scripts[d]; len(rest) > 0 {
				t.Errorf("requests %v; the script's %d last steps were not sent", api.got[d], len(rest))
			}
			res, ok := store.results[d]
			switch {
			case tt.outcome == "" && ok:
				t.Fatalf("outcome %+v, want none", res)
			case tt.outcome == "":
				return
			case !ok:
				t.Fatalf("no outcome, want %s", tt.outcome)
			}
			if res.Outcome != tt.outcome || res.ErrorCode != tt.code || res.Attempts != tt.attempts || res.PossiblyApplied != tt.possibly {
				t.Errorf("outcome %s code %q attempts %d possibly_applied %v; want %s %q %d %v (requests %v)",
					res.Outcome, res.ErrorCode, res.Attempts, res.PossiblyApplied, tt.outcome, tt.code, tt.attempts, tt.possibly, api.got[d])
			}
			if res.Outcome == model.OutcomeFailed && (res.ErrorCode == "" || res.ErrorMessage == "") {
				t.Errorf("failed without code or message: %+v", res)
			}
			if marked := len(store.marked) == 1 && store.marked[0].Domain == d; marked != tt.marked {
				t.Errorf("marked %+v, want marked=%v", store.marked, tt.marked)
			}
		})
	}
}

// TestAccountWideRefusalStops: when the first PermissionStopDomains domains
// are all refused and none allowed, the pass stops with ErrCredentials; a
// single refused domain among allowed ones does not.
func TestAccountWideRefusalStops(t *testing.T) {
	t.Parallel()
	store := &fakeStore{results: map[string]model.Result{}}
	api := &fakeAPI{t: t, scripts: map[string][]step{}, got: map[string][]string{}}
	for i := range 3 * PermissionStopDomains {
		d := fmt.Sprintf("f%02d.example.com", i)
		store.rows = append(store.rows, model.Row{Domain: d, NotifyURL: url1, Fingerprint: "fp"})
		api.scripts[d] = []step{{op: "add", err: errForbidden}}
	}
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	o := Options{RunID: 1, Apply: config.Apply{Region: "cn-shanghai", Rate: 1000, BreakerThreshold: 0.5, Concurrency: 1,
		MaxAttempts: 5, Grace: time.Second, PageSize: 100, FlushInterval: time.Hour, FlushSize: 100,
		ProgressInterval: time.Hour, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond}, Now: clock.Now, Sleep: clock.Sleep}
	_, err := Run(context.Background(), o, store, fakeAPIQuiet{api})
	if !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), "permission") {
		t.Fatalf("Run = %v, want ErrCredentials naming the permission refusal", err)
	}
	if n := len(store.results); n != PermissionStopDomains {
		t.Fatalf("%d refused rows recorded, want %d (one worker: the run stops at the %dth)", n, PermissionStopDomains, PermissionStopDomains)
	}
}

// fakeAPIQuiet is fakeAPI without the complaint about unsent script steps.
type fakeAPIQuiet struct{ *fakeAPI }
