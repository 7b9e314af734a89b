// Package metrics pushes the metrics of one `reconcile run` to a Prometheus
// Pushgateway (--pushgateway-url, RECONCILE_PUSHGATEWAY_URL).
//
// A run is a service-level batch job, so it follows Prometheus' guidance for
// batch jobs: every metric is a gauge that describes the last run (rows per
// outcome, requests, duration, status, completion time), pushed once when the
// run ends, and the key metric is the time of the last success. Counters would
// be wrong here: the Pushgateway keeps only the last pushed value, each run
// starts again from zero, and rate()/increase() over such a series would
// count resets and not requests. Gauges therefore carry no _total suffix.
//
// # Accounts
//
// A run works one or more accounts (the default account, the job's own, and
// the named accounts of desired_snapshot_callbacks.account). Push takes one
// RunMetrics per account the run worked, and every series carries the label
// account=<name> ("default" for the default account, model.AccountLabel).
// The label is a grouping label: each account has groups of its own (below),
// so that what is said about one account (its last run, its last success)
// is never replaced by a push about another: by another shard of the job
// that works other accounts, or by a run that skipped the account (another
// run held it, or it is disabled), which does not push it at all.
//
// # Two groups per account
//
// Push writes two Pushgateway groups per account, both with PUT (which
// replaces the whole group at its path):
//
//   - the run group, {job=<job>, account=<account>, <grouping labels>}
//     (/metrics/job/<job>/account/<account>/..., the labels in whatever
//     order the client writes them: a group is a label set), with every
//     metric of the account's last run. PUT drops whatever an earlier run
//     left there, so no stale series (an outcome or status that this run did
//     not have) survives.
//   - the success group, the same labels plus result=success, holding only
//     reconcile_last_success_timestamp_seconds. It is pushed only when the
//     account's pass succeeded and every desired row of the account is done.
//     A failed or interrupted account never touches it, so its PUT of the
//     run group cannot delete the last success: the Pushgateway identifies a
//     group by its complete label set, and {job="reconcile",
//     account="a"} and {job="reconcile", account="a", result="success"} are
//     two groups. Nor can another account's push: {account="b", ...} is
//     another group again. One account failing therefore leaves every other
//     account's last success as it was.
//
// POST (Add) to a single group was the alternative: it replaces only the
// metric names it sends, so omitting the success timestamp from a failed
// run's push would keep it. But then a metric that a later version stops
// pushing, or a label set a run no longer has, would stay in the group
// forever; and one group for all accounts would make a failing account's
// push replace the others' success timestamps (POST replaces a metric name
// with all its series). Separate groups keep the simple PUT semantics.
//
// Push's own grouping key is the job and the account; Grouping adds labels.
// Several independent deployments (two databases, two CronJobs) must push
// to different groups, or each run's PUT replaces the other's metrics and
// its last-success time. reconcile run therefore adds instance=<database
// name> by default (--metrics-grouping replaces it, see ParseGrouping): one
// set of groups per database and account, which is one set per run claim,
// never a per-host label, which would leave groups, with their own
// last-success timestamps, behind every pod or host that ever ran it. An
// account that is no longer worked keeps its groups (and its last-success
// time) until they are deleted.
//
// # Safety
//
// A push is bounded by ctx and by Timeout (10 s by default) for all its
// requests. It never carries a secret: only counts, durations, timestamps
// and fixed label values are sent, and user:password in the URL is sent as
// HTTP basic auth and removed from every error. A failed push must not fail
// the run: the caller logs the error and carries on.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"

	"github.com/reconcile/reconcile/internal/model"
)

// Run statuses of RunMetrics.Status (the final statuses of reconcile_runs).
const (
	StatusSucceeded   = "succeeded"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
)

// DefaultJob is the job label of the pushed groups.
const DefaultJob = "reconcile"

// DefaultTimeout bounds one Push (both requests) when no Timeout is given.
const DefaultTimeout = 10 * time.Second

