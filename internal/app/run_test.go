package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/logging"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestMain(m *testing.M) {
	// STS is reached over HTTPS only (credentials-go builds https://
	// URLs), verified against the system roots: trust the simulator's STS
	// certificate before anything loads them.
	dir, err := os.MkdirTemp("", "reconcile-app-sts")
	if err != nil {
		panic(err)
	}
	if stsCert, err = livesim.TrustLoopbackCert(dir); err != nil {
		panic(err)
	}
	testdb.Main(m) // exits: dir is left for the system's temp cleaning
}

// stsCert is the certificate SSL_CERT_FILE trusts (TestMain).
var stsCert tls.Certificate

const (
	testKeyID  = "LTAItestKeyId"
	testSecret = "testSecretValue/With+Symbols=="
)

// harness is one test's database, simulator and log.
type harness struct {
	t   *testing.T
	db  *testdb.DB
	sim *livesim.Server
	url string
	log *testutil.Buffer
	red *logging.Redactor
}

func newHarness(t *testing.T, so livesim.Options) *harness {
	t.Helper()
	so.AccessKeyID, so.AccessKeySecret = testKeyID, testSecret
	sim := livesim.New(so)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	return &harness{t: t, db: testdb.New(t), sim: sim, url: srv.URL, log: &testutil.Buffer{}, red: logging.NewRedactor()}
}

// config returns a fast run configuration against the simulator.
func (h *harness) config() config.Run {
	c := config.DefaultRun()
	c.DatabaseURL = h.db.URL
	c.Endpoint = h.url
	c.Rate = 500
	c.AllowRateAboveLimit = true
	c.BackoffBase = 5 * time.Millisecond
	c.BackoffMax = 50 * time.Millisecond
	c.RequestTimeout = 2 * time.Second
	c.LogFormat = "json"
	c.LogLevel = "debug"
	if err := c.Validate(); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) run(c config.Run, secret string) error {
	h.t.Helper()
	env := Env{Stdout: h.log, Stderr: h.log, Redactor: h.red,
		Logger:      logging.New(h.log, logging.Options{Format: "json", Level: c.LogLevel, Redactor: h.red}),
		Credentials: live.StaticCredentials(testKeyID, secret, "")}
	return Run(context.Background(), c, env)
}

type row struct {
	domain, url string
	auth        bool
	key         any
	region      any
}

func (h *harness) insert(rows ...row) {
	h.t.Helper()
	src := make([][]any, len(rows))
	for i, r := range rows {
		src[i] = []any{r.domain, r.url, r.auth, r.key, r.region}
	}
	_, err := h.db.Pool.CopyFrom(context.Background(), pgx.Identifier{"desired_snapshot_callbacks"},
		[]string{"domain_name", "notify_url", "notify_req_auth", "notify_auth_key", "region_id"}, pgx.CopyFromRows(src))
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.db.Pool.Exec(context.Background(), sql, args...); err != nil {
		h.t.Fatal(err)
	}
}

type outcomeRow struct {
	Outcome, Code, Message, RequestID string
	Status, Attempts                  int
	Pending                           bool
}

