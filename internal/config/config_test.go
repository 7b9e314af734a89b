package config

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parseRun runs what `reconcile run` does with its arguments: RunFlags,
// Parse (environment from env, then args) and, when that worked, Validate.
// parseErr tells which of the two failed.
func parseRun(args []string, env map[string]string) (c Run, err error, parseErr bool) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	RunFlags(fs, &c)
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	src, err := Parse(fs, args, lookup)
	if err != nil {
		return c, err, true
	}
	return c, c.ValidateFrom(src), false
}

// TestContractDefaults: the defaults and variable names of
// docs/configuration.md (the contract's flags), and that every flag has the
// variable Usage lists for it.
func TestContractDefaults(t *testing.T) {
	c, err, _ := parseRun(nil, nil)
	if err != nil {
		t.Fatalf("no args, no environment: %v", err)
	}
	if c != DefaultRun() {
		t.Errorf("parsed defaults %+v differ from DefaultRun() %+v", c, DefaultRun())
	}
	want := Run{
		Client: Client{Endpoint: "live.aliyuncs.com", RequestTimeout: 10 * time.Second},
		Apply: Apply{Region: "cn-shanghai", Rate: 25, Concurrency: 32, MaxAttempts: 5,
			Grace: 20 * time.Second, AdaptiveRate: true, PageSize: 1000,
			FlushInterval: time.Second, FlushSize: 1000, ProgressInterval: 10 * time.Second,
			BackoffBase: 200 * time.Millisecond, BackoffMax: 10 * time.Second,
			BreakerThreshold: 0.5, PruneMax: 100},
		DBRetryDeadline: 60 * time.Second, LogFormat: "auto", LogLevel: "info",
	}
	if c != want {
		t.Errorf("defaults %+v, want %+v", c, want)
	}

	contractVars := map[string]string{
		"database-url": "DATABASE_URL", "endpoint": "RECONCILE_ENDPOINT", "region": "RECONCILE_REGION",
		"rate": "RECONCILE_RATE", "concurrency": "RECONCILE_CONCURRENCY", "max-attempts": "RECONCILE_MAX_ATTEMPTS",
		"request-timeout": "RECONCILE_REQUEST_TIMEOUT", "grace": "RECONCILE_GRACE",
		"allow-rate-above-limit": "RECONCILE_ALLOW_RATE_ABOVE_LIMIT", "dry-run": "RECONCILE_DRY_RUN",
		"flush-interval": "RECONCILE_FLUSH_INTERVAL", "log-format": "RECONCILE_LOG_FORMAT",
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var r Run
	RunFlags(fs, &r)
	var buf bytes.Buffer
	Usage(&buf, fs, "usage: reconcile run [flags]")
	usage := buf.String()
	for f, v := range contractVars {
		if fs.Lookup(f) == nil {
			t.Errorf("flag --%s of the contract is not defined", f)
		}
		if got := envName(f); got != v {
			t.Errorf("variable of --%s is %s, want %s", f, got, v)
		}
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(usage, "--"+f.Name+" (env "+envName(f.Name)+",") {
			t.Errorf("usage does not list --%s with its variable %s:\n%s", f.Name, envName(f.Name), usage)
		}
	})
	if n < len(contractVars) {
		t.Errorf("only %d flags defined", n)
	}
}

