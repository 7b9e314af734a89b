// Package config parses and validates the configuration of `reconcile run`
// (and the flags it shares with other subcommands). Every flag has an
// environment variable; a flag wins over its variable. A Config is
// validated once, by Parse, before anything touches the network.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/reconcile/reconcile/internal/metrics"
)

// Defaults of the flags of run; docs/configuration.md documents them.
const (
	// DefaultEndpoint is the Live API endpoint that serves every region.
	DefaultEndpoint = "live.aliyuncs.com"
	// DefaultRegion is the RegionId sent when a row has none.
	DefaultRegion = "cn-shanghai"
	// DefaultRate is the default most requests per second, retries included.
	DefaultRate = 25.0
	// APIRateLimit is the API's documented limit per account and operation;
	// a higher --rate needs --allow-rate-above-limit.
	APIRateLimit = 30.0
	// MaxRate is the highest --rate accepted at all: the Gate remembers one
	// send time per request of its 1-second window.
	MaxRate = 100000.0
	// DefaultConcurrency is the default most requests in flight.
	DefaultConcurrency = 32
	// DefaultMaxAttempts is the default attempts per row per run for retryable errors.
	DefaultMaxAttempts = 5
	// DefaultRequestTimeout is the default per-request deadline.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultGrace is how long in-flight requests may finish after SIGTERM/SIGINT.
	DefaultGrace = 20 * time.Second
	// DefaultPageSize is how many pending rows one keyset page reads.
	DefaultPageSize = 1000
	// DefaultFlushInterval is the longest an outcome waits in memory before it is written.
	DefaultFlushInterval = time.Second
	// DefaultFlushSize is how many buffered outcomes trigger a write before the interval.
	DefaultFlushSize = 1000
	// DefaultProgressInterval is how often a progress line is logged.
	DefaultProgressInterval = 10 * time.Second
	// DefaultBackoffBase is the first retry's backoff ceiling (full jitter).
	DefaultBackoffBase = 200 * time.Millisecond
	// DefaultBackoffMax caps any single backoff.
	DefaultBackoffMax = 10 * time.Second
	// DefaultDBRetryDeadline bounds any one database call of run and verify,
	// retries included (connecting at the start, reading pages, writing
	// outcomes, taking the run lock): transient failures are retried and a
	// hanging attempt is cut until then; past it the run stops (exit 6).
	DefaultDBRetryDeadline = 60 * time.Second
	// DefaultPruneMax is the most configs --prune deletes in one run; more
	// candidates than that and it deletes none.
	DefaultPruneMax = 100
	// DefaultMetricsGrouping describes the Pushgateway grouping used when
	// --metrics-grouping is empty: the instance label set to the name of
	// the database the run works on (one group per database, so two
	// deployments never overwrite each other's metrics).
	DefaultMetricsGrouping = metrics.DefaultGroupingLabel + "=<database name>"
	// DefaultBreakerThreshold is the share of failed (5xx, reset) requests
	// among the last BreakerWindow that pauses dispatching.
	DefaultBreakerThreshold = 0.5
)

// ErrUsage marks configuration errors: the caller exits 2 before any API call.
var ErrUsage = errors.New("bad configuration")

