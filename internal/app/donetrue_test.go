package app

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/logging"
)

// reopen replaces the harness's simulator with a new one configured by so
// that starts from the old one's configs: the same cloud, with other faults.
// drop names configs that are gone in the new one (deleted out of band).
func (h *harness) reopen(so livesim.Options, drop ...string) {
	h.t.Helper()
	configs := h.sim.Configs()
	so.AccessKeyID, so.AccessKeySecret = testKeyID, testSecret
	sim := livesim.New(so)
	for d, c := range configs {
		sim.PutConfig(d, c)
	}
	for _, d := range drop {
		sim.DeleteConfig(d)
	}
	srv := httptest.NewServer(sim)
	h.t.Cleanup(func() { sim.Close(); srv.Close() })
	h.sim, h.url = sim, srv.URL
}

// cloudURL returns the notify_url the simulator holds for domain ("" when none).
func (h *harness) cloudURL(domain string) string {
	c, ok := h.sim.Config(domain)
	if !ok {
		return ""
	}
	return c.NotifyURL
}

// lostAnswers is a simulator that applies every request and loses its answer.
var lostAnswers = livesim.Options{Faults: livesim.Faults{LostAnswer: 1}}

// TestDoneIsTrue: a row recorded done means the cloud holds its current
// values, whatever answers were lost before (issue items 1, 2, 4, 5).
func TestDoneIsTrue(t *testing.T) {
	t.Parallel()
	const d = "a.example.com"
	v1, v2, v3 := "https://hooks.example.com/v1", "https://hooks.example.com/v2", "https://hooks.example.com/v3"

	t.Run("lost add, then edit", func(t *testing.T) {
		h := newHarness(t, lostAnswers)
		h.insert(row{d, v1, false, nil, nil})
		c := h.config()
		c.MaxAttempts = 1
		if err := h.run(c, testSecret); ExitCode(err) != 1 {
			t.Fatalf("run with lost answers = %v, want exit 1", err)
		}
		if got := h.latest()[d]; got.Outcome != "failed" || got.Code == "" || h.cloudURL(d) != v1 {
			t.Fatalf("after a lost Add: %+v, cloud %q; want failed with a code, cloud %q", got, h.cloudURL(d), v1)
		}
		h.exec(`UPDATE desired_snapshot_callbacks SET notify_url = $1`, v2)
		h.reopen(livesim.Options{})
		if err := h.run(h.config(), testSecret); err != nil {
			t.Fatalf("run after the edit = %v", err)
		}
		if got := h.latest()[d]; got.Pending || h.cloudURL(d) != v2 {
			t.Fatalf("after the edit: %+v, cloud %q; want done with the cloud at %q", got, h.cloudURL(d), v2)
		}
	})

	t.Run("lost update, then revert", func(t *testing.T) {
		h := newHarness(t, livesim.Options{})
		h.insert(row{d, v2, false, nil, nil})
		if err := h.run(h.config(), testSecret); err != nil {
			t.Fatal(err)
		}
		h.exec(`UPDATE desired_snapshot_callbacks SET notify_url = $1`, v3)
		h.reopen(lostAnswers)
		c := h.config()
		c.MaxAttempts = 1
		if err := h.run(c, testSecret); ExitCode(err) != 1 {
			t.Fatalf("run with a lost Update = %v, want exit 1", err)
		}
		if h.cloudURL(d) != v3 {
			t.Fatalf("cloud %q, want %q (the lost Update was applied)", h.cloudURL(d), v3)
		}
		h.exec(`UPDATE desired_snapshot_callbacks SET notify_url = $1`, v2)
		h.reopen(livesim.Options{})
		if err := h.run(h.config(), testSecret); err != nil {
			t.Fatalf("run after the revert = %v", err)
		}
		if got := h.latest()[d]; got.Outcome != "updated" || got.Pending || h.cloudURL(d) != v2 {
			t.Fatalf("after the revert: %+v, cloud %q; want updated with the cloud at %q", got, h.cloudURL(d), v2)
		}
	})

	t.Run("lost add, no edit: already_exists without a describe", func(t *testing.T) {
		h := newHarness(t, lostAnswers)
		h.insert(row{d, v1, false, nil, nil})
		c := h.config()
		c.MaxAttempts = 1
		_ = h.run(c, testSecret)
		h.reopen(livesim.Options{})
		if err := h.run(h.config(), testSecret); err != nil {
			t.Fatal(err)
		}
		if got := h.latest()[d]; got.Outcome != "already_exists" || got.Pending {
			t.Fatalf("%+v, want already_exists", got)
		}
		if st := h.sim.Stats(); st.ByAction[livesim.ActionDescribe] != 0 {
			t.Fatalf("%d Describe calls; the only values the job may have written are the row's", st.ByAction[livesim.ActionDescribe])
		}
	})

	t.Run("update target gone on the last attempt: the add gets its own", func(t *testing.T) {
		h := newHarness(t, livesim.Options{})
		h.insert(row{d, v1, false, nil, nil})
		if err := h.run(h.config(), testSecret); err != nil {
			t.Fatal(err)
		}
		h.exec(`UPDATE desired_snapshot_callbacks SET notify_url = $1`, v2)
		h.reopen(livesim.Options{}, d) // the config was deleted out of band
		c := h.config()
		c.MaxAttempts = 1
		if err := h.run(c, testSecret); err != nil {
			t.Fatalf("run = %v, want every row done", err)
		}
		if got := h.latest()[d]; got.Outcome != "applied" || got.Attempts != 2 || h.cloudURL(d) != v2 {
			t.Fatalf("%+v, cloud %q; want applied after 2 attempts (Update, Add), cloud %q", got, h.cloudURL(d), v2)
		}
	})

	t.Run("verify-existing fixes drift with one attempt per step", func(t *testing.T) {
		h := newHarness(t, livesim.Options{})
		h.sim.PutConfig(d, livesim.Config{DomainName: d, NotifyURL: v3})
		h.insert(row{d, v1, false, nil, nil})
		c := h.config()
		c.MaxAttempts = 1
		c.VerifyExisting = true
		if err := h.run(c, testSecret); err != nil {
			t.Fatalf("run = %v, want every row done", err)
		}
		if got := h.latest()[d]; got.Outcome != "updated" || got.Attempts != 3 || h.cloudURL(d) != v1 {
			t.Fatalf("%+v, cloud %q; want updated after Add, Describe, Update; cloud %q", got, h.cloudURL(d), v1)
		}
	})

	t.Run("failed rows always carry the failing answer", func(t *testing.T) {
		h := newHarness(t, livesim.Options{Faults: livesim.Faults{ServerError: 1}})
		h.insert(row{d, v1, false, nil, nil})
		c := h.config()
		c.MaxAttempts = 1
		_ = h.run(c, testSecret)
		var n int
		if err := h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM reconcile_outcomes
			WHERE outcome = 'failed' AND (error_code IS NULL OR error_message IS NULL)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if got := h.latest()[d]; got.Outcome != "failed" || n != 0 {
			t.Fatalf("%+v; %d failed outcomes without code or message", got, n)
		}
		var possibly bool
		if err := h.db.Pool.QueryRow(context.Background(), `SELECT possibly_applied FROM reconcile_outcomes`).Scan(&possibly); err != nil || !possibly {
			t.Fatalf("possibly_applied = %v (%v), want true after a 5xx", possibly, err)
		}
	})

	t.Run("prune of a config already gone is deleted", func(t *testing.T) {
		h := newHarness(t, livesim.Options{})
		h.insert(row{d, v1, false, nil, nil}, row{"b.example.com", v1, false, nil, nil})
		if err := h.run(h.config(), testSecret); err != nil {
			t.Fatal(err)
		}
		h.exec(`DELETE FROM desired_snapshot_callbacks WHERE domain_name = $1`, d)
		h.reopen(livesim.Options{DeleteMissingNotFound: true}, d)
		c := h.config()
		c.Prune = true
		if err := h.run(c, testSecret); err != nil {
			t.Fatalf("prune run = %v, want exit 0", err)
		}
		var outcome, code string
		if err := h.db.Pool.QueryRow(context.Background(), `SELECT outcome, coalesce(error_code, '') FROM reconcile_outcomes
			WHERE domain_name = $1 ORDER BY id DESC LIMIT 1`, d).Scan(&outcome, &code); err != nil {
			t.Fatal(err)
		}
		if outcome != "deleted" || code != "ConfigNotFound" {
			t.Fatalf("prune outcome %s (%s), want deleted (ConfigNotFound)", outcome, code)
		}
		// The goal is reached: the next prune run has nothing to do.
		n := len(h.sim.Log())
		if err := h.run(c, testSecret); err != nil || len(h.sim.Log()) != n {
			t.Fatalf("rerun = %v with %d requests, want exit 0 and none", err, len(h.sim.Log())-n)
		}
	})
}

