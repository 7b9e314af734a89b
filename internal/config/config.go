// Package config parses and validates the configuration of `reconcile run`
// and `reconcile verify` (and the flags they share with other subcommands).
// Every flag has an environment variable; a flag wins over its variable. A
// Config is validated once, by Validate, before anything touches the
// network.
//
// Each default is declared once, as a constant below; DefaultRun is the one
// place that applies them, and the flags' defaults are read from it. The
// flag table of docs/configuration.md is tested against the flags.
package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/reconcile/reconcile/internal/accounts"
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
	// DefaultAdaptiveRate: the rate is cut when the API throttles.
	DefaultAdaptiveRate = true
	// DefaultConcurrency is the default most requests in flight.
	DefaultConcurrency = 32
	// MaxDefaultWorkers caps the default of --workers (Concurrency × the
	// accounts of the run).
	MaxDefaultWorkers = 1024
	// DefaultMaxAttempts is the default attempts per row per run for retryable errors.
	DefaultMaxAttempts = 5
	// DefaultRequestTimeout is the default per-request deadline.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultGrace is how long in-flight requests may finish after SIGTERM/SIGINT.
	DefaultGrace = 20 * time.Second
	// DefaultPageSize is how many pending rows one keyset page reads.
	DefaultPageSize = 1000
	// MaxPageSize is the largest --page-size accepted.
	MaxPageSize = 100000
	// DefaultFlushInterval is the longest an outcome waits in memory before it is written.
	DefaultFlushInterval = time.Second
	// MaxFlushInterval is the largest --flush-interval accepted.
	MaxFlushInterval = time.Second
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
	// DefaultLogFormat is the log format of every command: text on a
	// terminal, JSON lines otherwise.
	DefaultLogFormat = "auto"
	// DefaultLogLevel is the log level of every command.
	DefaultLogLevel = "info"
)

// ErrUsage marks configuration errors: the caller exits 2 before any API call.
var ErrUsage = errors.New("bad configuration")

// Run is the configuration of `reconcile run` and `reconcile verify`.
// DefaultRun returns it with every default; RunFlags binds it to flags.
type Run struct {
	// DatabaseURL is the libpq connection string (--database-url,
	// DATABASE_URL). Defaults to "": libpq's PG* variables.
	DatabaseURL string
	// Client is how the Live API is reached.
	Client
	// Apply is how a pass sends its requests (package apply takes it as is).
	Apply
	// DryRun validates and classifies the pending rows, prints what would be
	// called and calls nothing (--dry-run). Defaults to false.
	DryRun bool
	// DBRetryDeadline is the longest any one database call may take, retries
	// included; past it the run stops with exit 6 (--db-retry-deadline).
	// Defaults to DefaultDBRetryDeadline (60s).
	DBRetryDeadline time.Duration
	// PushgatewayURL, when set, receives the run's metrics at its end
	// (--pushgateway-url). Defaults to "": no push.
	PushgatewayURL string
	// MetricsGrouping is --metrics-grouping: "name=value,..." grouping
	// labels of the pushed metrics. Defaults to "", which means
	// DefaultMetricsGrouping.
	MetricsGrouping string
	// LogFormat is "auto" (text on a terminal, JSON otherwise), "json" or
	// "text" (--log-format). Defaults to DefaultLogFormat ("auto").
	LogFormat string
	// LogLevel is "debug", "info", "warn" or "error" (--log-level). Defaults
	// to DefaultLogLevel ("info").
	LogLevel string
	// Accounts is --accounts: the accounts to work, comma-separated labels
	// ("default" names the default account). Defaults to "": every account
	// with desired rows. See AccountList.
	Accounts string
	// Shard is --shard i/n: work only the accounts whose stable hash
	// (accounts.Hash) modulo n is i. Defaults to "": every account. See
	// ShardSpec.
	Shard string
	// Workers is --workers: the worker pool shared by the accounts of the
	// run. Defaults to 0: Concurrency × the accounts worked, at most
	// MaxDefaultWorkers. Each account holds at most min(Concurrency,
	// Workers / accounts still working, rounded down, at least 1) of them.
	Workers int
}

// AccountList returns --accounts parsed (see accounts.ParseList): nil for
// every account. c must be validated.
func (c Run) AccountList() []string {
	l, _ := accounts.ParseList(c.Accounts)
	return l
}

