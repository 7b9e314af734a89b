package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/livesim"
)

// SimConfig configures `reconcile simulate`.
type SimConfig struct {
	// Listen is the address to listen on; port 0 picks a free one.
	Listen string
	// AddrFile, when set, receives the bound http://host:port (https://
	// with TLSCAFile) once listening.
	AddrFile string
	// TLSCAFile, when set, makes the simulator serve HTTPS with a new
	// self-signed certificate for the loopback addresses (livesim.
	// SelfSignedCert), written to this file in PEM form: a job trusts it
	// with SSL_CERT_FILE. STS (ram_role_arn accounts) is reached over HTTPS
	// only.
	TLSCAFile string
	Options   livesim.Options
}

// HealthPath is the simulator's health endpoint: GET answers 200 "ok"
// while it serves. Every other request goes to the simulator.
const HealthPath = "/healthz"

// Simulate serves the Live API simulator until ctx is done. It logs the
// address it listens on, and writes it to c.AddrFile when set. GET
// HealthPath answers 200 from the moment it listens.
func Simulate(ctx context.Context, c SimConfig, env Env) error {
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	sim := livesim.New(c.Options)
	srv := &http.Server{Handler: withHealth(sim), ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()
	if c.TLSCAFile != "" {
		cert, pemBytes, err := livesim.SelfSignedCert("127.0.0.1", "::1", "localhost")
		if err == nil {
			err = os.WriteFile(c.TLSCAFile, pemBytes, 0o644)
		}
		if err != nil {
			ln.Close()
			return fmt.Errorf("simulate: --tls-ca-file: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		url = "https://" + strings.TrimPrefix(url, "http://")
	}
	if c.AddrFile != "" {
		if err := os.WriteFile(c.AddrFile, []byte(url+"\n"), 0o644); err != nil {
			ln.Close()
			return fmt.Errorf("simulate: writing --addr-file: %w", err)
		}
	}
	env.Logger.Info("simulator listening", "endpoint", url, "limit_per_second", c.Options.Limit, "throttle_counts_rejected", c.Options.ThrottleCountsRejected,
		"latency_median", c.Options.Latency.Median, "latency_p99", c.Options.Latency.P99,
		"faults", fmt.Sprintf("%+v", c.Options.Faults), "seed", c.Options.Seed,
		"default_account_key", c.Options.AccessKeyID, "accounts", describeSimAccounts(c.Options.Accounts))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sim.Close()
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	st := sim.Stats()
	env.Logger.Info("simulator stopped", "stats", fmt.Sprintf("%+v", st))
	return nil
}

// withHealth answers GET HealthPath itself and passes every other request
// to h unchanged.
func withHealth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == HealthPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "ok\n")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// DefaultHealthcheckTimeout is how long `reconcile healthcheck` waits for
// an answer by default.
const DefaultHealthcheckTimeout = 2 * time.Second

// ErrUnhealthy: the URL Healthcheck probed did not answer 2xx in time.
var ErrUnhealthy = errors.New("unhealthy")

// Healthcheck GETs url and returns nil when it answers 2xx within
// timeout; otherwise an error wrapping ErrUnhealthy that says what
// happened. It follows no redirect and reads at most 4 KiB of the body.
func Healthcheck(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return config.Usagef("healthcheck URL %q: scheme must be http or https", url)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnhealthy, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: %s answered %s", ErrUnhealthy, url, resp.Status)
	}
	return nil
}