// TestEveryVariable sets each flag's variable to a non-default value and
// checks that it reaches its field, and that the flag wins over it.
func TestEveryVariable(t *testing.T) {
	cases := []struct {
		flag, env, flagVal string
		get                func(Run) any
		want, wantFlag     any
	}{
		{"database-url", "postgres://u@h:5432/env", "postgres://u@h:5432/flag", func(c Run) any { return c.DatabaseURL }, "postgres://u@h:5432/env", "postgres://u@h:5432/flag"},
		{"endpoint", "http://127.0.0.1:8787", "live.example.com", func(c Run) any { return c.Endpoint }, "http://127.0.0.1:8787", "live.example.com"},
		{"region", "cn-beijing", "cn-hangzhou", func(c Run) any { return c.Region }, "cn-beijing", "cn-hangzhou"},
		{"rate", "12.5", "7", func(c Run) any { return c.Rate }, 12.5, 7.0},
		{"allow-rate-above-limit", "true", "false", func(c Run) any { return c.AllowRateAboveLimit }, true, false},
		{"adaptive-rate", "false", "true", func(c Run) any { return c.AdaptiveRate }, false, true},
		{"concurrency", "4", "9", func(c Run) any { return c.Concurrency }, 4, 9},
		{"max-attempts", "3", "1", func(c Run) any { return c.MaxAttempts }, 3, 1},
		{"request-timeout", "1m30s", "250ms", func(c Run) any { return c.RequestTimeout }, 90 * time.Second, 250 * time.Millisecond},
		{"grace", "0s", "3s", func(c Run) any { return c.Grace }, time.Duration(0), 3 * time.Second},
		{"dry-run", "1", "false", func(c Run) any { return c.DryRun }, true, false},
		{"insecure-endpoint", "TRUE", "false", func(c Run) any { return c.InsecureEndpoint }, true, false},
		{"verify-existing", "on", "false", func(c Run) any { return c.VerifyExisting }, true, false},
		{"prune", "true", "false", func(c Run) any { return c.Prune }, true, false},
		{"prune-max", "7", "0", func(c Run) any { return c.PruneMax }, int64(7), int64(0)},
		{"signature-algorithm", "v2", "", func(c Run) any { return c.SignatureAlgorithm }, "v2", ""},
		{"page-size", "50", "100000", func(c Run) any { return c.PageSize }, 50, 100000},
		{"flush-interval", "100ms", "1s", func(c Run) any { return c.FlushInterval }, 100 * time.Millisecond, time.Second},
		{"flush-size", "5", "1", func(c Run) any { return c.FlushSize }, 5, 1},
		{"progress-interval", "2s", "1m", func(c Run) any { return c.ProgressInterval }, 2 * time.Second, time.Minute},
		{"backoff-base", "5ms", "1s", func(c Run) any { return c.BackoffBase }, 5 * time.Millisecond, time.Second},
		{"backoff-max", "1m", "300ms", func(c Run) any { return c.BackoffMax }, time.Minute, 300 * time.Millisecond},
		{"db-retry-deadline", "5s", "2m", func(c Run) any { return c.DBRetryDeadline }, 5 * time.Second, 2 * time.Minute},
		{"breaker-threshold", "1", "0.25", func(c Run) any { return c.BreakerThreshold }, 1.0, 0.25},
		{"log-format", "text", "json", func(c Run) any { return c.LogFormat }, "text", "json"},
		{"log-level", "debug", "error", func(c Run) any { return c.LogLevel }, "debug", "error"},
		{"metrics-grouping", "instance=video-a", "tenant=b,env=prod", func(c Run) any { return c.MetricsGrouping }, "instance=video-a", "tenant=b,env=prod"},
	}
	for _, tc := range cases {
		t.Run(tc.flag, func(t *testing.T) {
			env := map[string]string{envName(tc.flag): tc.env}
			c, err, _ := parseRun(nil, env)
			if err != nil {
				t.Fatalf("%s=%q: %v", envName(tc.flag), tc.env, err)
			}
			if got := tc.get(c); got != tc.want {
				t.Errorf("%s=%q: field is %v, want %v", envName(tc.flag), tc.env, got, tc.want)
			}
			c, err, _ = parseRun([]string{"--" + tc.flag + "=" + tc.flagVal}, env)
			if err != nil {
				t.Fatalf("%s=%q --%s=%q: %v", envName(tc.flag), tc.env, tc.flag, tc.flagVal, err)
			}
			if got := tc.get(c); got != tc.wantFlag {
				t.Errorf("%s=%q --%s=%q: field is %v, want the flag's %v", envName(tc.flag), tc.env, tc.flag, tc.flagVal, got, tc.wantFlag)
			}
		})
	}
}

