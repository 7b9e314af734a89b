package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/reconcile/reconcile/internal/livesim"
)

// SimConfig configures `reconcile simulate`.
type SimConfig struct {
	// Listen is the address to listen on; port 0 picks a free one.
	Listen string
	// AddrFile, when set, receives the bound http://host:port once listening.
	AddrFile string
	Options  livesim.Options
}

// Simulate serves the Live API simulator until ctx is done. It logs the
// address it listens on, and writes it to c.AddrFile when set.
func Simulate(ctx context.Context, c SimConfig, env Env) error {
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	sim := livesim.New(c.Options)
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()
	if c.AddrFile != "" {
		if err := os.WriteFile(c.AddrFile, []byte(url+"\n"), 0o644); err != nil {
			ln.Close()
			return fmt.Errorf("simulate: writing --addr-file: %w", err)
		}
	}
	env.Logger.Info("simulator listening", "endpoint", url, "limit_per_second", c.Options.Limit, "throttle_counts_rejected", c.Options.ThrottleCountsRejected,
		"latency_median", c.Options.Latency.Median, "latency_p99", c.Options.Latency.P99,
		"faults", fmt.Sprintf("%+v", c.Options.Faults), "seed", c.Options.Seed)
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
