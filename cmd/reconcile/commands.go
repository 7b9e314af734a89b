package main

import (
	"context"
	"flag"

	"github.com/reconcile/reconcile/internal/app"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/logging"
)

// simulate parses the flags of `reconcile simulate` and serves the simulator.
func simulate(ctx context.Context, fs *flag.FlagSet, args []string, env app.Env) error {
	var c app.SimConfig
	var logFormat, logLevel string
	o := &c.Options
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8787", "address to listen on (port 0: any free port)")
	fs.StringVar(&c.AddrFile, "addr-file", "", "write the bound http://host:port to this file")
	fs.StringVar(&o.AccessKeyID, "access-key-id", "", "the accepted AccessKey id (env RECONCILE_ACCESS_KEY_ID)")
	fs.StringVar(&o.AccessKeySecret, "access-key-secret", "", "the accepted AccessKey secret (env RECONCILE_ACCESS_KEY_SECRET)")
	fs.IntVar(&o.Limit, "limit", 30, "accepted calls per second per operation (0: unlimited)")
	fs.BoolVar(&o.ThrottleCountsRejected, "throttle-counts-rejected", false, "count throttled requests in the limit's window too (a client over the limit stays throttled)")
	fs.BoolVar(&o.RetryAfterHeader, "retry-after-header", false, "send x-acs-retry-after on throttling answers")
	fs.DurationVar(&o.Latency.Median, "latency-median", 0, "median answer latency (lognormal)")
	fs.DurationVar(&o.Latency.P99, "latency-p99", 0, "99th-percentile answer latency")
	fs.Float64Var(&o.Faults.ServerError, "fault-server-error", 0, "probability of a 500/503 answer")
	fs.Float64Var(&o.Faults.Reset, "fault-reset", 0, "probability of a connection reset (nothing applied)")
	fs.Float64Var(&o.Faults.Hang, "fault-hang", 0, "probability of never answering")
	fs.Float64Var(&o.Faults.LostAnswer, "fault-lost-answer", 0, "probability of applying, then dropping the answer")
	fs.Int64Var(&o.Seed, "seed", 1, "seed of latency and faults")
	config.LogFlags(fs, &logFormat, &logLevel)
	if err := parse(fs, args, env.Stderr, "usage: reconcile simulate [flags]"); err != nil {
		return err
	}
	if err := config.ValidateLog(logFormat, logLevel); err != nil {
		return config.Usagef("%v", err)
	}
	if o.AccessKeyID == "" || o.AccessKeySecret == "" {
		return config.Usagef("simulate needs --access-key-id and --access-key-secret")
	}
	env.Redactor.Add(o.AccessKeySecret)
	env.Logger = logging.New(env.Stderr, logging.Options{Format: logFormat, Level: logLevel, Redactor: env.Redactor})
	return app.Simulate(ctx, c, env)
}

// demo parses the flags of `reconcile demo` and runs it.
func demo(ctx context.Context, fs *flag.FlagSet, args []string, env app.Env) error {
	c := app.DemoConfig{LogFormat: "auto", LogLevel: "info"}
	config.DatabaseFlag(fs, &c.DatabaseURL)
	fs.IntVar(&c.Rows, "rows", 200, "sample desired rows to load")
	fs.Float64Var(&c.Rate, "rate", config.DefaultRate, "requests per second")
	config.LogFlags(fs, &c.LogFormat, &c.LogLevel)
	if err := parse(fs, args, env.Stderr, "usage: reconcile demo [flags]\n(re)creates the database "+app.DemoDatabase+" on the server of --database-url"); err != nil {
		return err
	}
	if err := config.ValidateLog(c.LogFormat, c.LogLevel); err != nil {
		return config.Usagef("%v", err)
	}
	env.Logger = logging.New(env.Stderr, logging.Options{Format: c.LogFormat, Level: c.LogLevel, Redactor: env.Redactor})
	return app.Demo(ctx, c, env)
}