// Run is the configuration of `reconcile run`.
type Run struct {
	DatabaseURL         string
	Endpoint            string
	Region              string
	Rate                float64
	AllowRateAboveLimit bool
	// AdaptiveRate cuts the rate when the API throttles and creeps back up.
	AdaptiveRate     bool
	Concurrency      int
	MaxAttempts      int
	RequestTimeout   time.Duration
	Grace            time.Duration
	DryRun           bool
	InsecureEndpoint bool
	// VerifyExisting: on ConfigAlreadyExists, Describe and compare.
	VerifyExisting bool
	// NoFixDrift: with VerifyExisting, record drifted instead of updating.
	NoFixDrift bool
	// Prune deletes the configs of domains no longer desired (at most PruneMax).
	Prune    bool
	PruneMax int64
	// SignatureAlgorithm is "" (the SDK's ACS3-HMAC-SHA256) or "v2" (HMAC-SHA1).
	SignatureAlgorithm string
	PageSize           int
	FlushInterval      time.Duration
	FlushSize          int
	ProgressInterval   time.Duration
	BackoffBase        time.Duration
	BackoffMax         time.Duration
	DBRetryDeadline    time.Duration
	BreakerThreshold   float64
	// PushgatewayURL, when set, receives the run's metrics at its end.
	PushgatewayURL string
	// MetricsGrouping is --metrics-grouping: "name=value,..." grouping
	// labels of the pushed metrics; "" means DefaultMetricsGrouping.
	MetricsGrouping string
	// LogFormat is "auto" (text on a terminal, JSON otherwise), "json" or "text".
	LogFormat string
	LogLevel  string
}

// envName is the variable of a flag: DATABASE_URL for --database-url,
// RECONCILE_<NAME> for the others.
func envName(flagName string) string {
	if flagName == "database-url" {
		return "DATABASE_URL"
	}
	return "RECONCILE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// RunFlags defines the flags of `run` on fs, writing into c (initialised to
// the defaults). Other subcommands reuse the subset they need.
func RunFlags(fs *flag.FlagSet, c *Run) {
	*c = Run{
		Endpoint: DefaultEndpoint, Region: DefaultRegion, Rate: DefaultRate,
		Concurrency: DefaultConcurrency, MaxAttempts: DefaultMaxAttempts,
		RequestTimeout: DefaultRequestTimeout, Grace: DefaultGrace, PageSize: DefaultPageSize,
		FlushInterval: DefaultFlushInterval, FlushSize: DefaultFlushSize,
		ProgressInterval: DefaultProgressInterval, BackoffBase: DefaultBackoffBase,
		BackoffMax: DefaultBackoffMax, DBRetryDeadline: DefaultDBRetryDeadline,
		BreakerThreshold: DefaultBreakerThreshold, AdaptiveRate: true,
		LogFormat: "auto", LogLevel: "info", PruneMax: DefaultPruneMax,
	}
	DatabaseFlag(fs, &c.DatabaseURL)
	fs.StringVar(&c.Endpoint, "endpoint", c.Endpoint, "API endpoint: a host name (HTTPS) or a full http(s)://host:port URL")
	fs.StringVar(&c.Region, "region", c.Region, "RegionId sent when a row has none")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "most API requests per second, retries included, over any 1-second window")
	fs.BoolVar(&c.AllowRateAboveLimit, "allow-rate-above-limit", false, "allow --rate above the API's 30 calls/s (simulators, raised quotas)")
	fs.BoolVar(&c.AdaptiveRate, "adaptive-rate", c.AdaptiveRate, "cut the rate when the API throttles, then creep back up to --rate")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "most requests in flight at once")
	fs.IntVar(&c.MaxAttempts, "max-attempts", c.MaxAttempts, "attempts per row per run for retryable errors")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "per-request deadline")
	fs.DurationVar(&c.Grace, "grace", c.Grace, "after SIGTERM/SIGINT: how long in-flight requests may finish")
	fs.BoolVar(&c.DryRun, "dry-run", false, "validate and classify pending rows, print what would be called, call nothing")
	fs.BoolVar(&c.VerifyExisting, "verify-existing", false, "on ConfigAlreadyExists, Describe the config and Update it when it differs")
	fs.BoolVar(&c.NoFixDrift, "no-fix-drift", false, "with --verify-existing: record drifted instead of updating (implies --verify-existing)")
	fs.BoolVar(&c.Prune, "prune", false, "delete the configs of domains this job configured that are no longer desired")
	fs.Int64Var(&c.PruneMax, "prune-max", c.PruneMax, "most configs --prune deletes in one run; with more candidates it deletes none")
	fs.BoolVar(&c.InsecureEndpoint, "insecure-endpoint", false, "allow a plain http:// endpoint that is not loopback")
	fs.StringVar(&c.SignatureAlgorithm, "signature-algorithm", "", `request signature: "" (ACS3-HMAC-SHA256) or "v2" (legacy HMAC-SHA1)`)
	fs.IntVar(&c.PageSize, "page-size", c.PageSize, "pending rows read per keyset page")
	fs.DurationVar(&c.FlushInterval, "flush-interval", c.FlushInterval, "longest an outcome waits before it is written")
	fs.IntVar(&c.FlushSize, "flush-size", c.FlushSize, "buffered outcomes that trigger a write")
	fs.DurationVar(&c.ProgressInterval, "progress-interval", c.ProgressInterval, "how often a progress line is logged")
	fs.DurationVar(&c.BackoffBase, "backoff-base", c.BackoffBase, "first retry's backoff ceiling (exponential, full jitter)")
	fs.DurationVar(&c.BackoffMax, "backoff-max", c.BackoffMax, "cap of any one backoff")
	fs.DurationVar(&c.DBRetryDeadline, "db-retry-deadline", c.DBRetryDeadline, "longest any one database call may take, retries included (then exit 6)")
	fs.Float64Var(&c.BreakerThreshold, "breaker-threshold", c.BreakerThreshold, "share (0-1) of 5xx/reset answers among the last 100 requests that pauses dispatching")
	fs.StringVar(&c.PushgatewayURL, "pushgateway-url", "", "Prometheus Pushgateway to push the run's metrics to at its end")
	fs.StringVar(&c.MetricsGrouping, "metrics-grouping", "", "Pushgateway grouping labels name=value,... (default "+DefaultMetricsGrouping+"): one group per deployment")
	LogFlags(fs, &c.LogFormat, &c.LogLevel)
}

