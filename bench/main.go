// Command bench measures reconcile end to end (issue #4): the real
// `reconcile run` binary, as a separate process, against the project's
// simulator (`reconcile simulate`, another process) and a fresh Postgres
// database per scenario. It reports from the simulator's own request log
// (GET /_sim/log) and from the processes' resource usage, and writes
// BENCHMARKS.md.
//
//	go run ./bench --scenario all --out BENCHMARKS.md
//
// Scenarios: rate (rate fidelity), scale (the limiter at 1,000/s), shared
// (adaptive rate under a shared budget, with and without a retry hint),
// overhead (the job's machinery without latency), big (1,000,000 desired
// rows: dry run, rerun when done, EXPLAIN of the pending query), baseline (a
// naive one-row-at-a-time reference, compared with scenario rate). --quick
// shrinks every N for a smoke run. See BENCHMARKS.md for what each measures.
//
// It is a main package without tests: `go test ./...` only compiles it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Scenario names, in the order `all` runs them.
var allScenarios = []string{"rate", "scale", "shared", "overhead", "big", "baseline"}

// defaultDatabaseURL is the admin connection string when --database-url is
// not given.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// sizes are the scenarios' N (rows) and the baseline's time budget.
type sizes struct {
	Rate, Scale, Shared, Overhead, Big int
	BaselineFor                        time.Duration
}

var (
	fullSizes  = sizes{Rate: 1800, Scale: 30000, Shared: 1800, Overhead: 100000, Big: 1000000, BaselineFor: 60 * time.Second}
	quickSizes = sizes{Rate: 300, Scale: 5000, Shared: 300, Overhead: 10000, Big: 100000, BaselineFor: 15 * time.Second}
)

type options struct {
	scenarios   []string
	out         string
	jsonOut     string
	fromJSON    string
	databaseURL string
	urlGiven    bool
	quick       bool
	bin         string
	verbose     bool
	keep        bool
	jobEnv      []string
	quietWait   time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == launchArg {
		os.Exit(launch(os.Args[2:]))
	}
	os.Exit(realMain(os.Args[1:]))
}

func realMain(args []string) int {
	var o options
	var scen string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&scen, "scenario", "all", "all, or a comma-separated list of: "+strings.Join(allScenarios, ", "))
	fs.StringVar(&o.out, "out", "", "write the markdown report to this file (default: stdout)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the raw measurements as JSON to this file")
	fs.StringVar(&o.fromJSON, "from-json", "", "render the markdown from a --json file instead of measuring")
	fs.StringVar(&o.databaseURL, "database-url", defaultDatabaseURL, "admin connection string; each scenario creates and drops its own database on that server")
	fs.BoolVar(&o.quick, "quick", false, "shrink every N for a smoke run (figures are not representative)")
	fs.StringVar(&o.bin, "reconcile-bin", "", "use this reconcile binary instead of building ./cmd/reconcile")
	fs.BoolVar(&o.verbose, "v", false, "copy the job's and the simulator's logs to stderr")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binaries, logs, request logs) and print its path")
	fs.DurationVar(&o.quietWait, "quiet-wait", 45*time.Second, "before each measured run, wait up to this long for the machine to be mostly idle (other processes under 25% of the CPUs); 0: don't wait")
	fs.Func("job-env", "KEY=VALUE added to the environment of `reconcile run` (repeatable; e.g. GODEBUG=gctrace=1 for a diagnosis, with --keep)", func(v string) error {
		if !strings.Contains(v, "=") {
			return errors.New("want KEY=VALUE")
		}
		o.jobEnv = append(o.jobEnv, v)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./bench [--scenario all|rate,scale,...] [--quick] [--out BENCHMARKS.md]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "database-url" {
			o.urlGiven = true
		}
	})
	if o.fromJSON != "" {
		return renderFromJSON(o)
	}
	if scen == "all" || scen == "" {
		o.scenarios = allScenarios
	} else {
		for _, s := range strings.Split(scen, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(allScenarios, s) {
				fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (want all or %s)\n", s, strings.Join(allScenarios, ", "))
				return 2
			}
			o.scenarios = append(o.scenarios, s)
		}
		// The baseline's speed-up is over scenario rate: run it too.
		if slices.Contains(o.scenarios, "baseline") && !slices.Contains(o.scenarios, "rate") {
			o.scenarios = append([]string{"rate"}, o.scenarios...)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b, err := newBench(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	defer b.close()
	res := b.runAll(ctx)
	if o.jsonOut != "" {
		if data, err := json.MarshalIndent(res, "", "  "); err == nil {
			if err := os.WriteFile(o.jsonOut, append(data, '\n'), 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			}
		}
	}
	if err := writeReport(o.out, res); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if ctx.Err() != nil {
		return 130
	}
	for _, s := range res.Scenarios {
		if s.Err != "" {
			return 1
		}
	}
	return 0
}

func renderFromJSON(o options) int {
	data, err := os.ReadFile(o.fromJSON)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	var res result
	if err := json.Unmarshal(data, &res); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s: %v\n", o.fromJSON, err)
		return 1
	}
	if err := writeReport(o.out, &res); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func writeReport(out string, res *result) error {
	md := render(res)
	if out == "" {
		_, err := os.Stdout.WriteString(md)
		return err
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		return err
	}
	abs, _ := filepath.Abs(out)
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", abs)
	return nil
}

// runAll runs the selected scenarios in order; a failing scenario is
// recorded and the others still run.
func (b *bench) runAll(ctx context.Context) *result {
	res := &result{
		Command: b.command(),
		Code:    b.codeVersion(ctx),
		Machine: b.machine(ctx),
		Started: time.Now().UTC(),
		Quick:   b.o.quick,
		Sizes:   b.sz,
	}
	begin := time.Now()
	for _, name := range b.o.scenarios {
		if ctx.Err() != nil {
			break
		}
		b.logf("== scenario %s", name)
		t0 := time.Now()
		sr := &scenarioResult{ID: name}
		var err error
		switch name {
		case "rate":
			err = b.scenarioRate(ctx, sr)
		case "scale":
			err = b.scenarioScale(ctx, sr)
		case "shared":
			err = b.scenarioShared(ctx, sr)
		case "overhead":
			err = b.scenarioOverhead(ctx, sr)
		case "big":
			err = b.scenarioBig(ctx, sr)
		case "baseline":
			err = b.scenarioBaseline(ctx, sr, res)
		}
		sr.Elapsed = time.Since(t0)
		if err != nil {
			sr.Err = err.Error()
			b.logf("!! scenario %s: %v", name, err)
		}
		b.logf("== scenario %s finished in %s", name, sr.Elapsed.Round(time.Second))
		res.Scenarios = append(res.Scenarios, sr)
	}
	res.Total = time.Since(begin)
	return res
}

func (b *bench) command() string {
	cmd := "go run ./bench --scenario " + strings.Join(b.o.scenarios, ",")
	if len(b.o.scenarios) == len(allScenarios) {
		cmd = "go run ./bench --scenario all"
	}
	if b.o.quick {
		cmd += " --quick"
	}
	if b.o.urlGiven {
		cmd += " --database-url '" + redactURL(b.o.databaseURL) + "'"
	}
	if b.o.out != "" {
		cmd += " --out " + filepath.Base(b.o.out)
	}
	return cmd
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