// latest returns the latest outcome of each domain, from the status view
// and the outcome table.
func (h *harness) latest() map[string]outcomeRow {
	h.t.Helper()
	rows, err := h.db.Pool.Query(context.Background(), `
		SELECT s.domain_name, coalesce(s.outcome, ''), coalesce(o.error_code, ''), coalesce(o.error_message, ''),
		       coalesce(o.request_id, ''), coalesce(o.http_status, 0), coalesce(o.attempts, 0), s.pending
		FROM snapshot_callback_status s
		LEFT JOIN LATERAL (SELECT * FROM reconcile_outcomes o WHERE o.domain_name = s.domain_name
		                   ORDER BY o.id DESC LIMIT 1) o ON true`)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]outcomeRow{}
	var d string
	var o outcomeRow
	_, err = pgx.ForEachRow(rows, []any{&d, &o.Outcome, &o.Code, &o.Message, &o.RequestID, &o.Status, &o.Attempts, &o.Pending}, func() error {
		out[d] = o
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

const goodURL = "https://hooks.example.com/snap"

func TestOutcomeClasses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{Seed: 1, ForceErrors: map[string]livesim.ForcedError{
		"malformed.example.com": {Status: 400, Code: "MalformedParam", Message: "NotifyUrl is malformed."},
		"flaky.example.com":     {Status: 503, Code: "ServiceUnavailable", Message: "try later", Times: 2},
		"down.example.com":      {Status: 500, Code: "InternalError", Message: "boom"},
		"throttled.example.com": {Status: 400, Code: "Throttling.User", Message: "Request was denied due to user flow control.", Times: 1},
	}})
	h.sim.PutConfig("exists.example.com", livesim.Config{NotifyURL: "https://old.example.com/"})
	h.insert(
		row{"new.example.com", goodURL, false, nil, nil},
		row{"auth.example.com", goodURL, true, "abcdEFGH12345678", "cn-beijing"},
		row{"exists.example.com", goodURL, false, nil, nil},
		row{"malformed.example.com", goodURL, false, nil, nil},
		row{"flaky.example.com", goodURL, false, nil, nil},
		row{"down.example.com", goodURL, false, nil, nil},
		row{"throttled.example.com", goodURL, false, nil, nil},
		row{"bad.example.com", "ftp://x", false, nil, nil},
	)
	c := h.config()
	c.MaxAttempts = 4
	err := h.run(c, testSecret)
	if !errors.Is(err, ErrNotDone) || ExitCode(err) != 1 {
		t.Fatalf("run = %v (exit %d), want ErrNotDone (exit 1)", err, ExitCode(err))
	}
	got := h.latest()
	want := map[string]struct {
		outcome, code string
		status        int
		attempts      int
	}{
		"new.example.com":       {"applied", "", 200, 1},
		"auth.example.com":      {"applied", "", 200, 1},
		"exists.example.com":    {"already_exists", "ConfigAlreadyExists", 409, 1},
		"malformed.example.com": {"failed", "MalformedParam", 400, 1},
		"flaky.example.com":     {"applied", "", 200, 3},
		"down.example.com":      {"failed", "InternalError", 500, 4},
		"throttled.example.com": {"applied", "", 200, 2},
		"bad.example.com":       {"invalid", "Invalid.notify_url", 0, 0},
	}
	for d, w := range want {
		g := got[d]
		if g.Outcome != w.outcome || g.Code != w.code || g.Status != w.status || g.Attempts != w.attempts {
			t.Errorf("%s: got %+v, want outcome %s code %q status %d attempts %d", d, g, w.outcome, w.code, w.status, w.attempts)
		}
		if w.status != 0 && !strings.HasPrefix(g.RequestID, "") || w.status != 0 && g.RequestID == "" {
			t.Errorf("%s: no RequestId recorded", d)
		}
	}
	if cfg, ok := h.sim.Config("auth.example.com"); !ok || !cfg.ReqAuth || cfg.AuthKey != "abcdEFGH12345678" {
		t.Errorf("simulator config of auth.example.com = %+v, %v", cfg, ok)
	}
	if !strings.Contains(got["bad.example.com"].Message, "notify_url") {
		t.Errorf("invalid message %q does not name the field", got["bad.example.com"].Message)
	}
	run, err := db.LatestRun(context.Background(), h.db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != db.RunSucceeded || run.Counts.Applied != 4 || run.Counts.AlreadyExists != 1 ||
		run.Counts.Failed != 2 || run.Counts.Invalid != 1 || run.Counts.Throttled != 1 || run.FinishedAt.IsZero() {
		t.Errorf("run row = %+v", run)
	}
	if int(run.Counts.Requests) != len(h.sim.Log()) {
		t.Errorf("run counted %d requests, simulator saw %d", run.Counts.Requests, len(h.sim.Log()))
	}
}

func TestInvalidRowsSendNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	long := "https://h.example.com/" + strings.Repeat("a", 501-22)
	h.insert(
		row{"empty-url.example.com", "", false, nil, nil},
		row{"long-url.example.com", long, false, nil, nil},
		row{"ftp.example.com", "ftp://h.example.com/", false, nil, nil},
		row{"js.example.com", "javascript:alert(1)", false, nil, nil},
		row{"key15.example.com", goodURL, true, strings.Repeat("k", 15), nil},
		row{"key33.example.com", goodURL, true, strings.Repeat("k", 33), nil},
		row{"nonalnum.example.com", goodURL, true, "abcdEFGH1234567!", nil},
		row{"nokey.example.com", goodURL, true, nil, nil},
		row{"UPPER.example.com", goodURL, false, nil, nil},
		row{"odd_domain.example.com", goodURL, false, nil, nil},
		row{"nodot", goodURL, false, nil, nil},
	)
	err := h.run(h.config(), testSecret)
	if ExitCode(err) != 1 {
		t.Fatalf("run = %v, want exit 1", err)
	}
	if n := len(h.sim.Log()); n != 0 {
		t.Fatalf("simulator got %d requests for invalid rows, want 0", n)
	}
	fields := map[string]string{
		"empty-url.example.com": "notify_url: is empty", "long-url.example.com": "notify_url: is longer than 500 characters (501)",
		"ftp.example.com": "notify_url: has scheme", "js.example.com": "notify_url: has scheme",
		"key15.example.com": "notify_auth_key: must be 16 to 32", "key33.example.com": "notify_auth_key: must be 16 to 32",
		"nonalnum.example.com": "notify_auth_key: must contain only letters and digits",
		"nokey.example.com":    "notify_auth_key: required", "UPPER.example.com": "domain_name: contains upper-case",
		"odd_domain.example.com": "domain_name: label", "nodot": "domain_name: needs at least two labels",
	}
	got := h.latest()
	for d, msg := range fields {
		if g := got[d]; g.Outcome != "invalid" || !strings.Contains(g.Message, msg) || g.Pending {
			t.Errorf("%s: got %+v, want invalid with %q, not pending", d, g, msg)
		}
	}
	// A rerun counts them without sending or recording anything.
	before := h.countOutcomes()
	if err := h.run(h.config(), testSecret); ExitCode(err) != 1 {
		t.Fatalf("rerun = %v, want exit 1 (rows still invalid)", err)
	}
	if after := h.countOutcomes(); after != before {
		t.Fatalf("rerun recorded %d new outcomes for unchanged invalid rows", after-before)
	}
	run, _ := db.LatestRun(context.Background(), h.db.Pool)
	if run.Counts.InvalidUnchanged != int64(len(fields)) {
		t.Fatalf("rerun invalid_unchanged = %d, want %d", run.Counts.InvalidUnchanged, len(fields))
	}
	// Fixing a row makes it pending again, and it is sent.
	h.exec(`UPDATE desired_snapshot_callbacks SET notify_url = $1 WHERE domain_name = 'ftp.example.com'`, goodURL)
	_ = h.run(h.config(), testSecret)
	if g := h.latest()["ftp.example.com"]; g.Outcome != "applied" {
		t.Fatalf("fixed row: %+v, want applied", g)
	}
}

