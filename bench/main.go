// Command bench measures reconcile end to end: the real
// `reconcile run` binary, as a separate process, against the project's
// simulator (`reconcile simulate`, another process) and a fresh Postgres
// database per scenario. It reports from the simulator's own request log
// (GET /_sim/log) and from the processes' resource usage, and writes
// BENCHMARKS.md.
//
//	go run ./bench --scenario all --out BENCHMARKS.md
//
// Scenarios: rate (rate fidelity), scale (the limiter at 1,000/s), shared
// (adaptive rate under hidden budgets of 10–25 calls/s, with throttled
// requests counted by the server's limiter or not),
// overhead (the job's machinery without latency), big (1,000,000 desired
// rows: dry run, rerun when done, EXPLAIN of the pending query), baseline (a
// naive one-row-at-a-time reference, compared with scenario rate), faults
// (the API fault matrix: every fault at once, the job rerun
// until it exits 0), accounts (50 accounts of 30 calls/s each in one run;
// with a hidden lower limit and a refused key; as 4 shard processes).
// --quick shrinks every N for a smoke run. See BENCHMARKS.md for what each
// measures.
//
// --from-json a.json,b.json renders the report from the --json files of
// several invocations (say, one scenario measured again): their scenarios
// are merged, a later file's replacing an earlier one's of the same name.
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
var allScenarios = []string{"rate", "scale", "shared", "overhead", "big", "baseline", "faults", "accounts"}

// defaultDatabaseURL is the admin connection string when --database-url is
// not given.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// sizes are the scenarios' N (rows) and the baseline's time budget.
type sizes struct {
	// Shared is seconds of budget per run of scenario shared (rows =
	// Shared × the run's budget).
	Rate, Scale, Shared, Overhead, Big int
	BaselineFor                        time.Duration
	Faults                             int `json:",omitempty"`
	// Accounts is scenario accounts' number of accounts, AccountRows its
	// rows per account (AccountRows / 30 seconds of work at the rate).
	Accounts    int `json:",omitempty"`
	AccountRows int `json:",omitempty"`
}

