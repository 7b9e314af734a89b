//go:build linux

package testdb

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBouncer pool modes for ThroughPgBouncer.
const (
	PoolTransaction = "transaction"
	PoolSession     = "session"
)

// pgbouncerPaths are where ThroughPgBouncer looks for the binary after PATH
// (Debian's package installs it in /usr/sbin; scripts/pgbouncer-up.sh
// installs it).
var pgbouncerPaths = []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"}

// ThroughPgBouncer starts a PgBouncer process of its own for t, in pool mode
// mode (PoolTransaction or PoolSession), on a free port of 127.0.0.1, in
// front of d's server, and returns a plain connection URL of d through it
// (no query-mode parameter, nothing a user would not write). The pooler
// logs in to the server with the admin credentials (auth_type any), keeps
// PgBouncer's defaults otherwise (no ignore_startup_parameters), and is
// stopped when t ends. It skips t, with the reason, when no pgbouncer
// binary is installed.
func (d *DB) ThroughPgBouncer(t testing.TB, mode string) string {
	t.Helper()
	bin := findPgBouncer()
	if bin == "" {
		t.Skipf("testdb: no pgbouncer binary in PATH or %v (install it: bash scripts/pgbouncer-up.sh)", pgbouncerPaths)
	}
	srv := server(t)
	cc, err := pgx.ParseConfig(srv.adminURL)
	if err != nil {
		t.Fatalf("testdb: pgbouncer: %v", err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	target := fmt.Sprintf("host=%s port=%d user=%s", cc.Host, cc.Port, cc.User)
	if cc.Password != "" {
		target += " password=" + cc.Password
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		ini := filepath.Join(dir, fmt.Sprintf("pgbouncer-%d.ini", port))
		conf := fmt.Sprintf(`[databases]
* = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = %s
max_client_conn = 500
default_pool_size = 40
logfile =
pidfile =
`, target, port, mode)
		if err := os.WriteFile(ini, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := startPgBouncer(t, bin, ini, port); err != nil {
			lastErr = err
			continue
		}
		u := url.URL{Scheme: "postgres", User: url.User(cc.User), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path: "/" + d.Name, RawQuery: "sslmode=disable"}
		return u.String()
	}
	t.Fatalf("testdb: pgbouncer would not start: %v", lastErr)
	return ""
}

func findPgBouncer() string {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	for _, p := range pgbouncerPaths {
		if isExecutable(p) {
			return p
		}
	}
	return ""
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startPgBouncer starts bin and waits for its "listening on" log line (or
// its exit). PgBouncer refuses to run as root: as root it switches to the
// postgres (else nobody) user with -u.
func startPgBouncer(t testing.TB, bin, ini string, port int) error {
	args := []string{ini}
	if os.Geteuid() == 0 {
		name := "postgres"
		if _, err := user.Lookup(name); err != nil {
			name = "nobody"
		}
		args = []string{"-u", name, ini}
	}
	cmd := exec.Command(bin, args...)
	// The pooler dies with the test binary even if cleanup does not run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan struct{})
	exited := make(chan struct{})
	var log strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		want := fmt.Sprintf("listening on 127.0.0.1:%d", port)
		signalled := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), want) {
				signalled = true
				close(ready)
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case <-ready:
	case <-exited:
		<-logDone
		return fmt.Errorf("pgbouncer exited at start:\n%s", log.String())
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		<-logDone
		return fmt.Errorf("pgbouncer did not say it listens within a minute:\n%s", log.String())
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // immediate shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return nil
}