// TestEveryFlagReadsItsVariable: for every flag defined (including ones
// added after this test was written), a value given through its variable
// reaches the flag exactly as the same value given on the command line.
func TestEveryFlagReadsItsVariable(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var r Run
	RunFlags(fs, &r)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		var v string
		switch d := f.Value.(flag.Getter).Get().(type) {
		case bool:
			v = strconv.FormatBool(!d)
		case int:
			v = strconv.Itoa(d + 1)
		case int64:
			v = strconv.FormatInt(d+1, 10)
		case float64:
			v = strconv.FormatFloat(d/2+0.125, 'f', -1, 64)
		case time.Duration:
			v = (d + 7*time.Millisecond).String()
		case string:
			v = d + "-from-env"
		default:
			t.Errorf("--%s: value type %T has no case here", f.Name, d)
			return
		}
		byEnv := flag.NewFlagSet("run", flag.ContinueOnError)
		var a Run
		RunFlags(byEnv, &a)
		if _, err := Parse(byEnv, nil, func(name string) (string, bool) {
			return v, name == envName(f.Name)
		}); err != nil {
			t.Errorf("%s=%q: %v", envName(f.Name), v, err)
			return
		}
		byFlag := flag.NewFlagSet("run", flag.ContinueOnError)
		var b Run
		RunFlags(byFlag, &b)
		if _, err := Parse(byFlag, []string{"--" + f.Name + "=" + v}, func(string) (string, bool) { return "", false }); err != nil {
			t.Errorf("--%s=%q: %v", f.Name, v, err)
			return
		}
		if a != b || a == DefaultRun() {
			t.Errorf("%s=%q gives %+v; --%s=%q gives %+v; want equal and not the defaults", envName(f.Name), v, a, f.Name, v, b)
		}
	})
	if n < 20 {
		t.Errorf("only %d flags", n)
	}
}