// ShardSpec returns --shard parsed (the zero Shard: every account). c must
// be validated.
func (c Run) ShardSpec() accounts.Shard {
	s, _ := accounts.ParseShard(c.Shard)
	return s
}

// WorkersFor returns the size of the worker pool shared by n accounts:
// Workers when set, else Concurrency × n, at most MaxDefaultWorkers (and
// at least Concurrency).
func (c Run) WorkersFor(n int) int {
	if c.Workers > 0 {
		return c.Workers
	}
	return max(c.Concurrency, min(c.Concurrency*max(n, 1), MaxDefaultWorkers))
}

// Client is the part of Run that says how the Live API is reached.
type Client struct {
	// Endpoint is a host name (HTTPS) or a full http(s)://host:port URL
	// (--endpoint). Defaults to DefaultEndpoint ("live.aliyuncs.com").
	Endpoint string
	// RequestTimeout is the deadline of one request (--request-timeout).
	// Defaults to DefaultRequestTimeout (10s).
	RequestTimeout time.Duration
	// InsecureEndpoint allows a plain http:// endpoint that is not loopback
	// (--insecure-endpoint). Defaults to false.
	InsecureEndpoint bool
	// SignatureAlgorithm is "" (the SDK's ACS3-HMAC-SHA256) or "v2"
	// (HMAC-SHA1) (--signature-algorithm). Defaults to "".
	SignatureAlgorithm string
	// STSEndpoint is the STS endpoint that assumes the RAM roles of
	// accounts whose credentials are ram_role_arn (--sts-endpoint): a host
	// name or a full URL. Defaults to "": credentials-go's default
	// (sts.aliyuncs.com).
	STSEndpoint string
}

// Apply is the part of Run that says how a pass sends its requests and
// what it does with the answers. apply.Options embeds it.
type Apply struct {
	// Region is the RegionId sent when a row has none, and the RegionId of
	// prune's Delete calls (--region). Defaults to DefaultRegion
	// ("cn-shanghai").
	Region string
	// Rate is the most requests per second, retries included, over any
	// 1-second window (--rate). Defaults to DefaultRate (25). Above
	// APIRateLimit only with AllowRateAboveLimit; never above MaxRate.
	Rate float64
	// AllowRateAboveLimit allows Rate above APIRateLimit
	// (--allow-rate-above-limit). Defaults to false.
	AllowRateAboveLimit bool
	// AdaptiveRate cuts the rate when the API throttles and creeps back up
	// to Rate (--adaptive-rate). Defaults to DefaultAdaptiveRate (true).
	AdaptiveRate bool
	// BreakerThreshold is the share (0, 1] of 5xx/reset/timeout answers
	// among the last 100 that pauses dispatching (--breaker-threshold).
	// Defaults to DefaultBreakerThreshold (0.5).
	BreakerThreshold float64
	// Concurrency is the most requests in flight at once to one account
	// (--concurrency); see Run.Workers for the pool accounts share.
	// Defaults to DefaultConcurrency (32).
	Concurrency int
	// MaxAttempts is the attempts per row per run for retryable errors
	// (--max-attempts). Defaults to DefaultMaxAttempts (5).
	MaxAttempts int
	// Grace is how long in-flight requests may finish after SIGTERM/SIGINT
	// (--grace). Defaults to DefaultGrace (20s).
	Grace time.Duration
	// PageSize is how many pending rows one keyset page reads
	// (--page-size), 1 to MaxPageSize. Defaults to DefaultPageSize (1000).
	PageSize int
	// FlushInterval is the longest an outcome waits in memory before it is
	// written (--flush-interval), at most MaxFlushInterval. Defaults to
	// DefaultFlushInterval (1s).
	FlushInterval time.Duration
	// FlushSize is how many buffered outcomes trigger a write
	// (--flush-size). Defaults to DefaultFlushSize (1000).
	FlushSize int
	// ProgressInterval is how often progress is reported
	// (--progress-interval). Defaults to DefaultProgressInterval (10s).
	ProgressInterval time.Duration
	// BackoffBase is the first retry's backoff ceiling (exponential, full
	// jitter) (--backoff-base). Defaults to DefaultBackoffBase (200ms).
	BackoffBase time.Duration
	// BackoffMax caps any one backoff (--backoff-max). Defaults to
	// DefaultBackoffMax (10s).
	BackoffMax time.Duration
	// VerifyExisting: on ConfigAlreadyExists, Describe and compare; Update
	// when the config differs (--verify-existing). Defaults to false.
	VerifyExisting bool
	// NoFixDrift: with VerifyExisting, record drifted instead of updating,
	// and describe rows already drifted again instead of updating them
	// (--no-fix-drift). Validate turns VerifyExisting on with it. Defaults
	// to false.
	NoFixDrift bool
	// Prune: after the pass, Delete the configs of domains the job
	// configured that are no longer desired, unless there are more than
	// PruneMax of them (--prune). Defaults to false.
	Prune bool
	// PruneMax is the most configs Prune deletes in one run (--prune-max).
	// Defaults to DefaultPruneMax (100).
	PruneMax int64
}