func (h *harness) countOutcomes() int {
	var n int
	if err := h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM reconcile_outcomes`).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestRerunAndUpdate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	var rows []row
	for i := 0; i < 50; i++ {
		rows = append(rows, row{fmt.Sprintf("d%02d.example.com", i), goodURL, false, nil, nil})
	}
	h.insert(rows...)
	if err := h.run(h.config(), testSecret); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if n := len(h.sim.Log()); n != 50 {
		t.Fatalf("first run sent %d requests, want 50", n)
	}
	if err := h.run(h.config(), testSecret); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if n := len(h.sim.Log()); n != 50 {
		t.Fatalf("rerun after a clean run sent %d requests, want 0", n-50)
	}
	// Change two rows: they are sent again, as Update.
	h.exec(`UPDATE desired_snapshot_callbacks SET notify_url = 'https://new.example.com/x', updated_at = now()
		WHERE domain_name IN ('d03.example.com', 'd07.example.com')`)
	h.exec(`UPDATE desired_snapshot_callbacks SET notify_req_auth = true, notify_auth_key = 'rotatedKey123456789'
		WHERE domain_name = 'd09.example.com'`)
	if err := h.run(h.config(), testSecret); err != nil {
		t.Fatalf("run after change: %v", err)
	}
	log := h.sim.Log()[50:]
	if len(log) != 3 {
		t.Fatalf("run after change sent %d requests, want 3", len(log))
	}
	for _, e := range log {
		if e.Action != "UpdateLiveSnapshotNotifyConfig" {
			t.Errorf("changed row %s sent as %s, want Update", e.Domain, e.Action)
		}
	}
	got := h.latest()
	for _, d := range []string{"d03.example.com", "d07.example.com", "d09.example.com"} {
		if got[d].Outcome != "updated" {
			t.Errorf("%s: %+v, want updated", d, got[d])
		}
	}
	if cfg, _ := h.sim.Config("d03.example.com"); cfg.NotifyURL != "https://new.example.com/x" {
		t.Errorf("simulator has %q for d03", cfg.NotifyURL)
	}
	if cfg, _ := h.sim.Config("d09.example.com"); !cfg.ReqAuth || cfg.AuthKey != "rotatedKey123456789" {
		t.Errorf("simulator has %+v for d09", cfg)
	}

	// The config was deleted outside the job: Update answers ConfigNotFound,
	// the job falls back to Add.
	client, err := live.New(context.Background(), live.Options{Endpoint: h.url, Region: "cn-shanghai",
		Credentials: live.StaticCredentials(testKeyID, testSecret, "")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Delete(context.Background(), "d11.example.com", ""); err != nil {
		t.Fatal(err)
	}
	h.exec(`UPDATE desired_snapshot_callbacks SET notify_url = 'https://other.example.com/' WHERE domain_name = 'd11.example.com'`)
	n := len(h.sim.Log())
	if err := h.run(h.config(), testSecret); err != nil {
		t.Fatalf("run after delete: %v", err)
	}
	var actions []string
	for _, e := range h.sim.Log()[n:] {
		actions = append(actions, e.Action+":"+e.Code)
	}
	if want := "UpdateLiveSnapshotNotifyConfig:ConfigNotFound AddLiveSnapshotNotifyConfig:"; strings.Join(actions, " ") != want {
		t.Fatalf("requests = %v, want %s", actions, want)
	}
	if g := h.latest()["d11.example.com"]; g.Outcome != "applied" || g.Attempts != 2 {
		t.Fatalf("d11: %+v, want applied after 2 attempts", g)
	}
}

func TestRateBound(t *testing.T) {
	// The simulator throttles above 20/s, so any excess would also show up
	// as throttled requests; the bound is checked on its arrival times.
	h := newHarness(t, livesim.Options{Limit: 20, Latency: livesim.Latency{Median: 30 * time.Millisecond, P99: 200 * time.Millisecond}, Seed: 3,
		Faults: livesim.Faults{ServerError: 0.1}})
	var rows []row
	for i := 0; i < 70; i++ {
		rows = append(rows, row{fmt.Sprintf("r%03d.example.com", i), goodURL, false, nil, nil})
	}
	h.insert(rows...)
	c := h.config()
	c.Rate, c.AllowRateAboveLimit = 20, false
	if err := h.run(c, testSecret); err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := h.sim.MaxInWindow(time.Second); got > 20 {
		t.Fatalf("simulator saw %d requests in one 1-second window, want <= 20", got)
	}
	if st := h.sim.Stats(); st.Throttled != 0 {
		t.Fatalf("simulator throttled %d requests", st.Throttled)
	}
	if st := h.sim.Stats(); st.Total <= 70 {
		t.Fatalf("expected retries of the injected 5xx to count too; total %d", st.Total)
	}
}

func forbidAll(n int) map[string]livesim.ForcedError {
	m := make(map[string]livesim.ForcedError, n)
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("c%03d.example.com", i)] = livesim.ForcedError{Status: 403, Code: "Forbidden.RAM", Message: "not authorized"}
	}
	return m
}

func TestCredentialsStopTheRun(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		secret string
		force  map[string]livesim.ForcedError
	}{
		{"wrong secret", "notTheSecret", nil},
		// Every domain is refused (a RAM policy without the action): which
		// row the pool sends first is up to the scheduler.
		{"forbidden", testSecret, forbidAll(300)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, livesim.Options{ForceErrors: tt.force})
			var rows []row
			for i := 0; i < 300; i++ {
				rows = append(rows, row{fmt.Sprintf("c%03d.example.com", i), goodURL, false, nil, nil})
			}
			h.insert(rows...)
			c := h.config()
			c.Rate = 10 // the contract's scale (25/s), with room for a slow answer on a busy CI machine
			err := h.run(c, tt.secret)
			if !errors.Is(err, apply.ErrCredentials) || ExitCode(err) != 2 {
				t.Fatalf("run = %v (exit %d), want ErrCredentials (exit 2)", err, ExitCode(err))
			}
			// At 10/s one request is released every 100 ms, and the answer
			// comes back from loopback long before; allow a handful. A
			// permission refusal stops the run once PermissionStopDomains
			// distinct domains were refused and none allowed.
			limit := 5
			if tt.force != nil {
				limit = apply.PermissionStopDomains + 3
			}
			if n := len(h.sim.Log()); n > limit {
				t.Fatalf("simulator got %d requests after credentials were refused, want at most %d", n, limit)
			}
			run, _ := db.LatestRun(context.Background(), h.db.Pool)
			if run.Status != db.RunFailed || !strings.Contains(run.Note, "credentials") {
				t.Fatalf("run row = %+v, want failed with a note on credentials", run)
			}
			if strings.Contains(h.log.String(), testSecret) || strings.Contains(h.log.String(), tt.secret) {
				t.Fatalf("log contains a secret")
			}
		})
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	h.insert(row{"a.example.com", goodURL, false, nil, nil}, row{"b.example.com", "nope", false, nil, nil})
	c := h.config()
	c.DryRun = true
	err := h.run(c, testSecret)
	if ExitCode(err) != ExitPending {
		t.Fatalf("dry run = %v, want exit 5 (rows pending, as plan)", err)
	}
	out := h.log.String()
	if !strings.Contains(out, "add a.example.com\n") || !strings.Contains(out, `invalid row "b.example.com": notify_url`) {
		t.Fatalf("dry run output lacks the plan:\n%s", out)
	}
	if len(h.sim.Log()) != 0 || h.countOutcomes() != 0 {
		t.Fatalf("dry run sent %d requests and wrote %d outcomes", len(h.sim.Log()), h.countOutcomes())
	}
	run, _ := db.LatestRun(context.Background(), h.db.Pool)
	if run.Status != db.RunDryRun {
		t.Fatalf("run status %q, want dry_run", run.Status)
	}
}

func TestSchemaMissingExits2(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	un := testdb.New(t, testdb.Unmigrated())
	c := h.config()
	c.DatabaseURL = un.URL
	err := h.run(c, testSecret)
	if !errors.Is(err, ErrSchema) || ExitCode(err) != 2 {
		t.Fatalf("run = %v, want ErrSchema (exit 2)", err)
	}
	if len(h.sim.Log()) != 0 {
		t.Fatal("requests sent without a schema")
	}
}

func nopLogger(h *harness) *slog.Logger {
	return logging.New(h.log, logging.Options{Format: "json", Level: "debug", Redactor: h.red})
}