func TestParseAndValidate(t *testing.T) {
	type check func(t *testing.T, c Run)
	cases := []struct {
		name string
		args []string
		env  map[string]string
		// wantErr: substrings the error must hold (all of them); empty: no
		// error.
		wantErr []string
		// parse: the error must come from Parse (true) or Validate (false).
		parse bool
		check check
	}{
		// The rate and its limit.
		{name: "rate_30_ok", args: []string{"--rate", "30"}, check: func(t *testing.T, c Run) {
			if c.Rate != 30 {
				t.Errorf("rate %v", c.Rate)
			}
		}},
		{name: "rate_31_refused", args: []string{"--rate", "31"}, wantErr: []string{"--rate", "31", "--allow-rate-above-limit"}},
		{name: "rate_30.5_refused", args: []string{"--rate=30.5"}, wantErr: []string{"--rate", "--allow-rate-above-limit"}},
		{name: "rate_31_by_env_refused", env: map[string]string{"RECONCILE_RATE": "31"}, wantErr: []string{"RECONCILE_RATE=31 is above", "--allow-rate-above-limit", "RECONCILE_ALLOW_RATE_ABOVE_LIMIT=true"}},
		{name: "rate_31_allowed", args: []string{"--rate", "31", "--allow-rate-above-limit"}},
		{name: "rate_31_allowed_by_env", args: []string{"--rate", "31"}, env: map[string]string{"RECONCILE_ALLOW_RATE_ABOVE_LIMIT": "true"}},
		{name: "allow_by_env_overridden_by_flag", args: []string{"--rate", "31", "--allow-rate-above-limit=false"},
			env: map[string]string{"RECONCILE_ALLOW_RATE_ABOVE_LIMIT": "true"}, wantErr: []string{"--rate", "--allow-rate-above-limit"}},
		{name: "flag_rate_wins_over_env", args: []string{"--rate", "30"}, env: map[string]string{"RECONCILE_RATE": "31"}, check: func(t *testing.T, c Run) {
			if c.Rate != 30 {
				t.Errorf("rate %v, want the flag's 30", c.Rate)
			}
		}},
		{name: "env_rate_used_without_flag", env: map[string]string{"RECONCILE_RATE": "3"}, check: func(t *testing.T, c Run) {
			if c.Rate != 3 {
				t.Errorf("rate %v, want the variable's 3", c.Rate)
			}
		}},
		{name: "rate_zero", args: []string{"--rate", "0"}, wantErr: []string{"--rate must be above 0"}},
		{name: "rate_negative", args: []string{"--rate=-5"}, wantErr: []string{"--rate must be above 0"}},
		{name: "rate_nan", args: []string{"--rate", "NaN", "--allow-rate-above-limit"}, wantErr: []string{"--rate must be above 0"}},
		{name: "rate_not_a_number", args: []string{"--rate", "fast"}, wantErr: []string{"-rate", "fast"}, parse: true},
		{name: "rate_bad_env", env: map[string]string{"RECONCILE_RATE": "fast"}, wantErr: []string{"RECONCILE_RATE", "fast"}, parse: true},

		// Durations.
		{name: "duration_units", args: []string{"--request-timeout", "1m30s", "--grace", "500ms", "--flush-interval", "250ms"}, check: func(t *testing.T, c Run) {
			if c.RequestTimeout != 90*time.Second || c.Grace != 500*time.Millisecond || c.FlushInterval != 250*time.Millisecond {
				t.Errorf("durations %v %v %v", c.RequestTimeout, c.Grace, c.FlushInterval)
			}
		}},
		{name: "duration_without_unit", args: []string{"--request-timeout", "5"}, wantErr: []string{"--request-timeout", `"5"`, "10s"}, parse: true},
		{name: "duration_bad_env", env: map[string]string{"RECONCILE_GRACE": "soon"}, wantErr: []string{"RECONCILE_GRACE", "soon"}, parse: true},
		{name: "duration_env_without_unit", env: map[string]string{"RECONCILE_REQUEST_TIMEOUT": "10"}, wantErr: []string{"RECONCILE_REQUEST_TIMEOUT", "with a unit", "10s"}, parse: true},
		{name: "request_timeout_zero", args: []string{"--request-timeout", "0s"}, wantErr: []string{"--request-timeout"}},
		{name: "request_timeout_negative", args: []string{"--request-timeout", "-1s"}, wantErr: []string{"--request-timeout"}},
		{name: "grace_negative", args: []string{"--grace", "-1s"}, wantErr: []string{"--grace"}},
		{name: "grace_zero_ok", args: []string{"--grace", "0s"}},
		{name: "flush_interval_above_1s", args: []string{"--flush-interval", "1001ms"}, wantErr: []string{"--flush-interval"}},
		{name: "flush_interval_1s_ok", args: []string{"--flush-interval", "1s"}},
		{name: "flush_interval_zero", args: []string{"--flush-interval", "0s"}, wantErr: []string{"--flush-interval"}},
		{name: "progress_interval_zero", args: []string{"--progress-interval", "0s"}, wantErr: []string{"--progress-interval"}},
		{name: "backoff_base_zero", args: []string{"--backoff-base", "0s"}, wantErr: []string{"--backoff-base"}},
		{name: "backoff_max_below_base", args: []string{"--backoff-base", "2s", "--backoff-max", "1s"}, wantErr: []string{"--backoff-base", "--backoff-max"}},
		{name: "db_retry_deadline_zero", args: []string{"--db-retry-deadline", "0s"}, wantErr: []string{"--db-retry-deadline"}},

		// Booleans.
		{name: "bool_env_true_forms", env: map[string]string{"RECONCILE_DRY_RUN": "1", "RECONCILE_PRUNE": "ON", "RECONCILE_INSECURE_ENDPOINT": "True"}, check: func(t *testing.T, c Run) {
			if !c.DryRun || !c.Prune || !c.InsecureEndpoint {
				t.Errorf("dry-run %v prune %v insecure %v, want all true", c.DryRun, c.Prune, c.InsecureEndpoint)
			}
		}},
		{name: "bool_env_false_forms", env: map[string]string{"RECONCILE_ADAPTIVE_RATE": "0"}, check: func(t *testing.T, c Run) {
			if c.AdaptiveRate {
				t.Error("RECONCILE_ADAPTIVE_RATE=0 left adaptive rate on")
			}
		}},
		{name: "bool_env_yes", env: map[string]string{"RECONCILE_DRY_RUN": "yes"}, check: func(t *testing.T, c Run) {
			if !c.DryRun {
				t.Error("RECONCILE_DRY_RUN=yes left dry run off")
			}
		}},
		{name: "bool_env_t_refused", env: map[string]string{"RECONCILE_DRY_RUN": "t"}, wantErr: []string{"RECONCILE_DRY_RUN", `"t"`, BoolWords}, parse: true},
		{name: "bool_flag_value_refused", args: []string{"--dry-run=maybe"}, wantErr: []string{"--dry-run", "maybe", BoolWords}, parse: true},
		{name: "bool_flag_wins_over_env", args: []string{"--adaptive-rate=true"}, env: map[string]string{"RECONCILE_ADAPTIVE_RATE": "false"}, check: func(t *testing.T, c Run) {
			if !c.AdaptiveRate {
				t.Error("--adaptive-rate=true lost to RECONCILE_ADAPTIVE_RATE=false")
			}
		}},
		{name: "bool_flag_off_wins_over_env", args: []string{"--dry-run=false"}, env: map[string]string{"RECONCILE_DRY_RUN": "true"}, check: func(t *testing.T, c Run) {
			if c.DryRun {
				t.Error("--dry-run=false lost to RECONCILE_DRY_RUN=true")
			}
		}},
		{name: "no_fix_drift_implies_verify_existing", args: []string{"--no-fix-drift"}, check: func(t *testing.T, c Run) {
			if !c.NoFixDrift || !c.VerifyExisting {
				t.Errorf("no-fix-drift %v verify-existing %v, want both", c.NoFixDrift, c.VerifyExisting)
			}
		}},
		{name: "no_fix_drift_by_env", env: map[string]string{"RECONCILE_NO_FIX_DRIFT": "true"}, check: func(t *testing.T, c Run) {
			if !c.NoFixDrift || !c.VerifyExisting {
				t.Errorf("no-fix-drift %v verify-existing %v, want both", c.NoFixDrift, c.VerifyExisting)
			}
		}},

		// Integers and other values; each validation error names its flag.
		{name: "concurrency_zero", args: []string{"--concurrency", "0"}, wantErr: []string{"--concurrency"}},
		{name: "concurrency_bad_env", env: map[string]string{"RECONCILE_CONCURRENCY": "ten"}, wantErr: []string{"RECONCILE_CONCURRENCY", "ten"}, parse: true},
		{name: "max_attempts_zero", args: []string{"--max-attempts", "0"}, wantErr: []string{"--max-attempts"}},
		{name: "max_attempts_fraction_env", env: map[string]string{"RECONCILE_MAX_ATTEMPTS": "2.5"}, wantErr: []string{"RECONCILE_MAX_ATTEMPTS"}, parse: true},
		{name: "page_size_zero", args: []string{"--page-size", "0"}, wantErr: []string{"--page-size"}},
		{name: "page_size_too_big", args: []string{"--page-size", "100001"}, wantErr: []string{"--page-size"}},
		{name: "page_size_bad_env", env: map[string]string{"RECONCILE_PAGE_SIZE": "1e3"}, wantErr: []string{"RECONCILE_PAGE_SIZE"}, parse: true},
		{name: "flush_size_zero", args: []string{"--flush-size", "0"}, wantErr: []string{"--flush-size"}},
		{name: "prune_max_negative", args: []string{"--prune-max=-1"}, wantErr: []string{"--prune-max"}},
		{name: "breaker_threshold_zero", args: []string{"--breaker-threshold", "0"}, wantErr: []string{"--breaker-threshold"}},
		{name: "breaker_threshold_above_1", args: []string{"--breaker-threshold", "1.5"}, wantErr: []string{"--breaker-threshold"}},
		{name: "breaker_threshold_nan", args: []string{"--breaker-threshold", "NaN"}, wantErr: []string{"--breaker-threshold"}},
		{name: "breaker_threshold_bad_env", env: map[string]string{"RECONCILE_BREAKER_THRESHOLD": "half"}, wantErr: []string{"RECONCILE_BREAKER_THRESHOLD"}, parse: true},
		{name: "endpoint_empty_flag", args: []string{"--endpoint", ""}, wantErr: []string{"--endpoint"}},
		{name: "region_empty_flag", args: []string{"--region="}, wantErr: []string{"--region"}},
		{name: "empty_variables_are_unset", env: map[string]string{"RECONCILE_ENDPOINT": "", "RECONCILE_RATE": "", "RECONCILE_DRY_RUN": ""}, check: func(t *testing.T, c Run) {
			if c.Endpoint != DefaultEndpoint || c.Rate != DefaultRate || c.DryRun {
				t.Errorf("empty variables changed the config: %+v", c)
			}
		}},
		{name: "signature_algorithm_unknown", args: []string{"--signature-algorithm", "v4"}, wantErr: []string{"--signature-algorithm", "v4"}},
		{name: "signature_algorithm_unknown_env", env: map[string]string{"RECONCILE_SIGNATURE_ALGORITHM": "hmac"}, wantErr: []string{"RECONCILE_SIGNATURE_ALGORITHM", "hmac"}},
		{name: "log_format_unknown", args: []string{"--log-format", "xml"}, wantErr: []string{"--log-format", "xml"}},
		{name: "log_level_unknown", env: map[string]string{"RECONCILE_LOG_LEVEL": "trace"}, wantErr: []string{"RECONCILE_LOG_LEVEL", "trace"}},
		{name: "several_errors_all_named", args: []string{"--rate", "0", "--concurrency", "0", "--flush-size", "0"},
			wantErr: []string{"--rate", "--concurrency", "--flush-size"}},

		// Arguments.
		{name: "unexpected_argument", args: []string{"--rate", "5", "extra"}, wantErr: []string{"unexpected argument", "extra"}, parse: true},
		{name: "unexpected_argument_after_dashdash", args: []string{"--", "--rate"}, wantErr: []string{"unexpected argument", "--rate"}, parse: true},
		{name: "unknown_flag", args: []string{"--no-such-flag"}, wantErr: []string{"unknown flag --no-such-flag"}, parse: true},
		{name: "unknown_single_dash_flag_named_with_two", args: []string{"-bogus"}, wantErr: []string{"unknown flag --bogus"}, parse: true},
		{name: "flag_without_value", args: []string{"--rate"}, wantErr: []string{"--rate needs a value"}, parse: true},
		{name: "single_dash_flag", args: []string{"-rate", "4"}, check: func(t *testing.T, c Run) {
			if c.Rate != 4 {
				t.Errorf("rate %v", c.Rate)
			}
		}},
		{name: "last_flag_wins", args: []string{"--rate", "4", "--rate", "6"}, check: func(t *testing.T, c Run) {
			if c.Rate != 6 {
				t.Errorf("rate %v, want the last --rate", c.Rate)
			}
		}},
		{name: "unrelated_variables_ignored", env: map[string]string{"RATE": "99", "RECONCILE_NO_SUCH": "x", "reconcile_rate": "99"}, check: func(t *testing.T, c Run) {
			if c != DefaultRun() {
				t.Errorf("unrelated variables changed the config: %+v", c)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err, parseErr := parseRun(tc.args, tc.env)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("args %q env %v: %v", tc.args, tc.env, err)
				}
				if tc.check != nil {
					tc.check(t, c)
				}
				return
			}
			if err == nil {
				t.Fatalf("args %q env %v: no error, want one naming %q", tc.args, tc.env, tc.wantErr)
			}
			if !errors.Is(err, ErrUsage) {
				t.Errorf("error %q does not wrap ErrUsage (exit 2)", err)
			}
			if parseErr != tc.parse {
				t.Errorf("error %q came from Parse=%v, want Parse=%v", err, parseErr, tc.parse)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"--rate", "5", "-help"}} {
		_, err, parseErr := parseRun(args, nil)
		if !errors.Is(err, flag.ErrHelp) || errors.Is(err, ErrUsage) || !parseErr {
			t.Errorf("%q: error %v, want flag.ErrHelp from Parse (not ErrUsage)", args, err)
		}
	}
}

// TestUsagef: errors built with Usagef wrap ErrUsage and keep the text.
func TestUsagef(t *testing.T) {
	err := Usagef("--limit must be 0 to %d (got %d)", 10, 11)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--limit must be 0 to 10 (got 11)") {
		t.Errorf("Usagef = %v", err)
	}
}

