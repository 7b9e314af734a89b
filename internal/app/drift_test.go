package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/testutil"
)

// actions returns the simulator's requests from index n on, as "Action domain".
func (h *harness) actions(n int) []string {
	var out []string
	for _, e := range h.sim.Log()[n:] {
		out = append(out, strings.TrimSuffix(e.Action, "LiveSnapshotNotifyConfig")+" "+e.Domain)
	}
	return out
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

func (h *harness) client() *live.Client {
	h.t.Helper()
	c, err := live.New(context.Background(), live.Options{Endpoint: h.url, Region: "cn-shanghai",
		Credentials: live.StaticCredentials(testKeyID, testSecret, "")})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func TestVerifyExisting(t *testing.T) {
	t.Parallel()
	for _, fix := range []bool{true, false} {
		t.Run(fmt.Sprintf("fix=%v", fix), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, livesim.Options{})
			h.sim.PutConfig("same.example.com", livesim.Config{NotifyURL: goodURL})
			h.sim.PutConfig("drift.example.com", livesim.Config{NotifyURL: "https://old.example.com/"})
			h.insert(row{"same.example.com", goodURL, false, nil, nil},
				row{"drift.example.com", goodURL, false, nil, nil},
				row{"new.example.com", goodURL, false, nil, nil})
			c := h.config()
			c.VerifyExisting, c.NoFixDrift = true, !fix
			err := h.run(c, testSecret)
			got := h.latest()
			if got["same.example.com"].Outcome != "already_exists" || got["new.example.com"].Outcome != "applied" {
				t.Fatalf("outcomes %+v", got)
			}
			cfg, _ := h.sim.Config("drift.example.com")
			if fix {
				if err != nil || got["drift.example.com"].Outcome != "updated" || cfg.NotifyURL != goodURL {
					t.Fatalf("fix: err %v, drift outcome %+v, simulator URL %q", err, got["drift.example.com"], cfg.NotifyURL)
				}
				return
			}
			d := got["drift.example.com"]
			if ExitCode(err) != 1 || d.Outcome != "drifted" || !d.Pending || !strings.Contains(d.Message, `notify_url is "https://old.example.com/"`) {
				t.Fatalf("no-fix: err %v, drift outcome %+v", err, d)
			}
			if cfg.NotifyURL != "https://old.example.com/" {
				t.Fatalf("--no-fix-drift changed the config to %q", cfg.NotifyURL)
			}
			// Again with --no-fix-drift: described again, not updated.
			n := len(h.sim.Log())
			_ = h.run(c, testSecret)
			if a := h.actions(n); strings.Join(a, ",") != "Describe drift.example.com" {
				t.Fatalf("second --no-fix-drift run sent %v, want one Describe", a)
			}
			// Without the flag, the drifted row is updated.
			c.VerifyExisting, c.NoFixDrift = false, false
			n = len(h.sim.Log())
			if err := h.run(c, testSecret); err != nil {
				t.Fatalf("fixing run: %v", err)
			}
			if a := h.actions(n); strings.Join(a, ",") != "Update drift.example.com" {
				t.Fatalf("fixing run sent %v, want one Update", a)
			}
		})
	}
}