// SuccessLabel and SuccessValue are the extra grouping label of the success
// group: /metrics/job/<job>/.../result/success.
const (
	SuccessLabel = "result"
	SuccessValue = "success"
)

// AccountLabel is the grouping label every group, and so every series,
// carries: the account the metrics are about (model.AccountLabel: "default"
// for the default account).
const AccountLabel = "account"

// Metric names. Every metric is a gauge describing the last run.
const (
	NameRows                 = "reconcile_rows"
	NameInvalidUnchanged     = "reconcile_invalid_unchanged_rows"
	NameRequests             = "reconcile_requests"
	NameThrottled            = "reconcile_throttled_requests"
	NameRetries              = "reconcile_retries"
	NameBreakerTrips         = "reconcile_breaker_trips"
	NameDuration             = "reconcile_run_duration_seconds"
	NameRateLimit            = "reconcile_rate_limit_requests_per_second"
	NameStatus               = "reconcile_run_status"
	NameSuccess              = "reconcile_run_success"
	NameRunID                = "reconcile_run_id"
	NameLastRunTimestamp     = "reconcile_last_run_timestamp_seconds"
	NameLastSuccessTimestamp = "reconcile_last_success_timestamp_seconds"
)

// RunMetrics is what one run reports about one account it worked.
type RunMetrics struct {
	// Account is the account ("": the default account, labelled
	// "default").
	Account string
	// RunID is the run's id in reconcile_runs.
	RunID int64
	// Status is the account's final status in the run: succeeded (its pass
	// completed), failed or interrupted.
	Status string
	// Outcomes counts the account's rows per outcome in this run (applied,
	// already_exists, updated, invalid, failed). The five outcomes are always
	// pushed (0 when missing); other keys are pushed as they are.
	Outcomes map[string]int64
	// InvalidUnchanged counts rows still invalid from an earlier run
	// (counted, not re-sent).
	InvalidUnchanged int64
	// Requests, Throttled and Retries count API requests in this run.
	Requests, Throttled, Retries int64
	// BreakerTrips counts circuit-breaker pauses.
	BreakerTrips int
	// Duration is how long the pass took.
	Duration time.Duration
	// Rate is the configured --rate (requests per second).
	Rate float64
	// Success is true when every desired row of the account is done. The
	// last success timestamp is pushed only when Success is true and Status
	// is succeeded.
	Success bool
	// Finished is when the run ended; zero means now.
	Finished time.Time
}

// Succeeded reports whether m counts as a success: the account's pass
// completed and every desired row of the account is done.
func (m RunMetrics) Succeeded() bool { return m.Success && m.Status == StatusSucceeded }

// Option configures Push.
type Option func(*options)

type options struct {
	timeout  time.Duration
	client   push.HTTPDoer
	grouping map[string]string
}

// Timeout bounds one Push, both requests included (default 10 s); ctx may
// bound it further. d <= 0 keeps the default.
func Timeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// HTTPClient sets the client that sends the pushes (TLS settings, proxies);
// the default (and nil) is a fresh http.Client.
func HTTPClient(c *http.Client) Option {
	return func(o *options) {
		if c != nil {
			o.client = c
		}
	}
}

// Grouping adds a grouping label to every group (for example env="prod", to
// tell independent deployments apart). The names "job", "account" and
// "result" are reserved. Avoid a per-host value: see the package
// documentation.
func Grouping(name, value string) Option {
	return func(o *options) { o.grouping[name] = value }
}

// DefaultGroupingLabel is the grouping label reconcile run adds when
// --metrics-grouping is not given; its value is the database name.
const DefaultGroupingLabel = "instance"

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// ParseGrouping parses a --metrics-grouping value, "name=value[,name=value
// ...]" (spaces around names and values are ignored), into grouping labels
// for Grouping. "" gives nil (the caller's default). Names must be
// Prometheus label names, not reserved ("job", "account", "result", or
// starting with "__") and not repeated; values must not be empty. Errors
// name the bad pair.
func ParseGrouping(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(pair, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok:
			return nil, fmt.Errorf("%q is not name=value", strings.TrimSpace(pair))
		case !labelName.MatchString(name) || strings.HasPrefix(name, "__"):
			return nil, fmt.Errorf("%q is not a label name", name)
		case name == AccountLabel:
			return nil, fmt.Errorf("label %q is reserved: every series carries the account it is about (%s=default for the job's own); name yours otherwise", name, AccountLabel)
		case reserved(name):
			return nil, fmt.Errorf("label %q is reserved", name)
		case value == "":
			return nil, fmt.Errorf("label %q has an empty value", name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("label %q is given twice", name)
		}
		out[name] = value
	}
	return out, nil
}

