package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/reconcile/reconcile/internal/app"
	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/importer"
	"github.com/reconcile/reconcile/internal/logging"
	"github.com/reconcile/reconcile/internal/plan"
)

// ops runs `reconcile import`, `reconcile plan`, `reconcile report` or
// `reconcile history` (cmd) and returns the exit code: app.ExitCode of the
// error (2 for bad flags, 5 when plan finds pending rows, 6 when Postgres
// fails, 1 for bad import lines and no such run). Errors are printed on stderr as "reconcile <cmd>: <reason>",
// except ErrPlanPending (the plan is the message).
func ops(ctx context.Context, cmd string, fs *flag.FlagSet, args []string, env app.Env) int {
	var err error
	switch cmd {
	case "import":
		err = importCmd(ctx, fs, args, env)
	case "plan":
		err = planCmd(ctx, fs, args, env)
	case "report":
		err = reportCmd(ctx, fs, args, env)
	case "history":
		err = historyCmd(ctx, fs, args, env)
	default:
		err = config.Usagef("unknown command %q", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil && !errors.Is(err, app.ErrPlanPending) {
		fmt.Fprintf(env.Stderr, "reconcile %s: %s\n", cmd, env.Redactor.Scrub(err.Error()))
	}
	return app.OpsExitCode(err)
}

// importCmd parses `reconcile import [flags] FILE.csv|-` (flags may also
// follow the file).
func importCmd(ctx context.Context, fs *flag.FlagSet, args []string, env app.Env) error {
	c := app.ImportConfig{Format: app.FormatTable, Stdin: os.Stdin}
	var logFormat, logLevel string
	config.DatabaseFlag(fs, &c.DatabaseURL)
	fs.BoolVar(&c.Replace, "replace", false, "also delete the desired rows whose domain is not in the file")
	fs.BoolVar(&c.SkipInvalid, "skip-invalid", false, "skip and count bad lines instead of stopping the import")
	fs.StringVar(&c.Format, "format", c.Format, "output: table or json")
	config.CommandLineOnly(fs, "replace", "skip-invalid", "format")
	config.LogFlags(fs, &logFormat, &logLevel)
	head := "usage: reconcile import [flags] FILE.csv (- reads stdin)\nthe first line must be: " + importer.Header
	files, err := parseWithArgs(fs, args, env, head)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return config.Usagef("import takes one CSV file (or - for stdin), got %d arguments", len(files))
	}
	c.File = files[0]
	if err := opsSetup(c.Validate(), logFormat, logLevel, &env); err != nil {
		return err
	}
	return app.Import(ctx, c, env)
}

// planCmd parses `reconcile plan [flags]`.
func planCmd(ctx context.Context, fs *flag.FlagSet, args []string, env app.Env) error {
	c := app.PlanConfig{Limit: plan.DefaultLimit, Format: app.FormatTable}
	var logFormat, logLevel string
	config.DatabaseFlag(fs, &c.DatabaseURL)
	fs.IntVar(&c.Limit, "limit", c.Limit, "domains listed per class (the first by name)")
	fs.StringVar(&c.Format, "format", c.Format, "output: table or json")
	config.CommandLineOnly(fs, "limit", "format")
	config.LogFlags(fs, &logFormat, &logLevel)
	if err := parse(fs, args, env.Stderr, "usage: reconcile plan [flags]\nexit 0: nothing pending; 5: the next run has work to do"); err != nil {
		return err
	}
	if err := opsSetup(c.Validate(), logFormat, logLevel, &env); err != nil {
		return err
	}
	return app.Plan(ctx, c, env)
}

// reportCmd parses `reconcile report [flags]`.
func reportCmd(ctx context.Context, fs *flag.FlagSet, args []string, env app.Env) error {
	c := app.ReportConfig{Format: app.FormatTable}
	var logFormat, logLevel string
	config.DatabaseFlag(fs, &c.DatabaseURL)
	fs.Int64Var(&c.RunID, "run", 0, "run id to report (0: the latest run that is not a dry run)")
	fs.StringVar(&c.Format, "format", c.Format, "output: table, json or csv")
	config.CommandLineOnly(fs, "run", "format")
	config.LogFlags(fs, &logFormat, &logLevel)
	if err := parse(fs, args, env.Stderr, "usage: reconcile report [flags]"); err != nil {
		return err
	}
	if err := opsSetup(c.Validate(), logFormat, logLevel, &env); err != nil {
		return err
	}
	return app.Report(ctx, c, env)
}

// historyUsage heads `reconcile history -h`.
const historyUsage = `usage: reconcile history prune --older-than AGE [flags]
deletes the outcome rows (reconcile_outcomes) older than AGE (90d, 36h), except each domain's latest;
run summaries (reconcile_runs) are kept. Batched: safe while a run is going; safe to repeat.`

// historyCmd parses `reconcile history prune [flags]`.
func historyCmd(ctx context.Context, fs *flag.FlagSet, args []string, env app.Env) error {
	if len(args) == 0 || args[0] != "prune" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(env.Stderr, historyUsage)
			return flag.ErrHelp
		}
		return config.Usagef("history needs a subcommand: prune\n%s", historyUsage)
	}
	c := app.HistoryPruneConfig{BatchSize: app.DefaultHistoryBatch, Format: app.FormatTable}
	var logFormat, logLevel, olderThan string
	config.DatabaseFlag(fs, &c.DatabaseURL)
	fs.StringVar(&olderThan, "older-than", "", "delete outcome rows that finished longer ago than this: whole days (90d) or a duration (36h); at least 1h")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "outcome rows looked at per transaction")
	fs.StringVar(&c.Format, "format", c.Format, "output: table or json")
	config.CommandLineOnly(fs, "older-than", "batch-size", "format")
	config.LogFlags(fs, &logFormat, &logLevel)
	if err := parse(fs, args[1:], env.Stderr, historyUsage); err != nil {
		return err
	}
	if olderThan == "" {
		return config.Usagef("history prune needs --older-than (e.g. 90d)")
	}
	var err error
	if c.OlderThan, err = app.ParseAge(olderThan); err != nil {
		return err
	}
	if err := opsSetup(c.Validate(), logFormat, logLevel, &env); err != nil {
		return err
	}
	return app.PruneHistory(ctx, c, env)
}

// opsSetup returns the validation error, else checks the log flags and sets
// env.Logger (warnings only: the commands' output is on stdout).
func opsSetup(validateErr error, logFormat, logLevel string, env *app.Env) error {
	if validateErr != nil {
		return validateErr
	}
	if err := config.ValidateLog(logFormat, logLevel); err != nil {
		return config.Usagef("%v", err)
	}
	env.Logger = logging.New(env.Stderr, logging.Options{Format: logFormat, Level: logLevel, Redactor: env.Redactor})
	return nil
}

// parseWithArgs is parse for commands with positional arguments: it applies
// the environment, then the flags, which may come before and after the
// arguments ("--" ends the flags), and returns the arguments.
func parseWithArgs(fs *flag.FlagSet, args []string, env app.Env, head string) ([]string, error) {
	if err := parse(fs, nil, env.Stderr, head); err != nil { // the environment only
		return nil, err
	}
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				config.Usage(env.Stderr, fs, head)
				return nil, err
			}
			return nil, config.Usagef("%v", err)
		}
		left := fs.Args()
		if consumed := rest[:len(rest)-len(left)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, left...), nil
		}
		if len(left) == 0 {
			return pos, nil
		}
		pos = append(pos, left[0])
		rest = left[1:]
	}
}