// DefaultRun returns a Run holding every default. It is the one place
// where defaults are applied: RunFlags starts from it.
func DefaultRun() Run {
	return Run{
		Client: Client{Endpoint: DefaultEndpoint, RequestTimeout: DefaultRequestTimeout},
		Apply: Apply{
			Region: DefaultRegion, Rate: DefaultRate, AdaptiveRate: DefaultAdaptiveRate,
			BreakerThreshold: DefaultBreakerThreshold, Concurrency: DefaultConcurrency,
			MaxAttempts: DefaultMaxAttempts, Grace: DefaultGrace, PageSize: DefaultPageSize,
			FlushInterval: DefaultFlushInterval, FlushSize: DefaultFlushSize,
			ProgressInterval: DefaultProgressInterval, BackoffBase: DefaultBackoffBase,
			BackoffMax: DefaultBackoffMax, PruneMax: DefaultPruneMax,
		},
		DBRetryDeadline: DefaultDBRetryDeadline,
		LogFormat:       DefaultLogFormat, LogLevel: DefaultLogLevel,
	}
}

// envName is the variable of a flag: DATABASE_URL for --database-url,
// RECONCILE_<NAME> for the others.
func envName(flagName string) string {
	if flagName == "database-url" {
		return "DATABASE_URL"
	}
	return "RECONCILE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// RunFlags sets *c to DefaultRun() and defines the flags of `run` on fs,
// writing into c; each flag's default is c's field. Other subcommands reuse
// the subset they need.
func RunFlags(fs *flag.FlagSet, c *Run) {
	*c = DefaultRun()
	DatabaseFlag(fs, &c.DatabaseURL)
	fs.StringVar(&c.Endpoint, "endpoint", c.Endpoint, "API endpoint: a host name (HTTPS) or a full http(s)://host:port URL")
	fs.StringVar(&c.Region, "region", c.Region, "RegionId sent when a row has none")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "most API requests per second, retries included, over any 1-second window")
	fs.BoolVar(&c.AllowRateAboveLimit, "allow-rate-above-limit", c.AllowRateAboveLimit, "allow --rate above the API's 30 calls/s (simulators, raised quotas)")
	fs.BoolVar(&c.AdaptiveRate, "adaptive-rate", c.AdaptiveRate, "cut the rate when the API throttles, then creep back up to --rate")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "most requests in flight at once to one account")
	fs.IntVar(&c.MaxAttempts, "max-attempts", c.MaxAttempts, "attempts per row per run for retryable errors")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "per-request deadline")
	fs.DurationVar(&c.Grace, "grace", c.Grace, "after SIGTERM/SIGINT: how long in-flight requests may finish")
	fs.BoolVar(&c.DryRun, "dry-run", c.DryRun, "validate and classify pending rows, print what would be called, call nothing")
	fs.BoolVar(&c.VerifyExisting, "verify-existing", c.VerifyExisting, "on ConfigAlreadyExists, Describe the config and Update it when it differs")
	fs.BoolVar(&c.NoFixDrift, "no-fix-drift", c.NoFixDrift, "with --verify-existing: record drifted instead of updating (implies --verify-existing)")
	fs.BoolVar(&c.Prune, "prune", c.Prune, "delete the configs of domains this job configured that are no longer desired")
	fs.Int64Var(&c.PruneMax, "prune-max", c.PruneMax, "most configs --prune deletes in one run; with more candidates it deletes none")
	fs.BoolVar(&c.InsecureEndpoint, "insecure-endpoint", c.InsecureEndpoint, "allow a plain http:// endpoint that is not loopback")
	fs.StringVar(&c.SignatureAlgorithm, "signature-algorithm", c.SignatureAlgorithm, `request signature: "" (ACS3-HMAC-SHA256) or "v2" (legacy HMAC-SHA1)`)
	fs.IntVar(&c.PageSize, "page-size", c.PageSize, "pending rows read per keyset page")
	fs.DurationVar(&c.FlushInterval, "flush-interval", c.FlushInterval, "longest an outcome waits before it is written")
	fs.IntVar(&c.FlushSize, "flush-size", c.FlushSize, "buffered outcomes that trigger a write")
	fs.DurationVar(&c.ProgressInterval, "progress-interval", c.ProgressInterval, "how often a progress line is logged")
	fs.DurationVar(&c.BackoffBase, "backoff-base", c.BackoffBase, "first retry's backoff ceiling (exponential, full jitter)")
	fs.DurationVar(&c.BackoffMax, "backoff-max", c.BackoffMax, "cap of any one backoff")
	fs.DurationVar(&c.DBRetryDeadline, "db-retry-deadline", c.DBRetryDeadline, "longest any one database call may take, retries included (then exit 6)")
	fs.Float64Var(&c.BreakerThreshold, "breaker-threshold", c.BreakerThreshold, "share (0-1) of 5xx/reset answers among the last 100 requests that pauses dispatching")
	fs.StringVar(&c.PushgatewayURL, "pushgateway-url", c.PushgatewayURL, "Prometheus Pushgateway to push the run's metrics to at its end")
	fs.StringVar(&c.Accounts, "accounts", c.Accounts, `work only these accounts, comma-separated ("default": rows without an account); default: every account with desired rows`)
	fs.StringVar(&c.Shard, "shard", c.Shard, "i/n: work only the accounts whose stable hash falls in shard i of n (Kubernetes Indexed Job: $(JOB_COMPLETION_INDEX)/n)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "worker pool shared by the accounts (default: --concurrency × accounts worked, at most 1024)")
	fs.StringVar(&c.STSEndpoint, "sts-endpoint", c.STSEndpoint, "STS endpoint that assumes the accounts' RAM roles (default: sts.aliyuncs.com)")
	fs.StringVar(&c.MetricsGrouping, "metrics-grouping", c.MetricsGrouping, "Pushgateway grouping labels name=value,... (default "+DefaultMetricsGrouping+"): one group per deployment")
	LogFlags(fs, &c.LogFormat, &c.LogLevel)
}

