package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/testdb"
)

// waitFor polls cond every 10 ms until it holds; it fails the test after a
// minute. It synchronises on an observable condition, not on time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// checkNothingLostOrDoubled asserts that every desired row is done, that
// every config the simulator applied has exactly one outcome row per run,
// and that no domain was added twice.
func (h *harness) checkDoneOnce() {
	h.t.Helper()
	if n := h.count(`SELECT count(*) FROM snapshot_callback_status WHERE NOT done OR pending`); n != 0 {
		h.t.Fatalf("%d rows not done", n)
	}
	if n := h.count(`SELECT count(*) FROM (SELECT run_id, domain_name FROM reconcile_outcomes GROUP BY 1, 2 HAVING count(*) > 1) x`); n != 0 {
		h.t.Fatalf("%d (run, domain) pairs with two outcomes", n)
	}
	for d := range h.sim.Configs() {
		if n := h.sim.SuccessfulAdds(d); n > 1 {
			h.t.Fatalf("%s added %d times", d, n)
		}
	}
	// The run counters agree with the outcome rows.
	if n := h.count(`SELECT count(*) FROM reconcile_runs r WHERE r.applied + r.already_exists + r.updated + r.invalid + r.failed
		+ r.drifted + r.in_sync + r.missing + r.deleted <> (SELECT count(*) FROM reconcile_outcomes o WHERE o.run_id = r.id)`); n != 0 {
		h.t.Fatalf("%d runs whose counters disagree with their outcome rows", n)
	}
}

func (h *harness) rows(n int) {
	var rows []row
	for i := 0; i < n; i++ {
		rows = append(rows, row{fmt.Sprintf("pg%04d.example.com", i), goodURL, false, nil, nil})
	}
	h.insert(rows...)
}

