package config

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBoolWordsEverywhere: every boolean flag of run takes the same words,
// in any case, from its variable and as --flag=WORD; anything else is a
// usage error that lists the words.
func TestBoolWordsEverywhere(t *testing.T) {
	words := map[string]bool{"true": true, "yes": true, "on": true, "1": true, "false": false, "no": false, "off": false, "0": false}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var r Run
	RunFlags(fs, &r)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if !isBoolValue(f.Value) {
			return
		}
		n++
		for w, want := range words {
			for _, form := range []string{w, strings.ToUpper(w), strings.ToUpper(w[:1]) + w[1:]} {
				env := map[string]string{envName(f.Name): form}
				for _, how := range []struct {
					args []string
					env  map[string]string
				}{{nil, env}, {[]string{"--" + f.Name + "=" + form}, nil}} {
					fs := flag.NewFlagSet("run", flag.ContinueOnError)
					var c Run
					RunFlags(fs, &c)
					if _, err := Parse(fs, how.args, func(k string) (string, bool) { v, ok := how.env[k]; return v, ok }); err != nil {
						t.Errorf("--%s as %q (args %q): %v", f.Name, form, how.args, err)
						continue
					}
					if got := fs.Lookup(f.Name).Value.(flag.Getter).Get().(bool); got != want {
						t.Errorf("--%s as %q (args %q): %v, want %v", f.Name, form, how.args, got, want)
					}
				}
			}
		}
		for _, bad := range []string{"t", "f", "y", "maybe", "2", " true"} {
			_, err, _ := parseRun(nil, map[string]string{envName(f.Name): bad})
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), envName(f.Name)) || !strings.Contains(err.Error(), BoolWords) {
				t.Errorf("%s=%q: %v, want a usage error naming the variable and the words", envName(f.Name), bad, err)
			}
		}
	})
	if n < 7 {
		t.Errorf("only %d boolean flags", n)
	}
}

// TestMessagesNameTheVariable: a value that came from a variable is blamed
// on the variable, not on the flag nobody typed; the same value given as a
// flag is blamed on the flag.
func TestMessagesNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env, flag, value, fromEnv, fromFlag string
	}{
		{"RECONCILE_RATE", "rate", "31", "RECONCILE_RATE=31 is above the API's limit", "--rate 31 is above the API's limit"},
		{"RECONCILE_CONCURRENCY", "concurrency", "0", "RECONCILE_CONCURRENCY must be at least 1", "--concurrency must be at least 1"},
		{"RECONCILE_PAGE_SIZE", "page-size", "0", "RECONCILE_PAGE_SIZE must be 1 to", "--page-size must be 1 to"},
		{"RECONCILE_LOG_FORMAT", "log-format", "xml", "RECONCILE_LOG_FORMAT must be auto, json or text", "--log-format must be auto"},
		{"RECONCILE_BACKOFF_BASE", "backoff-base", "0s", "RECONCILE_BACKOFF_BASE must be above 0", "--backoff-base must be above 0"},
	} {
		_, err, _ := parseRun(nil, map[string]string{tc.env: tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.fromEnv) || strings.Contains(err.Error(), "--"+tc.flag+" ") {
			t.Errorf("%s=%s: %v, want %q and no --%s", tc.env, tc.value, err, tc.fromEnv, tc.flag)
		}
		_, err, _ = parseRun([]string{"--" + tc.flag, tc.value}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.fromFlag) {
			t.Errorf("--%s %s: %v, want %q", tc.flag, tc.value, err, tc.fromFlag)
		}
	}
}

// TestParseErrorsSayWhatWasExpected: a value of the wrong form says the
// form, whether it came from the flag or the variable; unknown flags are
// named with two dashes however they were typed.
func TestParseErrorsSayWhatWasExpected(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{args: []string{"--request-timeout", "10"}, want: []string{`--request-timeout "10"`, "not a duration", "10s"}},
		{env: map[string]string{"RECONCILE_GRACE": "20"}, want: []string{`RECONCILE_GRACE="20"`, "10s"}},
		{args: []string{"--concurrency=ten"}, want: []string{`--concurrency "ten"`, "not a whole number"}},
		{args: []string{"--rate", "fast"}, want: []string{`--rate "fast"`, "not a number"}},
		{args: []string{"--page-size", "99999999999999999999"}, want: []string{"--page-size", "out of range"}},
		{args: []string{"-bogus"}, want: []string{"unknown flag --bogus"}},
		{args: []string{"---rate=4"}, want: []string{"bad flag syntax"}},
	} {
		_, err, _ := parseRun(tc.args, tc.env)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("args %q env %v: %v, want a usage error", tc.args, tc.env, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) || strings.Contains(err.Error(), "parse error") {
				t.Errorf("args %q env %v: %q, want it to say %q (and not just \"parse error\")", tc.args, tc.env, err, w)
			}
		}
	}
	_, err, _ := parseRun([]string{"-bogus"}, nil)
	if !errors.Is(err, ErrUnknownFlag) {
		t.Errorf("-bogus: %v does not wrap ErrUnknownFlag", err)
	}
}

