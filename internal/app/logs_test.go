package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/logging"
)

// TestSignalIsLoggedWithTheGraceDeadline: a signal that stops a run is
// logged (which signal, --grace, the deadline) before the summary, and the
// start line's durations are strings like every other duration.
func TestSignalIsLoggedWithTheGraceDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	var rows []row
	for _, d := range []string{"s1", "s2", "s3", "s4", "s5", "s6"} {
		rows = append(rows, row{d + ".example.com", goodURL, false, nil, nil})
	}
	h.insert(rows...)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	signal := errors.New("terminated signal received") // what signal.NotifyContext's cause says
	var once sync.Once
	// The first request "receives" SIGTERM, then is answered.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { cancel(signal) })
		h.sim.ServeHTTP(w, r)
	}))
	defer front.Close()
	c := h.config()
	c.Endpoint = front.URL
	c.Grace = 3 * time.Second
	c.Concurrency = 1
	env := Env{Stdout: h.log, Stderr: h.log, Redactor: h.red,
		Logger:      logging.New(h.log, logging.Options{Format: "json", Level: "debug", Redactor: h.red}),
		Credentials: live.StaticCredentials(testKeyID, testSecret, "")}
	before := time.Now()
	if err := Run(ctx, c, env); !errors.Is(err, apply.ErrInterrupted) {
		t.Fatalf("run = %v, want ErrInterrupted", err)
	}
	var sig, start map[string]any
	summaryAfterSignal := false
	for _, line := range strings.Split(strings.TrimSpace(h.log.String()), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		switch l["msg"] {
		case MsgSignal:
			sig = l
		case "starting":
			start = l
		case "summary":
			summaryAfterSignal = sig != nil
		}
	}
	if sig == nil {
		t.Fatalf("no %q line in the log:\n%s", MsgSignal, h.log.String())
	}
	if !summaryAfterSignal {
		t.Errorf("the summary came before the signal line")
	}
	if sig["signal"] != signal.Error() || sig["grace"] != "3s" {
		t.Errorf("signal line %v: want signal %q, grace \"3s\"", sig, signal)
	}
	deadline, err := time.Parse(time.RFC3339Nano, sig["grace_deadline"].(string))
	if err != nil || deadline.Before(before.Add(c.Grace)) || deadline.After(time.Now().Add(c.Grace)) {
		t.Errorf("grace_deadline %v (%v): want the signal's time + 3s", sig["grace_deadline"], err)
	}
	cfg, _ := start["config"].(map[string]any)
	if cfg["request_timeout"] != "2s" || cfg["grace"] != "3s" || cfg["flush_interval"] != "1s" {
		t.Errorf("start line's durations %v: want strings (\"2s\", \"3s\", \"1s\")", cfg)
	}
}