// VerifyFlags defines the flags of `verify` on fs, writing into c: those of
// run, except the ones that change what a run does in the cloud, which
// verify never does. Parse refuses them on the command line (exit 2, naming
// the flag) instead of ignoring them, and Usage does not list them. Their
// variables are ignored, so that an environment shared with `run` (a
// CronJob's) does not stop verify — except RECONCILE_DRY_RUN set to true:
// whoever sets it expects no call at all, and verify calls Describe.
func VerifyFlags(fs *flag.FlagSet, c *Run) {
	RunFlags(fs, c)
	Refuse(fs, "verify has no dry run: it only describes and changes nothing in the cloud (reconcile plan shows what a run would do)", "dry-run")
	RefuseFlags(fs, "verify always describes and compares, and never updates", "verify-existing", "no-fix-drift")
	RefuseFlags(fs, "verify never deletes", "prune", "prune-max")
}

// DatabaseFlag defines --database-url (env DATABASE_URL).
func DatabaseFlag(fs *flag.FlagSet, dst *string) {
	fs.StringVar(dst, "database-url", *dst, "Postgres connection string (URL or key=value); default: libpq PG* variables")
}

// LogFlags defines --log-format and --log-level; an empty *format or
// *level is set to its default first.
func LogFlags(fs *flag.FlagSet, format, level *string) {
	if *format == "" {
		*format = DefaultLogFormat
	}
	if *level == "" {
		*level = DefaultLogLevel
	}
	fs.StringVar(format, "log-format", *format, "auto (text on a terminal, JSON otherwise), json or text")
	fs.StringVar(level, "log-level", *level, "debug, info, warn or error")
}

// Validate checks c once, before any connection or request. Errors wrap
// ErrUsage and name every bad setting by its flag. On success, NoFixDrift
// has turned VerifyExisting on.
func (c *Run) Validate() error { return c.ValidateFrom(Sources{}) }