// DefaultRun returns a Run holding every default.
func DefaultRun() Run {
	var c Run
	RunFlags(flag.NewFlagSet("defaults", flag.ContinueOnError), &c)
	return c
}

// DatabaseFlag defines --database-url (env DATABASE_URL).
func DatabaseFlag(fs *flag.FlagSet, dst *string) {
	fs.StringVar(dst, "database-url", "", "Postgres connection string (URL or key=value); default: libpq PG* variables")
}

// LogFlags defines --log-format and --log-level.
func LogFlags(fs *flag.FlagSet, format, level *string) {
	if *format == "" {
		*format = "auto"
	}
	if *level == "" {
		*level = "info"
	}
	fs.StringVar(format, "log-format", *format, "auto (text on a terminal, JSON otherwise), json or text")
	fs.StringVar(level, "log-level", *level, "debug, info, warn or error")
}

// commandLineOnly ends the usage of flags that have no environment variable.
const commandLineOnly = " (command line only: no environment variable)"

// CommandLineOnly marks flags of fs that Parse must not take from the
// environment: per-invocation switches such as import's --replace, which a
// stray variable in a CronJob's environment must never turn on.
func CommandLineOnly(fs *flag.FlagSet, names ...string) {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && !strings.HasSuffix(f.Usage, commandLineOnly) {
			f.Usage += commandLineOnly
		}
	}
}

// Parse applies the environment (lookup, usually os.LookupEnv) and then args
// to fs: a flag given on the command line wins over its variable. Errors
// wrap ErrUsage and name the flag or variable.
func Parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	fs.SetOutput(io.Discard)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil {
			return
		}
		if strings.HasSuffix(f.Usage, commandLineOnly) {
			return
		}
		name := envName(f.Name)
		if v, ok := lookup(name); ok && v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%w: %s=%q: %v", ErrUsage, name, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	return nil
}

// Usage writes fs's flags with their variables to w.
func Usage(w io.Writer, fs *flag.FlagSet, head string) {
	fmt.Fprintln(w, head)
	fs.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		env := "env " + envName(f.Name) + ", "
		if strings.HasSuffix(f.Usage, commandLineOnly) {
			env = ""
		}
		fmt.Fprintf(w, "  --%s (%sdefault %s)\n      %s\n", f.Name, env, def, f.Usage)
	})
}