func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	var rows []row
	for i := 0; i < 10; i++ {
		rows = append(rows, row{fmt.Sprintf("v%d.example.com", i), goodURL, i%2 == 0, map[bool]any{true: "verifyKey1234567890", false: nil}[i%2 == 0], nil})
	}
	h.insert(rows...)
	if err := h.run(h.config(), testSecret); err != nil {
		t.Fatal(err)
	}
	// Someone changes one config by hand and deletes another.
	h.sim.PutConfig("v1.example.com", livesim.Config{NotifyURL: "https://elsewhere.example.com/"})
	h.sim.PutConfig("v2.example.com", livesim.Config{NotifyURL: goodURL, ReqAuth: true, AuthKey: "anotherKey12345678"})
	if _, err := h.client().Delete(context.Background(), "v3.example.com", ""); err != nil {
		t.Fatal(err)
	}
	n := len(h.sim.Log())
	env := Env{Stdout: h.log, Stderr: h.log, Redactor: h.red, Logger: nopLogger(h), Credentials: live.StaticCredentials(testKeyID, testSecret, "")}
	err := Verify(context.Background(), h.config(), env)
	if ExitCode(err) != 1 {
		t.Fatalf("verify = %v, want exit 1 (drift found)", err)
	}
	for _, a := range h.actions(n) {
		if !strings.HasPrefix(a, "Describe ") {
			t.Fatalf("verify sent %s: it must change nothing", a)
		}
	}
	if len(h.actions(n)) != 10 {
		t.Fatalf("verify sent %d requests, want 10", len(h.actions(n)))
	}
	got := h.latest()
	want := map[string]string{"v0.example.com": "in_sync", "v1.example.com": "drifted", "v2.example.com": "drifted", "v3.example.com": "missing"}
	for d, o := range want {
		if got[d].Outcome != o {
			t.Errorf("%s: %+v, want %s", d, got[d], o)
		}
	}
	if strings.Contains(got["v2.example.com"].Message, "anotherKey12345678") || !strings.Contains(got["v2.example.com"].Message, "notify_auth_key differs") {
		t.Errorf("drift message %q: want the field named, never the key", got["v2.example.com"].Message)
	}
	run, _ := db.LatestRun(context.Background(), h.db.Pool)
	if run.Kind != db.RunKindVerify || run.Counts.InSync != 7 || run.Counts.Drifted != 2 || run.Counts.Missing != 1 {
		t.Errorf("verify run row %+v", run)
	}
	// The next run repairs: Update for drifted, Add for missing.
	n = len(h.sim.Log())
	if err := h.run(h.config(), testSecret); err != nil {
		t.Fatalf("repairing run: %v", err)
	}
	if a := sorted(h.actions(n)); strings.Join(a, ",") != "Add v3.example.com,Update v1.example.com,Update v2.example.com" {
		t.Fatalf("repairing run sent %v", a)
	}
	for _, d := range []string{"v1.example.com", "v2.example.com", "v3.example.com"} {
		cfg, ok := h.sim.Config(d)
		if !ok || cfg.NotifyURL != goodURL {
			t.Errorf("%s not repaired: %+v", d, cfg)
		}
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{})
	var rows []row
	for i := 0; i < 6; i++ {
		rows = append(rows, row{fmt.Sprintf("p%d.example.com", i), goodURL, false, nil, nil})
	}
	h.insert(rows...)
	if err := h.run(h.config(), testSecret); err != nil {
		t.Fatal(err)
	}
	h.sim.PutConfig("foreign.example.com", livesim.Config{NotifyURL: goodURL}) // not the job's: never pruned
	h.exec(`DELETE FROM desired_snapshot_callbacks WHERE domain_name IN ('p1.example.com', 'p2.example.com', 'p3.example.com')`)

	// Over the limit: refused, nothing deleted.
	c := h.config()
	c.Prune, c.PruneMax = true, 2
	n := len(h.sim.Log())
	err := h.run(c, testSecret)
	if !errors.Is(err, apply.ErrPruneLimit) || ExitCode(err) != 1 || len(h.sim.Log()) != n {
		t.Fatalf("prune over the limit: err %v, %d requests", err, len(h.sim.Log())-n)
	}
	// Dry run lists them.
	c.PruneMax, c.DryRun = 100, true
	h.log = &testutil.Buffer{}
	_ = h.run(c, testSecret)
	for _, d := range []string{"p1", "p2", "p3"} {
		if !strings.Contains(h.log.String(), "delete "+d+".example.com\n") {
			t.Fatalf("dry run output lacks %s:\n%s", d, h.log.String())
		}
	}
	if len(h.sim.Log()) != n {
		t.Fatal("dry run sent requests")
	}
	// Prune for real.
	c.DryRun = false
	if err := h.run(c, testSecret); err != nil {
		t.Fatalf("prune: %v", err)
	}
	if a := sorted(h.actions(n)); strings.Join(a, ",") != "Delete p1.example.com,Delete p2.example.com,Delete p3.example.com" {
		t.Fatalf("prune sent %v", a)
	}
	for _, d := range []string{"p1.example.com", "p2.example.com", "p3.example.com"} {
		if _, ok := h.sim.Config(d); ok {
			t.Errorf("%s still configured", d)
		}
	}
	if _, ok := h.sim.Config("foreign.example.com"); !ok {
		t.Error("prune deleted a config the job never made")
	}
	var deleted int
	if err := h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM reconcile_outcomes WHERE outcome = 'deleted'`).Scan(&deleted); err != nil || deleted != 3 {
		t.Fatalf("deleted outcomes: %d, %v", deleted, err)
	}
	// Nothing left to prune.
	n = len(h.sim.Log())
	if err := h.run(c, testSecret); err != nil || len(h.sim.Log()) != n {
		t.Fatalf("second prune: %v, %d requests", err, len(h.sim.Log())-n)
	}
}