// ValidateURL checks a --pushgateway-url: empty (pushing disabled), or an
// absolute http or https URL with a host and no query or fragment. A path is
// kept as a prefix (a Pushgateway behind a proxy). Errors never repeat the
// password.
func ValidateURL(raw string) error {
	_, _, err := parseURL(raw)
	return err
}

// SafeURL returns raw without its password, for logs ("" stays "").
func SafeURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// parseURL splits raw into the Pushgateway base URL, without userinfo, and
// the basic-auth credentials it carried.
func parseURL(raw string) (base string, user *url.Userinfo, err error) {
	if raw == "" {
		return "", nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", nil, errors.New("pushgateway URL: cannot parse it (expected http(s)://host:port)")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", nil, fmt.Errorf("pushgateway URL: scheme must be http or https (got %q)", u.Scheme)
	}
	if u.Hostname() == "" {
		return "", nil, errors.New("pushgateway URL: has no host")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", nil, errors.New("pushgateway URL: must not have a query or fragment")
	}
	user, u.User = u.User, nil
	return strings.TrimSuffix(u.String(), "/"), user, nil
}

// reserved reports whether a grouping label name is Push's own.
func reserved(name string) bool {
	return name == "job" || name == SuccessLabel || name == AccountLabel
}

// Push sends ms, one RunMetrics per account the run worked, to the
// Pushgateway at url (http(s)://host:port[/prefix]) under job (DefaultJob
// when empty): for each account, its run group always and its success group
// only when m.Succeeded(), both with the grouping label
// account=model.AccountLabel(m.Account). Every request is a PUT, so each
// replaces its group, and an account not in ms is not touched (see the
// package documentation). An empty url, or no metrics, disables pushing:
// Push returns nil. Two entries for one account are refused before anything
// is sent.
//
// Push returns within the Timeout (default 10 s, for all its requests) or
// when ctx ends. A failed request does not stop the others. Its error is
// for the log: it never holds the URL's password, and a failed push must
// not change the run's outcome or exit code.
func Push(ctx context.Context, rawURL, job string, ms []RunMetrics, opts ...Option) error {
	if rawURL == "" || len(ms) == 0 {
		return nil
	}
	o := options{timeout: DefaultTimeout, grouping: map[string]string{}}
	for _, opt := range opts {
		opt(&o)
	}
	if o.client == nil {
		o.client = &http.Client{}
	}
	if job == "" {
		job = DefaultJob
	}
	for name := range o.grouping {
		if reserved(name) {
			return fmt.Errorf("pushing metrics: grouping label %q is reserved", name)
		}
	}
	seen := map[string]bool{}
	for _, m := range ms {
		label := model.AccountLabel(m.Account)
		if seen[label] {
			return fmt.Errorf("pushing metrics: account %q is given twice", label)
		}
		seen[label] = true
	}
	base, user, err := parseURL(rawURL)
	if err != nil {
		return fmt.Errorf("pushing metrics: %w", err)
	}
	now := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	pusher := func(g prometheus.Gatherer, account string) *push.Pusher {
		p := push.New(base, job).Gatherer(g).Client(o.client).Format(expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, name := range sortedKeys(o.grouping) {
			p.Grouping(name, o.grouping[name])
		}
		p.Grouping(AccountLabel, account)
		if user != nil {
			pw, _ := user.Password()
			p.BasicAuth(user.Username(), pw)
		}
		return p
	}
	scrub := func(err error) error {
		if err == nil {
			return nil
		}
		s := err.Error()
		if user != nil {
			if pw, ok := user.Password(); ok && pw != "" {
				s = strings.ReplaceAll(s, pw, model.Redacted)
			}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: %w", s, context.DeadlineExceeded)
		}
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s: %w", s, context.Canceled)
		}
		return errors.New(s)
	}

	var errs []error
	for _, m := range ms {
		if m.Finished.IsZero() {
			m.Finished = now
		}
		account := model.AccountLabel(m.Account)
		if err := pusher(runRegistry(m), account).PushContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("pushing run metrics of account %s: %w", account, scrub(err)))
		}
		if m.Succeeded() {
			p := pusher(successRegistry(m), account).Grouping(SuccessLabel, SuccessValue)
			if err := p.PushContext(ctx); err != nil {
				errs = append(errs, fmt.Errorf("pushing last success timestamp of account %s: %w", account, scrub(err)))
			}
		}
	}
	return errors.Join(errs...)
}

