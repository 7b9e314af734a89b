package main

import (
	"context"
	"flag"
	"strings"

	"github.com/reconcile/reconcile/internal/app"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/logging"
)

// simulateUsage heads `reconcile simulate -h`.
const simulateUsage = `usage: reconcile simulate [flags]
GET /healthz answers 200 once it listens (reconcile healthcheck URL/healthz).
--access-key-id/--access-key-secret are the key of the account "default"; --accounts-file
declares more accounts, each with its own keys, limit (calls/s per operation) and configs:
  [{"name": "a", "access_key_id": "LTAIa", "access_key_secret": "…", "limit": 30},
   {"name": "b", "access_key_id": "LTAIb", "access_key_secret": "…", "limit": 10, "disabled": true}]
(also "security_token", "throttle_counts_rejected", and "keys": [{"access_key_id", "access_key_secret",
"security_token", "disabled"}] for more keys; an absent limit is --limit; see docs/commands.md)`

// simulate parses the flags of `reconcile simulate` and serves the simulator.
func simulate(ctx context.Context, fs *flag.FlagSet, args []string, env app.Env) error {
	var c app.SimConfig
	var logFormat, logLevel, accountsFile string
	o := &c.Options
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8787", "address to listen on (port 0: any free port)")
	fs.StringVar(&c.AddrFile, "addr-file", "", "write the bound http://host:port to this file")
	fs.StringVar(&c.TLSCAFile, "tls-ca-file", "", "serve HTTPS with a new self-signed certificate for 127.0.0.1, ::1 and localhost, written to this file (trust it with SSL_CERT_FILE): for ram_role_arn accounts, whose STS is HTTPS only")
	fs.StringVar(&o.AccessKeyID, "access-key-id", "", "the accepted AccessKey id, of the account \"default\" (env RECONCILE_ACCESS_KEY_ID)")
	fs.StringVar(&o.AccessKeySecret, "access-key-secret", "", "the accepted AccessKey secret (env RECONCILE_ACCESS_KEY_SECRET)")
	fs.StringVar(&accountsFile, "accounts-file", "", "JSON file of further accounts, each with its own keys, limit and configs (format above)")
	fs.IntVar(&o.Limit, "limit", 30, "accepted calls per second per operation and account (0: unlimited); the default for --accounts-file accounts without a limit")
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
	src, err := parse(fs, args, env, simulateUsage)
	if err != nil {
		return err
	}
	if err := src.ValidateLog(logFormat, logLevel); err != nil {
		return err
	}
	if accountsFile != "" {
		if o.Accounts, err = app.ReadSimAccounts(accountsFile, o.Limit, o.ThrottleCountsRejected); err != nil {
			return err
		}
	}
	switch {
	case len(o.Accounts) == 0 && (o.AccessKeyID == "" || o.AccessKeySecret == ""):
		return config.Usagef("simulate needs --access-key-id and --access-key-secret (or --accounts-file)")
	case (o.AccessKeyID == "") != (o.AccessKeySecret == ""):
		return config.Usagef("simulate needs both --access-key-id and --access-key-secret, or neither with --accounts-file")
	}
	if err := o.Validate(); err != nil {
		return config.Usagef("--accounts-file %s: %s", accountsFile, strings.TrimPrefix(err.Error(), "livesim: "))
	}
	if o.AccessKeySecret != "" {
		env.Redactor.Add(o.AccessKeySecret)
	}
	env.Redactor.Add(app.SimAccountSecrets(o.Accounts)...)
	env.Logger = logging.New(env.Stderr, logging.Options{Format: logFormat, Level: logLevel, Redactor: env.Redactor})
	return app.Simulate(ctx, c, env)
}

// demo parses the flags of `reconcile demo` and runs it.
func demo(ctx context.Context, fs *flag.FlagSet, args []string, env app.Env) error {
	c := app.DemoConfig{Rows: 200, Rate: config.DefaultRate}
	config.DatabaseFlag(fs, &c.DatabaseURL)
	fs.IntVar(&c.Rows, "rows", c.Rows, "sample desired rows to load")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "requests per second")
	config.LogFlags(fs, &c.LogFormat, &c.LogLevel)
	src, err := parse(fs, args, env, "usage: reconcile demo [flags]\n(re)creates the database "+app.DemoDatabase+" on the server of --database-url")
	if err != nil {
		return err
	}
	if err := src.ValidateLog(c.LogFormat, c.LogLevel); err != nil {
		return err
	}
	env.Logger = logging.New(env.Stderr, logging.Options{Format: c.LogFormat, Level: c.LogLevel, Redactor: env.Redactor})
	return app.Demo(ctx, c, env)
}

// healthcheckUsage heads `reconcile healthcheck -h`.
const healthcheckUsage = `usage: reconcile healthcheck [flags] URL
GETs URL; exit 0 when it answers 2xx within --timeout, 1 otherwise (2: bad flags).
For images without a shell or curl, such as this one: a Docker or Compose healthcheck of
reconcile simulate is ["CMD", "/reconcile", "healthcheck", "http://127.0.0.1:8787/healthz"].`

// healthcheck parses `reconcile healthcheck [flags] URL` and probes URL.
func healthcheck(ctx context.Context, fs *flag.FlagSet, args []string, env app.Env) error {
	timeout := app.DefaultHealthcheckTimeout
	fs.DurationVar(&timeout, "timeout", timeout, "how long to wait for the answer")
	config.CommandLineOnly(fs, "timeout")
	urls, err := parseWithArgs(fs, args, env, healthcheckUsage)
	if err != nil {
		return err
	}
	if len(urls) != 1 {
		return config.Usagef("healthcheck takes one URL, got %d arguments", len(urls))
	}
	if timeout <= 0 {
		return config.Usagef("--timeout must be above 0 (got %v)", timeout)
	}
	return app.Healthcheck(ctx, urls[0], timeout)
}
