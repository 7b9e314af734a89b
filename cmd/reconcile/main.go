// Command reconcile makes Alibaba Cloud ApsaraVideo Live's snapshot-callback
// configs match the desired state kept in Postgres. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/reconcile/reconcile/internal/app"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/logging"
	"github.com/reconcile/reconcile/internal/progress"
)

const usage = `usage: reconcile <command> [flags]

commands:
  migrate      apply the embedded schema migrations (safe to repeat, safe in parallel)
  run          one reconciliation pass over the pending desired rows (--dry-run: call nothing)
  verify       describe every desired domain; record in_sync, drifted or missing; change nothing
  import       load desired rows from a CSV file, all or nothing (--replace: also delete rows not in it)
  plan         what the next run would do: add, update, retry-failed, invalid, done (exit 5: work pending)
  report       the audit report of a run (default: the latest that is not a dry run)
  history      history prune --older-than 90d: delete old outcome rows, keeping each domain's latest
  simulate     serve a simulator of the Live API (for tests, demos, benchmarks)
  healthcheck  healthcheck URL: exit 0 when URL answers 2xx (a container's health probe)
  demo         migrate a demo database, load sample rows, run against the simulator, print the outcomes
  version      print the program version and revision (also: reconcile --version)

Run "reconcile help <command>" or "reconcile <command> -h" for the flags of a command.`

// DefaultMemoryLimit is the Go runtime's soft memory limit of `run` and
// `verify` when GOMEMLIMIT is not set: the garbage collector works harder
// near it instead of letting the heap grow to twice its live size, so that
// the job stays well under a 64 MiB container limit at large --flush-size
// (about 4% more CPU there). It is soft: the job is never stopped for going
// over it. Other commands (the simulator keeps every request in memory)
// run without it.
const DefaultMemoryLimit = 40 << 20

// AccountMemory is what DefaultMemoryLimit grows by for each account of a
// multi-account pass beyond the first: each account keeps a page of rows,
// an outcome buffer, a client and its workers' stacks. Without it, 50
// accounts' live heap (about 35 MiB) sat at the limit and the collector ran
// back to back (a third of the job's CPU).
const AccountMemory = 2 << 20

// memoryLimited reports whether the command runs under DefaultMemoryLimit.
func memoryLimited(args []string) bool {
	_, set := os.LookupEnv("GOMEMLIMIT")
	return !set && len(args) > 0 && (args[0] == "run" || args[0] == "verify")
}

