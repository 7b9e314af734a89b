package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
)

// Demo settings.
const (
	// DemoDatabase is the database the demo (re)creates on the server of
	// --database-url. Nothing else on that server is touched.
	DemoDatabase = "reconcile_demo"
	// DemoAccessKeyID and DemoAccessKeySecret are the simulator's key pair.
	DemoAccessKeyID     = "LTAIdemoAccessKeyId"
	DemoAccessKeySecret = "demoSecretNeverLogged0123456789"
)

// DemoConfig configures `reconcile demo`.
type DemoConfig struct {
	DatabaseURL string
	Rows        int
	Rate        float64
	LogFormat   string
	LogLevel    string
}

// Demo recreates DemoDatabase, migrates it, loads c.Rows sample desired rows
// (plus a few invalid ones and one that the simulator already knows),
// serves the simulator on a loopback port, runs one pass against it, prints
// the outcome summary, then a second pass to show that a rerun sends no
// request. The demo's rows are invalid and failed on purpose, so it returns nil
// unless something else went wrong.
func Demo(ctx context.Context, c DemoConfig, env Env) error {
	t, adminCfg, err := ParseTarget(c.DatabaseURL)
	if err != nil {
		return err
	}
	env.Logger.Info("demo: recreating database "+DemoDatabase, "server", t)
	admin, err := pgx.ConnectConfig(ctx, adminCfg)
	if err != nil {
		return fmt.Errorf("connecting to Postgres: %w", err)
	}
	if err := db.RecreateDatabase(ctx, admin, DemoDatabase); err != nil {
		admin.Close(ctx)
		return fmt.Errorf("demo: %w", err)
	}
	admin.Close(ctx)
	url, err := db.WithDatabase(c.DatabaseURL, DemoDatabase)
	if err != nil {
		return fmt.Errorf("%w: --database-url: %s", config.ErrUsage, redactURL(err))
	}
	if err := Migrate(ctx, url, env); err != nil {
		return err
	}
	if err := loadDemoRows(ctx, url, c.Rows); err != nil {
		return err
	}

	sim := livesim.New(livesim.Options{
		AccessKeyID: DemoAccessKeyID, AccessKeySecret: DemoAccessKeySecret, Limit: 30, Seed: 1,
		Latency:     livesim.Latency{Median: 40 * time.Millisecond, P99: 400 * time.Millisecond},
		Faults:      livesim.Faults{ServerError: 0.03, Reset: 0.01},
		ForceErrors: map[string]livesim.ForcedError{"gone.demo.example.com": {Status: 400, Code: "InvalidDomain.NotFound", Message: "The domain does not exist."}},
	})
	sim.PutConfig("existing.demo.example.com", livesim.Config{DomainName: "existing.demo.example.com", NotifyURL: "https://hooks.example.com/old"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer func() { sim.Close(); srv.Close() }()

	rc := config.DefaultRun()
	rc.DatabaseURL = url
	rc.Endpoint = "http://" + ln.Addr().String()
	rc.Rate = c.Rate
	rc.ProgressInterval = 2 * time.Second
	rc.BackoffBase = 50 * time.Millisecond
	rc.LogFormat, rc.LogLevel = c.LogFormat, c.LogLevel
	if err := rc.Validate(); err != nil {
		return err
	}
	env.Credentials = live.StaticCredentials(DemoAccessKeyID, DemoAccessKeySecret, "")
	env.Redactor.Add(DemoAccessKeySecret)

	fmt.Fprintf(env.Stdout, "== demo: %d desired rows in database %q, simulator at %s (limit 30/s), --rate %v\n",
		c.Rows+4, DemoDatabase, rc.Endpoint, rc.Rate)
	first := Run(ctx, rc, env)
	if first != nil && !errors.Is(first, ErrNotDone) {
		return first
	}
	if err := printDemoSummary(ctx, url, env, sim); err != nil {
		return err
	}
	before := sim.Stats().Total
	fmt.Fprintln(env.Stdout, "\n== rerun: done rows are not sent again (invalid rows stay invalid until edited)")
	second := Run(ctx, rc, env)
	if second != nil && !errors.Is(second, ErrNotDone) {
		return second
	}
	fmt.Fprintf(env.Stdout, "requests sent by the rerun: %d (failed rows are retried; done and unchanged invalid rows are not)\n",
		sim.Stats().Total-before)
	fmt.Fprintf(env.Stdout, "\nexplore: psql %q -c 'select * from snapshot_callback_status order by outcome, domain_name'\n", safeDatabaseURL(url))
	if second != nil {
		// The demo's invalid and failed rows are there on purpose.
		fmt.Fprintf(env.Stdout, "(a real run would exit 1 here: %v)\n", second)
	}
	return nil
}

func loadDemoRows(ctx context.Context, url string, n int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows := make([][]any, 0, n+4)
	for i := 0; i < n; i++ {
		var key any
		auth := i%3 == 0
		if auth {
			key = fmt.Sprintf("demoKey%09dX", i) // 17 letters and digits
		}
		rows = append(rows, []any{fmt.Sprintf("live%04d.demo.example.com", i),
			fmt.Sprintf("https://hooks.example.com/snapshot/%d", i), auth, key, nil})
	}
	rows = append(rows,
		[]any{"existing.demo.example.com", "https://hooks.example.com/snapshot/existing", false, nil, nil},
		[]any{"gone.demo.example.com", "https://hooks.example.com/snapshot/gone", false, nil, nil},
		[]any{"badurl.demo.example.com", "ftp://hooks.example.com/x", false, nil, nil},
		[]any{"shortkey.demo.example.com", "https://hooks.example.com/x", true, "tooShort", "cn-beijing"},
	)
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"desired_snapshot_callbacks"},
		[]string{"domain_name", "notify_url", "notify_req_auth", "notify_auth_key", "region_id"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("demo: loading rows: %w", err)
	}
	return nil
}

func printDemoSummary(ctx context.Context, url string, env Env, sim *livesim.Server) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	run, err := db.LatestRun(ctx, conn)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "\n== run %d: %s in %s, %d requests (%d throttled)\n", run.ID, run.Status,
		run.FinishedAt.Sub(run.StartedAt).Round(time.Millisecond), run.Counts.Requests, run.Counts.Throttled)
	groups, err := db.StatusSummary(ctx, conn)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "outcome\trows\terror code (first)\texample domain")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", g.Outcome, g.Rows, g.FirstCode, g.ExampleDomain)
	}
	tw.Flush()
	msgs, err := db.NotDoneSamples(ctx, conn, 5)
	for _, m := range msgs {
		fmt.Fprintf(env.Stdout, "  %s: %s\n", m.Domain, strings.TrimSpace(m.Message))
	}
	st := sim.Stats()
	fmt.Fprintf(env.Stdout, "simulator: %d requests, %d configs, faults injected %v\n", st.Total, len(sim.Configs()), st.ByFault)
	return err
}