// TestForbiddenOneDomain: a RAM policy that refuses one domain fails that
// row with its code; the others are done (issue item 3).
func TestForbiddenOneDomain(t *testing.T) {
	t.Parallel()
	const refused = "c150.example.com"
	h := newHarness(t, livesim.Options{ForceErrors: map[string]livesim.ForcedError{
		refused: {Status: 403, Code: "Forbidden.RAM", Message: "User not authorized to operate on the specified resource."}}})
	var rows []row
	for i := range 300 {
		rows = append(rows, row{fmt.Sprintf("c%03d.example.com", i), goodURL, false, nil, nil})
	}
	h.insert(rows...)
	err := h.run(h.config(), testSecret)
	if !errors.Is(err, ErrNotDone) || ExitCode(err) != 1 {
		t.Fatalf("run = %v (exit %d), want ErrNotDone (exit 1)", err, ExitCode(err))
	}
	latest := h.latest()
	for d, o := range latest {
		switch {
		case d == refused && (o.Outcome != "failed" || o.Code != "Forbidden.RAM" || o.Status != 403):
			t.Errorf("%s: %+v, want failed Forbidden.RAM (HTTP 403)", d, o)
		case d != refused && o.Outcome != "applied":
			t.Errorf("%s: %+v, want applied", d, o)
		}
	}
	if len(latest) != 300 {
		t.Fatalf("%d rows in the status view, want 300", len(latest))
	}
}