// Validate checks c once, before any connection or request.
func (c *Run) Validate() error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) || c.Rate > MaxRate {
		add("--rate must be above 0 and at most %v (got %v)", MaxRate, c.Rate)
	} else if c.Rate > APIRateLimit && !c.AllowRateAboveLimit {
		add("--rate %v is above the API's limit of %v calls/s per account; give --allow-rate-above-limit if your quota was raised or you target a simulator", c.Rate, APIRateLimit)
	}
	if c.Concurrency < 1 {
		add("--concurrency must be at least 1 (got %d)", c.Concurrency)
	}
	if c.MaxAttempts < 1 {
		add("--max-attempts must be at least 1 (got %d)", c.MaxAttempts)
	}
	if c.RequestTimeout <= 0 {
		add("--request-timeout must be above 0 (got %v)", c.RequestTimeout)
	}
	if c.Grace < 0 {
		add("--grace must not be negative (got %v)", c.Grace)
	}
	if c.Endpoint == "" {
		add("--endpoint is empty")
	}
	if c.Region == "" {
		add("--region is empty")
	}
	if c.SignatureAlgorithm != "" && c.SignatureAlgorithm != "v2" {
		add(`--signature-algorithm must be "" or "v2" (got %q)`, c.SignatureAlgorithm)
	}
	if c.PageSize < 1 || c.PageSize > 100000 {
		add("--page-size must be 1 to 100000 (got %d)", c.PageSize)
	}
	if c.FlushInterval <= 0 || c.FlushInterval > time.Second {
		add("--flush-interval must be above 0 and at most 1s (got %v)", c.FlushInterval)
	}
	if c.PruneMax < 0 {
		add("--prune-max must not be negative (got %d)", c.PruneMax)
	}
	if c.FlushSize < 1 {
		add("--flush-size must be at least 1 (got %d)", c.FlushSize)
	}
	if c.ProgressInterval <= 0 {
		add("--progress-interval must be above 0 (got %v)", c.ProgressInterval)
	}
	if c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase {
		add("--backoff-base must be above 0 and at most --backoff-max (got %v, %v)", c.BackoffBase, c.BackoffMax)
	}
	if c.DBRetryDeadline <= 0 {
		add("--db-retry-deadline must be above 0 (got %v)", c.DBRetryDeadline)
	}
	if !(c.BreakerThreshold > 0 && c.BreakerThreshold <= 1) {
		add("--breaker-threshold must be in (0, 1] (got %v)", c.BreakerThreshold)
	}
	if err := ValidateLog(c.LogFormat, c.LogLevel); err != nil {
		errs = append(errs, err.Error())
	}
	if c.PushgatewayURL != "" {
		if err := metrics.ValidateURL(c.PushgatewayURL); err != nil {
			add("--pushgateway-url: %v", err)
		}
	}
	if _, err := metrics.ParseGrouping(c.MetricsGrouping); err != nil {
		add("--metrics-grouping: %v", err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrUsage, strings.Join(errs, "; "))
	}
	if c.NoFixDrift {
		c.VerifyExisting = true
	}
	return nil
}

// ValidateLog checks --log-format and --log-level.
func ValidateLog(format, level string) error {
	switch format {
	case "auto", "json", "text":
	default:
		return fmt.Errorf("--log-format must be auto, json or text (got %q)", format)
	}
	switch level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level must be debug, info, warn or error (got %q)", level)
	}
	return nil
}

// Environ is os.LookupEnv, named for callers that pass it to Parse.
func Environ(name string) (string, bool) { return os.LookupEnv(name) }

// FormatFloat prints a rate without trailing zeros, for logs.
func FormatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// Usagef returns an error wrapping ErrUsage.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...)
}