// splitArgs and splitEnv decode FuzzParse's inputs: arguments are separated
// by newlines; the environment is NAME=value lines.
func splitArgs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func splitEnv(s string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// FuzzParse: whatever the arguments and environment, Parse and Validate
// never panic, every error wraps ErrUsage (exit 2) or is flag.ErrHelp, and a
// configuration that passes both keeps the invariants the job relies on.
// The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add("--rate\n31", "")
	f.Add("", "RECONCILE_RATE=31\nRECONCILE_ALLOW_RATE_ABOVE_LIMIT=1")
	f.Add("--request-timeout=200ms\n--max-attempts\n3", "RECONCILE_GRACE=1s")
	f.Fuzz(func(t *testing.T, args, envText string) {
		argv, env := splitArgs(args), splitEnv(envText)
		c, err, parseErr := parseRun(argv, env)
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if !parseErr {
					t.Fatalf("Validate returned flag.ErrHelp: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("args %q env %q: error %q wraps neither ErrUsage nor flag.ErrHelp", argv, env, err)
			}
			return
		}
		// What the job relies on once Validate said yes.
		switch {
		case !(c.Rate > 0) || math.IsNaN(c.Rate):
			t.Fatalf("accepted rate %v", c.Rate)
		case c.Rate > APIRateLimit && !c.AllowRateAboveLimit:
			t.Fatalf("accepted rate %v above the limit without --allow-rate-above-limit", c.Rate)
		case c.Concurrency < 1 || c.MaxAttempts < 1 || c.FlushSize < 1:
			t.Fatalf("accepted concurrency %d, max attempts %d, flush size %d", c.Concurrency, c.MaxAttempts, c.FlushSize)
		case c.PageSize < 1 || c.PageSize > 100000:
			t.Fatalf("accepted page size %d", c.PageSize)
		case c.RequestTimeout <= 0 || c.Grace < 0 || c.ProgressInterval <= 0 || c.DBRetryDeadline <= 0:
			t.Fatalf("accepted durations %+v", c)
		case c.FlushInterval <= 0 || c.FlushInterval > time.Second:
			t.Fatalf("accepted flush interval %v", c.FlushInterval)
		case c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase:
			t.Fatalf("accepted backoff %v..%v", c.BackoffBase, c.BackoffMax)
		case !(c.BreakerThreshold > 0 && c.BreakerThreshold <= 1):
			t.Fatalf("accepted breaker threshold %v", c.BreakerThreshold)
		case c.Endpoint == "" || c.Region == "":
			t.Fatalf("accepted empty endpoint %q or region %q", c.Endpoint, c.Region)
		case c.SignatureAlgorithm != "" && c.SignatureAlgorithm != "v2":
			t.Fatalf("accepted signature algorithm %q", c.SignatureAlgorithm)
		case c.PruneMax < 0:
			t.Fatalf("accepted prune max %d", c.PruneMax)
		case c.NoFixDrift && !c.VerifyExisting:
			t.Fatal("--no-fix-drift without --verify-existing after Validate")
		case ValidateLog(c.LogFormat, c.LogLevel) != nil:
			t.Fatalf("accepted log format %q level %q", c.LogFormat, c.LogLevel)
		}
		// Parsing is a function of its input: the same input gives the same
		// configuration.
		again, err2, _ := parseRun(argv, env)
		if err2 != nil || again != c {
			t.Fatalf("second parse of the same input: %+v, %v; first %+v", again, err2, c)
		}
	})
}