// flakyCredentials fails with a provider error on calls from..to (1-based)
// and hands out the test key otherwise.
type flakyCredentials struct {
	mu       sync.Mutex
	calls    int
	from, to int
}

func (f *flakyCredentials) Get(context.Context) (live.Credential, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls >= f.from && f.calls <= f.to {
		return live.Credential{}, &live.CredentialsError{Provider: "sts", Err: errors.New("refresh sts token: connection reset by peer")}
	}
	return live.StaticCredentials(testKeyID, testSecret, "").Get(context.Background())
}

// TestCredentialHiccup: a provider that fails for a while is retried with
// backoff, without using up the rows' attempts (issue item 6).
func TestCredentialHiccup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	var rows []row
	for i := range 20 {
		rows = append(rows, row{fmt.Sprintf("k%02d.example.com", i), goodURL, false, nil, nil})
	}
	h.insert(rows...)
	c := h.config()
	c.MaxAttempts = 1
	c.Concurrency = 4
	creds := &flakyCredentials{from: 3, to: 12}
	env := Env{Stdout: h.log, Stderr: h.log, Redactor: h.red,
		Logger:      logging.New(h.log, logging.Options{Format: "json", Level: c.LogLevel, Redactor: h.red}),
		Credentials: creds}
	if err := Run(context.Background(), c, env); err != nil {
		t.Fatalf("run = %v, want every row done (exit 0)", err)
	}
	for d, o := range h.latest() {
		if o.Outcome != "applied" || o.Attempts != 1 {
			t.Errorf("%s: %+v, want applied with 1 attempt", d, o)
		}
	}
	if !strings.Contains(h.log.String(), "cannot get credentials") || !strings.Contains(h.log.String(), "sts") {
		t.Fatalf("the log does not say what failed:\n%s", h.log.String())
	}
	if errors.Is(apply.ErrCredentials, apply.ErrCredentialsUnavailable) {
		t.Fatal("a provider outage must not be reported as a refusal")
	}
}