var (
	fullSizes = sizes{Rate: 1800, Scale: 30000, Shared: 120, Overhead: 100000, Big: 1000000, BaselineFor: 60 * time.Second, Faults: 10000,
		Accounts: 50, AccountRows: 1800}
	quickSizes = sizes{Rate: 300, Scale: 5000, Shared: 20, Overhead: 10000, Big: 100000, BaselineFor: 15 * time.Second, Faults: 2000,
		Accounts: 50, AccountRows: 150}
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
	notes       string
	// accountsSize is --accounts-size (NxR), "" for the default.
	accountsSize string
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
	fs.StringVar(&o.fromJSON, "from-json", "", "render the markdown from a --json file instead of measuring; a comma-separated list merges several (a later file's scenario replaces an earlier one's); with --json, the merged data is written there")
	fs.StringVar(&o.databaseURL, "database-url", defaultDatabaseURL, "admin connection string; each scenario creates and drops its own database on that server")
	fs.StringVar(&o.notes, "notes", "", "a markdown file whose text goes into the report as its \"Notes\" section (what the figures alone do not say: a comparison run, a change of machine)")
	fs.BoolVar(&o.quick, "quick", false, "shrink every N for a smoke run (figures are not representative)")
	fs.StringVar(&o.accountsSize, "accounts-size", "", "scenario accounts: ACCOUNTSxROWS, the accounts and the rows of each (default 50x1800, with --quick 50x150)")
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
	if o.accountsSize != "" {
		if _, _, err := parseAccountsSize(o.accountsSize); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 2
		}
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
	saveJSON(o.jsonOut, res)
	if err := writeReport(o.out, o.notes, res); err != nil {
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
	var parts []*result
	files := strings.Split(o.fromJSON, ",")
	for _, f := range files {
		f = strings.TrimSpace(f)
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
		var res result
		if err := json.Unmarshal(data, &res); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", f, err)
			return 1
		}
		parts = append(parts, &res)
	}
	res := parts[0]
	if len(parts) > 1 {
		cmd := "go run ./bench --from-json " + strings.Join(files, ",")
		if o.out != "" {
			cmd += " --out " + filepath.Base(o.out)
		}
		res = mergeResults(parts, cmd, o.out)
		saveJSON(o.jsonOut, res)
	}
	if err := writeReport(o.out, o.notes, res); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// mergeResults merges the results of several invocations: the scenarios
// of all (a later part's replacing an earlier one's of the same id), in
// the order of allScenarios, the machine of the first, and each part's
// command, code, date and time in Parts. Command becomes the one
// invocation that measures every merged scenario.
func mergeResults(parts []*result, mergeCmd, out string) *result {
	res := &result{Machine: parts[0].Machine, Started: parts[0].Started, Sizes: parts[0].Sizes, MergedBy: mergeCmd}
	byID := map[string]*scenarioResult{}
	for _, p := range parts {
		res.Quick = res.Quick || p.Quick
		res.Total += p.Total
		if p.Started.Before(res.Started) {
			res.Started = p.Started
		}
		res.Sizes.fill(p.Sizes)
		if len(p.Parts) > 0 {
			res.Parts = append(res.Parts, p.Parts...)
		} else {
			var ids []string
			for _, s := range p.Scenarios {
				ids = append(ids, s.ID)
			}
			res.Parts = append(res.Parts, resultPart{Command: p.Command, Code: p.Code, Started: p.Started,
				Total: p.Total, Scenarios: ids, LoadBefore: p.Machine.LoadBefore})
		}
		for _, s := range p.Scenarios {
			byID[s.ID] = s
		}
	}
	var ids []string
	for _, id := range allScenarios {
		if s := byID[id]; s != nil {
			res.Scenarios = append(res.Scenarios, s)
			ids = append(ids, id)
			delete(byID, id)
		}
	}
	for _, s := range byID { // ids this program no longer knows, last
		res.Scenarios = append(res.Scenarios, s)
	}
	codes := map[string]bool{}
	for _, p := range res.Parts {
		codes[p.Code] = true
	}
	if len(codes) == 1 {
		res.Code = res.Parts[0].Code
	}
	list := strings.Join(ids, ",")
	if len(ids) == len(allScenarios) {
		list = "all"
	}
	res.Command = rewriteCommand(parts[0].Command, list, out)
	return res
}

// fill sets the zero sizes of z from o (a part measured with a program
// that knew more scenarios).
func (z *sizes) fill(o sizes) {
	for _, f := range []struct{ dst, src *int }{{&z.Rate, &o.Rate}, {&z.Scale, &o.Scale}, {&z.Shared, &o.Shared},
		{&z.Overhead, &o.Overhead}, {&z.Big, &o.Big}, {&z.Faults, &o.Faults}, {&z.Accounts, &o.Accounts}, {&z.AccountRows, &o.AccountRows}} {
		if *f.dst == 0 {
			*f.dst = *f.src
		}
	}
	if z.BaselineFor == 0 {
		z.BaselineFor = o.BaselineFor
	}
}

// rewriteCommand returns cmd (a bench command line as command() writes it)
// with the --scenario value replaced by list and the --out value by out's
// base name (dropped when out is empty).
func rewriteCommand(cmd, list, out string) string {
	f := strings.Fields(cmd)
	var w []string
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case "--scenario":
			w = append(w, f[i], list)
			i++
			continue
		case "--out":
			i++
			continue
		}
		w = append(w, f[i])
	}
	if !slices.Contains(w, "--scenario") {
		w = append(w, "--scenario", list)
	}
	if out != "" {
		w = append(w, "--out", filepath.Base(out))
	}
	return strings.Join(w, " ")
}

func writeReport(out, notesFile string, res *result) error {
	md := render(res)
	if notesFile != "" {
		b, err := os.ReadFile(notesFile)
		if err != nil {
			return fmt.Errorf("--notes: %w", err)
		}
		md = strings.Replace(md, "## How it measures\n", "## Notes\n\n"+strings.TrimSpace(string(b))+"\n\n## How it measures\n", 1)
	}
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
		case "faults":
			err = b.scenarioFaults(ctx, sr)
		case "accounts":
			err = b.scenarioAccounts(ctx, sr)
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
	if b.o.accountsSize != "" {
		cmd += " --accounts-size " + b.o.accountsSize
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

// saveJSON writes res as indented JSON to path (nothing when path is
// empty); a failure is reported and does not stop the benchmark.
func saveJSON(path string, res *result) {
	if path == "" {
		return
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err == nil {
		err = os.WriteFile(path, append(data, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	}
}