// TestPoolConnectionsTerminated: the pool's connections are killed mid-run
// (not the lock's): buffered outcomes are written after reconnecting, the run
// completes, nothing is lost or doubled.
func TestPoolConnectionsTerminated(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{Latency: livesim.Latency{Median: 5 * time.Millisecond}, Seed: 5})
	h.rows(400)
	c := h.config()
	c.Rate, c.FlushInterval, c.FlushSize = 150, 100*time.Millisecond, 20
	errc := make(chan error, 1)
	go func() { errc <- h.run(c, testSecret) }()
	admin := testdb.AdminPool(t)
	for kill := 1; kill <= 3; kill++ {
		waitFor(t, "outcomes", func() bool {
			select {
			case err := <-errc:
				t.Fatalf("run ended early: %v\n%s", err, h.log.String())
			default:
			}
			return h.count(`SELECT count(*) FROM reconcile_outcomes`) >= 100*kill
		})
		var killed int
		err := admin.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = $1 AND application_name = $2`, h.db.Name, ApplicationName).Scan(&killed)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("kill %d: terminated %d connections", kill, killed)
	}
	if err := <-errc; err != nil {
		t.Fatalf("run: %v\n%s", err, h.log.String())
	}
	h.checkDoneOnce()
	if n := h.count(`SELECT count(*) FROM reconcile_outcomes`); n != 400 {
		t.Fatalf("%d outcomes, want 400", n)
	}
}

// TestClaimTakenOver: another run takes the claim over (possible once it
// expired): the run stops dispatching at its next renewal, records why on
// its run row, exits 1; the rerun completes.
func TestClaimTakenOver(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{Latency: livesim.Latency{Median: 5 * time.Millisecond}, Seed: 6})
	h.rows(1500)
	c := h.config()
	c.Rate = 100 // 15 s of work; the claim is renewed every db.RunLeaseRenewInterval
	errc := make(chan error, 1)
	go func() { errc <- h.run(c, testSecret) }()
	waitFor(t, "outcomes", func() bool { return h.count(`SELECT count(*) FROM reconcile_outcomes`) >= 50 })
	h.exec(`UPDATE reconcile_run_lease SET holder = 'another-run', expires_at = now() + interval '1 hour'`)
	err := <-errc
	if !errors.Is(err, apply.ErrLockLost) || !errors.Is(err, db.ErrLeaseLost) || ExitCode(err) != ExitUnavailable {
		t.Fatalf("run = %v (exit %d), want ErrLockLost and db.ErrLeaseLost (exit 6)", err, ExitCode(err))
	}
	sent := len(h.sim.Log())
	if sent >= 1500 {
		t.Fatalf("the run went on after losing its claim: %d requests", sent)
	}
	// Every request the simulator answered has its outcome recorded.
	if n := h.count(`SELECT count(*) FROM reconcile_outcomes`); n != len(h.sim.Configs()) {
		t.Fatalf("%d outcomes for %d applied configs", n, len(h.sim.Configs()))
	}
	run, _ := db.LatestRun(context.Background(), h.db.Pool)
	if run.Status != db.RunFailed || !strings.Contains(run.Note, "took it over") {
		t.Fatalf("run row %+v, want failed with a note saying the claim was taken over", run)
	}
	// The other holder's claim is left alone; once it is gone, a rerun completes.
	if n := h.count(`SELECT count(*) FROM reconcile_run_lease WHERE holder = 'another-run' AND expires_at > now()`); n != 1 {
		t.Fatalf("the loser touched the winner's claim")
	}
	h.exec(`UPDATE reconcile_run_lease SET expires_at = now()`)
	if err := h.run(c, testSecret); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	h.checkDoneOnce()
}

// proxy is a TCP proxy to Postgres that the test can cut, blackhole and
// restore.
type proxy struct {
	t      *testing.T
	target string
	mu     sync.Mutex
	ln     net.Listener
	addr   string
	conns  []net.Conn
	holed  bool
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr, p.holed = ln, ln.Addr().String(), false
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			holed := p.holed
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			if holed {
				continue // accepted, never answered
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			go p.pump(up, c)
			go p.pump(c, up)
		}
	}()
}

// pump forwards src to dst until either ends; while the proxy is
// blackholed it reads and drops: the peers see silence, not a closed
// connection.
func (p *proxy) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		holed := p.holed
		p.mu.Unlock()
		if n > 0 && !holed {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
}

// blackhole stops forwarding on every connection, and new connections are
// accepted but never answered: a network partition, as the job sees it.
func (p *proxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holed = true
}

// cut closes the listener and every proxied connection: Postgres is unreachable.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestDatabaseUnreachable: Postgres goes away mid-run and stays away past
// --db-retry-deadline: the run stops dispatching and exits 6; once it
// is back, a rerun completes with nothing doubled.
func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, livesim.Options{Latency: livesim.Latency{Median: 5 * time.Millisecond}, Seed: 7})
	h.rows(500)
	cc, err := pgx.ParseConfig(h.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Host == "" || cc.Host[0] == '/' {
		t.Skip("the test database is on a unix socket; the proxy needs TCP")
	}
	p := newProxy(t, net.JoinHostPort(cc.Host, fmt.Sprint(cc.Port)))
	u, err := url.Parse(fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", url.UserPassword(cc.User, cc.Password).String(), p.addr, cc.Database))
	if err != nil {
		t.Fatal(err)
	}
	c := h.config()
	c.DatabaseURL = u.String()
	c.Rate, c.DBRetryDeadline = 100, 2*time.Second
	errc := make(chan error, 1)
	go func() { errc <- h.run(c, testSecret) }()
	waitFor(t, "outcomes", func() bool { return h.count(`SELECT count(*) FROM reconcile_outcomes`) >= 50 })
	p.cut()
	err = <-errc
	if ExitCode(err) != ExitUnavailable {
		t.Fatalf("run = %v (exit %d), want exit %d (infrastructure)", err, ExitCode(err), ExitUnavailable)
	}
	if len(h.sim.Log()) >= 500 {
		t.Fatalf("the run went on without its database: %d requests", len(h.sim.Log()))
	}
	t.Logf("run stopped with: %v", err)
	p.listen(p.addr) // Postgres is back
	// The stopped run could not release its claim (no database): it expires
	// db.RunLeaseTTL after its last renewal; expire it as that time would.
	h.exec(`UPDATE reconcile_run_lease SET expires_at = now()`)
	if err := h.run(c, testSecret); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	h.checkDoneOnce()
}