// TestRateMustBeFinite: a rate of +Inf is no rate bound at all (and sized
// the Gate's window from int(math.Floor(+Inf)): one request a second), and a
// huge one made the Gate allocate one slot per request of a second (1e10:
// out of memory). Validate refuses both.
func TestRateMustBeFinite(t *testing.T) {
	for _, v := range []string{"Inf", "+Inf", "infinity", "1e10", "100001"} {
		_, err, _ := parseRun([]string{"--rate", v, "--allow-rate-above-limit"}, nil)
		if err == nil {
			t.Fatalf("--rate %s --allow-rate-above-limit passes Validate", v)
		}
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--rate") {
			t.Errorf("--rate %s: error %v, want ErrUsage naming --rate", v, err)
		}
	}
}

// TestMetricsGroupingIsValidated: a bad --metrics-grouping (or its
// variable) is a usage error naming the flag, before anything runs.
func TestMetricsGroupingIsValidated(t *testing.T) {
	for _, bad := range []string{"job=x", "result=success", "instance", "1x=y", "__name__=y", "a=", "a=1,a=2"} {
		_, err, _ := parseRun([]string{"--metrics-grouping", bad}, nil)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--metrics-grouping") {
			t.Errorf("--metrics-grouping %q: %v, want a usage error naming the flag", bad, err)
		}
		_, err, _ = parseRun(nil, map[string]string{"RECONCILE_METRICS_GROUPING": bad})
		if !errors.Is(err, ErrUsage) {
			t.Errorf("RECONCILE_METRICS_GROUPING=%q: %v, want a usage error", bad, err)
		}
	}
}