// knownStatuses are always pushed: 1 for the run's status, 0 for the others.
var knownStatuses = []string{StatusSucceeded, StatusFailed, StatusInterrupted}

func gauge(reg *prometheus.Registry, name, help string, v float64) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	g.Set(v)
	reg.MustRegister(g)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// runRegistry holds the run group's metrics. The HELP texts are those of
// the versions before accounts: the Pushgateway logs metric families whose
// HELP differs between groups (old groups stay until deleted), so they stay
// as they were; the account label says what a series is about.
func runRegistry(m RunMetrics) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	rows := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameRows,
		Help: "Rows per outcome in the last run."}, []string{"outcome"})
	for _, oc := range model.OutcomesWhere(func(model.OutcomeKind) bool { return true }) { // every outcome, 0 when absent, so a query for one finds a series after every run
		rows.WithLabelValues(string(oc)).Set(float64(m.Outcomes[string(oc)]))
	}
	for _, k := range sortedKeys(m.Outcomes) {
		rows.WithLabelValues(k).Set(float64(m.Outcomes[k]))
	}
	reg.MustRegister(rows)
	gauge(reg, NameInvalidUnchanged, "Rows still invalid from an earlier run and unchanged since (counted, not re-sent) in the last run.", float64(m.InvalidUnchanged))
	gauge(reg, NameRequests, "API requests sent by the last run, retries included.", float64(m.Requests))
	gauge(reg, NameThrottled, "API requests of the last run answered with throttling.", float64(m.Throttled))
	gauge(reg, NameRetries, "Retried API requests in the last run.", float64(m.Retries))
	gauge(reg, NameBreakerTrips, "Circuit-breaker pauses in the last run.", float64(m.BreakerTrips))
	gauge(reg, NameDuration, "Duration of the last run's pass in seconds.", m.Duration.Seconds())
	gauge(reg, NameRateLimit, "Configured request rate limit (--rate) of the last run, requests per second.", m.Rate)
	gauge(reg, NameRunID, "Id of the last run in reconcile_runs.", float64(m.RunID))
	gauge(reg, NameSuccess, "1 when the last run completed with every desired row done (exit code 0), else 0.", boolFloat(m.Succeeded()))
	gauge(reg, NameLastRunTimestamp, "Unix time when the last run ended, whatever its status.", unixSeconds(m.Finished))
	status := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameStatus,
		Help: "Status of the last run: 1 for its status, 0 for the others."}, []string{"status"})
	for _, s := range knownStatuses {
		status.WithLabelValues(s).Set(0)
	}
	if m.Status == "" {
		m.Status = "unknown"
	}
	status.WithLabelValues(m.Status).Set(1)
	reg.MustRegister(status)
	return reg
}

// successRegistry holds the success group's only metric.
func successRegistry(m RunMetrics) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	gauge(reg, NameLastSuccessTimestamp, "Unix time when the last run that left every desired row done ended.", unixSeconds(m.Finished))
	return reg
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
