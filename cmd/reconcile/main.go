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

	"github.com/reconcile/reconcile/internal/app"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/logging"
)

const usage = `usage: reconcile <command> [flags]

commands:
  migrate    apply the embedded schema migrations (safe to repeat, safe in parallel)
  run        one reconciliation pass over the pending desired rows (--dry-run: call nothing)
  verify     describe every desired domain; record in_sync, drifted or missing; change nothing
  simulate   serve a simulator of the Live API (for tests, demos, benchmarks)
  demo       migrate a demo database, load sample rows, run against the simulator, print the outcomes
  version    print the program version

Run "reconcile <command> -h" for the flags of a command.`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		app.Version = bi.Main.Version
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cmd, args := args[0], args[1:]
	redactor := logging.NewRedactor()
	env := app.Env{Stdout: stdout, Stderr: stderr, Redactor: redactor}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var logFormat, logLevel string
	var err error
	switch cmd {
	case "migrate":
		var url string
		config.DatabaseFlag(fs, &url)
		config.LogFlags(fs, &logFormat, &logLevel)
		if err = parse(fs, args, stderr, "usage: reconcile migrate [flags]"); err == nil {
			if lerr := config.ValidateLog(logFormat, logLevel); lerr != nil {
				err = config.Usagef("%v", lerr)
			}
		}
		if err == nil {
			env.Logger = logging.New(stderr, logging.Options{Format: logFormat, Level: logLevel, Redactor: redactor})
			err = app.Migrate(ctx, url, env)
		}
	case "run":
		var c config.Run
		config.RunFlags(fs, &c)
		if err = parse(fs, args, stderr, "usage: reconcile run [flags]"); err == nil {
			err = c.Validate()
		}
		if err == nil {
			env.Logger = logging.New(stderr, logging.Options{Format: c.LogFormat, Level: c.LogLevel, Redactor: redactor})
			err = app.Run(ctx, c, env)
		}
	case "verify":
		var c config.Run
		config.RunFlags(fs, &c)
		if err = parse(fs, args, stderr, "usage: reconcile verify [flags]\nDescribes every desired domain and records in_sync, drifted or missing; changes nothing."); err == nil {
			err = c.Validate()
		}
		if err == nil {
			env.Logger = logging.New(stderr, logging.Options{Format: c.LogFormat, Level: c.LogLevel, Redactor: redactor})
			err = app.Verify(ctx, c, env)
		}
	case "simulate":
		err = simulate(ctx, fs, args, env)
	case "demo":
		err = demo(ctx, fs, args, env)
	case "version":
		fmt.Fprintln(stdout, app.Version)
		return 0
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "reconcile: unknown command %q\n\n%s\n", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	code := app.ExitCode(err)
	if err != nil && code != 1 || err != nil && env.Logger == nil {
		fmt.Fprintf(stderr, "reconcile %s: %s\n", cmd, redactor.Scrub(err.Error()))
	} else if err != nil && !errors.Is(err, app.ErrNotDone) {
		env.Logger.Error("failed", "error", err)
	}
	return code
}

// parse applies the environment and args to fs; -h prints the flags.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer, head string) error {
	err := config.Parse(fs, args, config.Environ)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(stderr, fs, head)
	}
	return err
}
