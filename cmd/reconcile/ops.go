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
		fmt.Fprintf(env.Stderr, "reconcile %s: %s\n%s", cmd, env.Redactor.Scrub(err.Error()), usageHint(cmd, err))
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
	files, src, err := parseArgs(fs, args, env, head)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return config.Usagef("import takes one CSV file (or - for stdin), got %d arguments", len(files))
	}
	c.File = files[0]
	if err := opsSetup(c.Validate(), src, logFormat, logLevel, &env); err != nil {
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
	src, err := parse(fs, args, env, "usage: reconcile plan [flags]\nexit 0: nothing pending; 5: the next run has work to do")
	if err != nil {
		return err
	}
	if err := opsSetup(c.Validate(), src, logFormat, logLevel, &env); err != nil {
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
	src, err := parse(fs, args, env, "usage: reconcile report [flags]")
	if err != nil {
		return err
	}
	if err := opsSetup(c.Validate(), src, logFormat, logLevel, &env); err != nil {
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
			fmt.Fprintln(env.Stdout, historyUsage)
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
	src, err := parse(fs, args[1:], env, historyUsage)
	if err != nil {
		return err
	}
	if olderThan == "" {
		return config.Usagef("history prune needs --older-than (e.g. 90d)")
	}
	if c.OlderThan, err = app.ParseAge(olderThan); err != nil {
		return err
	}
	if err := opsSetup(c.Validate(), src, logFormat, logLevel, &env); err != nil {
		return err
	}
	return app.PruneHistory(ctx, c, env)
}

// opsSetup returns the validation error, else checks the log flags (named
// as src says) and sets env.Logger (warnings only: the commands' output is
// on stdout).
func opsSetup(validateErr error, src config.Sources, logFormat, logLevel string, env *app.Env) error {
	if validateErr != nil {
		return validateErr
	}
	if err := src.ValidateLog(logFormat, logLevel); err != nil {
		return err
	}
	env.Logger = logging.New(env.Stderr, logging.Options{Format: logFormat, Level: logLevel, Redactor: env.Redactor})
	return nil
}

// parseWithArgs is parse for commands with positional arguments: it applies
// the flags, which may come before and after the arguments ("--" ends the
// flags), then the environment, and returns the arguments. -h prints head
// and the flags on stdout and returns flag.ErrHelp.
func parseWithArgs(fs *flag.FlagSet, args []string, env app.Env, head string) ([]string, error) {
	pos, _, err := parseArgs(fs, args, env, head)
	return pos, err
}

// parseArgs is parseWithArgs that also returns where the values came from.
func parseArgs(fs *flag.FlagSet, args []string, env app.Env, head string) ([]string, config.Sources, error) {
	pos, src, err := config.ParseArgs(fs, args, config.Environ)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(env.Stdout, fs, head)
	}
	return pos, src, err
}