// TestVerifyRefusesRunOnlyFlags: verify refuses, naming them, the flags
// that change what run does in the cloud on the command line; from the
// environment only RECONCILE_DRY_RUN=true (the others are ignored: a
// CronJob's environment is shared with run); its usage does not list them.
func TestVerifyRefusesRunOnlyFlags(t *testing.T) {
	parseVerify := func(args []string, env map[string]string) error {
		fs := flag.NewFlagSet("verify", flag.ContinueOnError)
		var c Run
		VerifyFlags(fs, &c)
		src, err := Parse(fs, args, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			return err
		}
		return c.ValidateFrom(src)
	}
	for _, name := range []string{"dry-run", "verify-existing", "no-fix-drift", "prune", "prune-max"} {
		value := "true"
		if name == "prune-max" {
			value = "5"
		}
		for _, args := range [][]string{{"--" + name + "=" + value}, {"-" + name + "=" + value}} {
			if err := parseVerify(args, nil); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--"+name+":") {
				t.Errorf("verify %q: %v, want a usage error naming --%s", args, err, name)
			}
		}
		err := parseVerify(nil, map[string]string{envName(name): value})
		if name == "dry-run" {
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), envName(name)) {
				t.Errorf("verify with %s=%s: %v, want a usage error naming the variable", envName(name), value, err)
			}
		} else if err != nil {
			t.Errorf("verify with %s=%s (an environment shared with run): %v, want it ignored", envName(name), value, err)
		}
	}
	// A variable that changes nothing is no reason to refuse.
	if err := parseVerify(nil, map[string]string{"RECONCILE_DRY_RUN": "no", "RECONCILE_PRUNE_MAX": "100"}); err != nil {
		t.Errorf("verify with RECONCILE_DRY_RUN=no RECONCILE_PRUNE_MAX=100: %v", err)
	}
	if err := parseVerify([]string{"--rate", "5", "--log-format=json"}, nil); err != nil {
		t.Errorf("verify --rate 5: %v", err)
	}
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var c Run
	VerifyFlags(fs, &c)
	var buf bytes.Buffer
	Usage(&buf, fs, "usage: reconcile verify")
	if u := buf.String(); strings.Contains(u, "--prune") || strings.Contains(u, "--dry-run") || !strings.Contains(u, "--rate") {
		t.Errorf("verify's usage lists refused flags or misses --rate:\n%s", u)
	}
}

// TestDocsFlagTable: docs/configuration.md's table lists exactly the flags
// of run, each with its variable and its default.
func TestDocsFlagTable(t *testing.T) {
	rows := docsFlagTable(t, "../../docs/configuration.md")
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var r Run
	RunFlags(fs, &r)
	// Flags whose default is empty say in words what empty means.
	emptyMeans := map[string]string{
		"database-url":        "libpq defaults (`PG*` variables)",
		"signature-algorithm": "`\"\"`",
		"pushgateway-url":     "none",
		"metrics-grouping":    "`" + DefaultMetricsGrouping + "`",
		"accounts":            "every account with desired rows",
		"shard":               "all",
		"sts-endpoint":        "`sts.aliyuncs.com`",
		// 0 means computed from the run's accounts.
		"workers": "`--concurrency` × accounts worked, at most " + strconv.Itoa(MaxDefaultWorkers),
	}
	seen := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		seen[f.Name] = true
		row, ok := rows[f.Name]
		if !ok {
			t.Errorf("--%s is not in the table of docs/configuration.md", f.Name)
			return
		}
		if row.variable != "`"+envName(f.Name)+"`" {
			t.Errorf("--%s: the docs name the variable %s, want `%s`", f.Name, row.variable, envName(f.Name))
		}
		if want, ok := emptyMeans[f.Name]; ok || f.DefValue == "" {
			if !ok || row.def != want {
				t.Errorf("--%s: the docs give the default %q, want %q", f.Name, row.def, want)
			}
			return
		}
		if !sameDefault(f, strings.Trim(row.def, "`")) {
			t.Errorf("--%s: the docs give the default %q; the flag's is %q", f.Name, row.def, f.DefValue)
		}
	})
	for name := range rows {
		if !seen[name] {
			t.Errorf("docs/configuration.md lists --%s, which run does not define", name)
		}
	}
}

type docsRow struct{ variable, def string }

// docsFlagTable reads the table headed "| flag | variable | default |
// meaning |" of the Markdown file at path, by flag name.
func docsFlagTable(t *testing.T, path string) map[string]docsRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]docsRow{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "| flag | variable | default | meaning |" {
			in = true
			continue
		}
		if !in || strings.HasPrefix(line, "| ---") {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if len(rows) > 0 {
				break
			}
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			t.Fatalf("%s: short table row %q", path, line)
		}
		name := strings.TrimPrefix(strings.Trim(strings.TrimSpace(cells[1]), "`"), "--")
		if _, dup := rows[name]; dup {
			t.Errorf("%s lists --%s twice", path, name)
		}
		rows[name] = docsRow{variable: strings.TrimSpace(cells[2]), def: strings.TrimSpace(cells[3])}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s has no flag table", path)
	}
	return rows
}

// sameDefault reports whether doc, as the docs write it, is f's default.
func sameDefault(f *flag.Flag, doc string) bool {
	switch d := f.Value.(flag.Getter).Get().(type) {
	case time.Duration:
		v, err := time.ParseDuration(doc)
		return err == nil && v == d
	case float64:
		v, err := strconv.ParseFloat(doc, 64)
		return err == nil && v == d
	case int:
		v, err := strconv.Atoi(doc)
		return err == nil && v == d
	case int64:
		v, err := strconv.ParseInt(doc, 10, 64)
		return err == nil && v == d
	case bool:
		v, ok := ParseBool(doc)
		return ok && v == d
	}
	return doc == f.DefValue
}