// ValidateFrom is Validate with the Sources Parse returned: a message names
// the variable a bad value came from, or else the flag.
func (c *Run) ValidateFrom(src Sources) error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	n := src.Name
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) || c.Rate > MaxRate {
		add("%s must be above 0 and at most %v (got %v)", n("rate"), MaxRate, c.Rate)
	} else if c.Rate > APIRateLimit && !c.AllowRateAboveLimit {
		allow := "--allow-rate-above-limit"
		if src.FromEnv("rate") {
			allow += " (or " + envName("allow-rate-above-limit") + "=true)"
		}
		add("%s is above the API's limit of %v calls/s per account; give %s if your quota was raised or you target a simulator",
			src.Setting("rate", FormatFloat(c.Rate)), APIRateLimit, allow)
	}
	if c.Concurrency < 1 {
		add("%s must be at least 1 (got %d)", n("concurrency"), c.Concurrency)
	}
	if c.MaxAttempts < 1 {
		add("%s must be at least 1 (got %d)", n("max-attempts"), c.MaxAttempts)
	}
	if c.RequestTimeout <= 0 {
		add("%s must be above 0 (got %v)", n("request-timeout"), c.RequestTimeout)
	}
	if c.Grace < 0 {
		add("%s must not be negative (got %v)", n("grace"), c.Grace)
	}
	if c.Endpoint == "" {
		add("%s is empty", n("endpoint"))
	}
	if c.Region == "" {
		add("%s is empty", n("region"))
	}
	if c.SignatureAlgorithm != "" && c.SignatureAlgorithm != "v2" {
		add(`%s must be "" or "v2" (got %q)`, n("signature-algorithm"), c.SignatureAlgorithm)
	}
	if c.PageSize < 1 || c.PageSize > MaxPageSize {
		add("%s must be 1 to %d (got %d)", n("page-size"), MaxPageSize, c.PageSize)
	}
	if c.FlushInterval <= 0 || c.FlushInterval > MaxFlushInterval {
		add("%s must be above 0 and at most %v (got %v)", n("flush-interval"), MaxFlushInterval, c.FlushInterval)
	}
	if c.PruneMax < 0 {
		add("%s must not be negative (got %d)", n("prune-max"), c.PruneMax)
	}
	if c.FlushSize < 1 {
		add("%s must be at least 1 (got %d)", n("flush-size"), c.FlushSize)
	}
	if c.ProgressInterval <= 0 {
		add("%s must be above 0 (got %v)", n("progress-interval"), c.ProgressInterval)
	}
	if c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase {
		add("%s must be above 0 and at most %s (got %v, %v)", n("backoff-base"), n("backoff-max"), c.BackoffBase, c.BackoffMax)
	}
	if c.DBRetryDeadline <= 0 {
		add("%s must be above 0 (got %v)", n("db-retry-deadline"), c.DBRetryDeadline)
	}
	if !(c.BreakerThreshold > 0 && c.BreakerThreshold <= 1) {
		add("%s must be in (0, 1] (got %v)", n("breaker-threshold"), c.BreakerThreshold)
	}
	if _, err := accounts.ParseList(c.Accounts); err != nil {
		add("%s: %v", n("accounts"), err)
	}
	if _, err := accounts.ParseShard(c.Shard); err != nil {
		add("%s: %v", n("shard"), err)
	}
	if c.Workers < 0 {
		add("%s must not be negative (got %d)", n("workers"), c.Workers)
	}
	if err := src.checkLog(c.LogFormat, c.LogLevel); err != nil {
		errs = append(errs, err.Error())
	}
	if c.PushgatewayURL != "" {
		if err := metrics.ValidateURL(c.PushgatewayURL); err != nil {
			add("%s: %v", n("pushgateway-url"), err)
		}
	}
	if _, err := metrics.ParseGrouping(c.MetricsGrouping); err != nil {
		add("%s: %v", n("metrics-grouping"), err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrUsage, strings.Join(errs, "; "))
	}
	if c.NoFixDrift {
		c.VerifyExisting = true
	}
	return nil
}

// ValidateLog checks --log-format and --log-level given as flags; see
// Sources.ValidateLog to name their variables when they came from there.
func ValidateLog(format, level string) error { return Sources{}.checkLog(format, level) }

// ValidateLog checks --log-format and --log-level; the error wraps
// ErrUsage and names the flag or the variable the value came from.
func (s Sources) ValidateLog(format, level string) error {
	if err := s.checkLog(format, level); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return nil
}

func (s Sources) checkLog(format, level string) error {
	switch format {
	case "auto", "json", "text":
	default:
		return fmt.Errorf("%s must be auto, json or text (got %q)", s.Name("log-format"), format)
	}
	switch level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("%s must be debug, info, warn or error (got %q)", s.Name("log-level"), level)
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