func main() {
	if memoryLimited(os.Args[1:]) {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command of args and returns the exit code. Help that was
// asked for (-h, --help, reconcile help ...) goes to stdout with exit 0;
// a usage error goes to stderr with exit 2.
func run(args []string, stdout, stderr io.Writer) int {
	bi, _ := debug.ReadBuildInfo()
	info := buildVersion(bi, stampVersion, stampRevision)
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return 0
	case "help":
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprintln(stdout, usage)
		return 0
	case "--version", "-version":
		args = append([]string{"version"}, args[1:]...)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cmd, args := args[0], args[1:]
	redactor := logging.NewRedactor()
	defer scrubPanic(redactor, stderr)
	env := app.Env{Stdout: stdout, Stderr: stderr, Redactor: redactor, Version: info.Version}
	if memoryLimited([]string{cmd}) && debug.SetMemoryLimit(-1) == DefaultMemoryLimit {
		env.Accounts = func(n int) { debug.SetMemoryLimit(DefaultMemoryLimit + int64(max(n-1, 0))*AccountMemory) }
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var logFormat, logLevel string
	var err error
	switch cmd {
	case "migrate":
		var url string
		config.DatabaseFlag(fs, &url)
		config.LogFlags(fs, &logFormat, &logLevel)
		var src config.Sources
		if src, err = parse(fs, args, env, "usage: reconcile migrate [flags]"); err == nil {
			err = src.ValidateLog(logFormat, logLevel)
		}
		if err == nil {
			env.Logger = logging.New(stderr, logging.Options{Format: logFormat, Level: logLevel, Redactor: redactor})
			err = app.Migrate(ctx, url, env)
		}
	case "run", "verify":
		head, flags, pass := "usage: reconcile run [flags]", config.RunFlags, app.Run
		if cmd == "verify" {
			head = "usage: reconcile verify [flags]\nDescribes every desired domain and records in_sync, drifted or missing; changes nothing."
			flags, pass = config.VerifyFlags, app.Verify
		}
		var c config.Run
		flags(fs, &c)
		var src config.Sources
		if src, err = parse(fs, args, env, head); err == nil {
			err = c.ValidateFrom(src)
		}
		if err == nil {
			logOut, bar := io.Writer(stderr), terminalBar(&c, stderr, &env)
			if bar != nil {
				logOut = bar.Writer()
			}
			env.Logger = logging.New(logOut, logging.Options{Format: c.LogFormat, Level: c.LogLevel, Redactor: redactor})
			err = pass(ctx, c, env)
			bar.Finish()
		}
	case "import", "plan", "report", "history":
		return ops(ctx, cmd, fs, args, env)
	case "simulate":
		err = simulate(ctx, fs, args, env)
	case "healthcheck":
		if err = healthcheck(ctx, fs, args, env); err != nil && !errors.Is(err, config.ErrUsage) && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "reconcile healthcheck: %s\n", redactor.Scrub(err.Error()))
			return 1 // whatever failed: unhealthy (Docker reads exit 1 so)
		}
	case "demo":
		err = demo(ctx, fs, args, env)
	case "version":
		if _, err = parse(fs, args, env, "usage: reconcile version\nprints the program version and the revision it was built from"); err == nil {
			fmt.Fprintln(stdout, info)
		}
	default:
		fmt.Fprintf(stderr, "reconcile: unknown command %q\n\n%s\n", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	code := app.ExitCode(err)
	switch {
	case err == nil, errors.Is(err, app.ErrNotDone), errors.Is(err, app.ErrPlanPending):
		// The summary line already says which rows are not done or pending.
	case env.Logger == nil:
		// Before the logger exists (bad flags): one plain line.
		fmt.Fprintf(stderr, "reconcile %s: %s\n%s", cmd, redactor.Scrub(err.Error()), usageHint(cmd, err))
	default:
		env.Logger.Error("stopped", "command", cmd, "exit_code", code, "error", err)
	}
	return code
}

// usageHint is the line that follows an unknown flag's error: where the
// command's flags are listed.
func usageHint(cmd string, err error) string {
	if !errors.Is(err, config.ErrUnknownFlag) {
		return ""
	}
	return fmt.Sprintf("run \"reconcile %s -h\" for its flags\n", cmd)
}

// scrubPanic turns a panic of the main goroutine (workers' panics are
// re-raised there by conc) into a scrubbed report and exit code 70: the
// panic value and the stack pass through the redactor, so no secret the
// process knows can reach the output.
func scrubPanic(r *logging.Redactor, stderr io.Writer) {
	if p := recover(); p != nil {
		reportPanic(r, stderr, p, debug.Stack())
		os.Exit(70)
	}
}

// reportPanic writes panic value p and its stack through the redactor.
func reportPanic(r *logging.Redactor, w io.Writer, p any, stack []byte) {
	fmt.Fprintf(w, "reconcile: panic: %s\n%s", r.Scrub(fmt.Sprint(p)), r.Scrub(string(stack)))
}

// terminalBar returns a progress bar when stderr is a terminal and the log
// format is not forced to JSON (nil otherwise: the JSON progress lines
// stay). With a bar, logs go through it as text and progress updates come
// every second.
func terminalBar(c *config.Run, stderr io.Writer, env *app.Env) *progress.Bar {
	if c.DryRun || c.LogFormat == "json" {
		return nil
	}
	bar := progress.New(stderr, 0)
	if bar == nil {
		return nil
	}
	c.LogFormat = "text"
	c.ProgressInterval = min(c.ProgressInterval, time.Second)
	env.Progress, env.ProgressDone = bar.Func(), bar.Finish
	return bar
}

// parse applies args and the environment to fs (config.Parse); -h prints
// head and the flags on stdout and returns flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string, env app.Env, head string) (config.Sources, error) {
	src, err := config.Parse(fs, args, config.Environ)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(env.Stdout, fs, head)
	}
	return src, err
}
