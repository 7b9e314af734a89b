package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// BoolWords lists the words ParseBool accepts, for messages.
const BoolWords = "true, false, yes, no, on, off, 1 or 0"

// ParseBool reads a boolean the way every flag, every variable and
// `reconcile import`'s notify_req_auth column do: true, yes, on or 1, and
// false, no, off or 0, in any case. Anything else (the empty string
// included) is not ok.
func ParseBool(s string) (v, ok bool) {
	if len(s) > len("false") {
		return false, false
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on", "1":
		return true, true
	case "false", "no", "off", "0":
		return false, true
	}
	return false, false
}

// ErrUnknownFlag marks (inside ErrUsage) a flag the command does not define.
var ErrUnknownFlag = errors.New("unknown flag")

// Sources tells where Parse took each flag's value from, so that a message
// names what the user wrote: the flag, or the variable its value came from.
// The zero Sources names flags.
type Sources struct {
	env map[string]string // flag name → its variable's value, for flags set from the environment
}

// FromEnv reports whether flag name (without dashes) took its value from
// its variable.
func (s Sources) FromEnv(name string) bool {
	_, ok := s.env[name]
	return ok
}

// Name returns how a message names flag name: its variable (RECONCILE_RATE)
// when the value came from there, else --name.
func (s Sources) Name(name string) string {
	if s.FromEnv(name) {
		return envName(name)
	}
	return "--" + name
}

// Setting returns how a message shows flag name set to value:
// RECONCILE_RATE=31 when the value came from the variable, else --rate 31.
func (s Sources) Setting(name, value string) string {
	if s.FromEnv(name) {
		return envName(name) + "=" + value
	}
	return "--" + name + " " + value
}

// commandLineOnly ends the usage of flags that have no environment variable.
const commandLineOnly = " (command line only: no environment variable)"

// CommandLineOnly marks flags of fs that Parse must not take from the
// environment: per-invocation switches such as import's --replace, which a
// stray variable in a CronJob's environment must never turn on.
func CommandLineOnly(fs *flag.FlagSet, names ...string) {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && !strings.HasSuffix(f.Usage, commandLineOnly) {
			f.Usage += commandLineOnly
		}
	}
}

// refused is the Value of a flag that the command does not act on (see
// Refuse). It keeps the flag's own Value for its type and default.
type refused struct {
	flag.Value
	why       string
	ignoreEnv bool // its variable is ignored rather than refused
}

func (r *refused) Set(string) error { return errors.New(r.why) }

func (r *refused) IsBoolFlag() bool { return isBoolValue(r.Value) }

// Refuse marks flags of fs that the command does not act on: Parse refuses
// them on the command line, and refuses their variables when set to
// anything but the default, with why (exit 2); Usage does not list them.
func Refuse(fs *flag.FlagSet, why string, names ...string) { refuse(fs, why, false, names) }

// RefuseFlags is Refuse for flags whose variables are harmless to the
// command: the command line is refused, the variables are ignored (an
// environment shared with `run`, such as a CronJob's, must not stop it).
func RefuseFlags(fs *flag.FlagSet, why string, names ...string) { refuse(fs, why, true, names) }

func refuse(fs *flag.FlagSet, why string, ignoreEnv bool, names []string) {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil {
			if _, done := f.Value.(*refused); !done {
				f.Value = &refused{Value: f.Value, why: why, ignoreEnv: ignoreEnv}
			}
		}
	}
}

// Parse applies args and then the environment (lookup, usually
// os.LookupEnv) to fs: a flag given on the command line wins over its
// variable, and a variable set to "" counts as unset. Flags are written
// --name value, --name=value (or with one dash); boolean flags take
// --name or --name=WORD with a word of BoolWords; "--" ends the flags.
// Arguments that are not flags are refused. -h or --help, when fs does not
// define them, return flag.ErrHelp before anything else is checked. Every
// other error wraps ErrUsage and names the flag (--name) or the variable
// (NAME="value") that is wrong, and says what was expected.
func Parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) (Sources, error) {
	pos, src, err := parse(fs, args, lookup, false)
	if err != nil {
		return src, err
	}
	if len(pos) > 0 {
		return src, fmt.Errorf("%w: unexpected argument %q", ErrUsage, pos[0])
	}
	return src, nil
}

// ParseArgs is Parse for commands with positional arguments: flags may
// come before and after them ("--" ends the flags), and it returns them.
func ParseArgs(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) ([]string, Sources, error) {
	return parse(fs, args, lookup, true)
}

func parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool), interspersed bool) ([]string, Sources, error) {
	fs.SetOutput(io.Discard)
	src := Sources{env: map[string]string{}}
	onCommandLine := map[string]bool{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			if !interspersed {
				pos = append(pos, args[i:]...)
				break
			}
			pos = append(pos, a)
			continue
		}
		body := strings.TrimPrefix(a[1:], "-")
		if body == "" || body[0] == '-' || body[0] == '=' {
			return nil, src, fmt.Errorf("%w: bad flag syntax %q", ErrUsage, a)
		}
		name, value, hasValue := strings.Cut(body, "=")
		f := fs.Lookup(name)
		if f == nil {
			if name == "h" || name == "help" {
				return nil, src, flag.ErrHelp
			}
			return nil, src, fmt.Errorf("%w: %w --%s", ErrUsage, ErrUnknownFlag, name)
		}
		if r, ok := f.Value.(*refused); ok {
			return nil, src, fmt.Errorf("%w: --%s: %s", ErrUsage, name, r.why)
		}
		if !hasValue {
			if isBoolValue(f.Value) {
				value = "true"
			} else if i+1 < len(args) {
				i++
				value = args[i]
			} else {
				return nil, src, fmt.Errorf("%w: --%s needs a value", ErrUsage, name)
			}
		}
		if err := setValue(fs, f, value); err != nil {
			return nil, src, fmt.Errorf("%w: --%s %q: %w", ErrUsage, name, value, err)
		}
		onCommandLine[name] = true
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil || onCommandLine[f.Name] || strings.HasSuffix(f.Usage, commandLineOnly) {
			return
		}
		name := envName(f.Name)
		v, ok := lookup(name)
		if !ok || v == "" {
			return
		}
		if r, ok := f.Value.(*refused); ok {
			if !r.ignoreEnv && normalize(f, v) != f.DefValue {
				envErr = fmt.Errorf("%w: %s=%q: %s", ErrUsage, name, v, r.why)
			}
			return
		}
		if err := setValue(fs, f, v); err != nil {
			envErr = fmt.Errorf("%w: %s=%q: %w", ErrUsage, name, v, err)
			return
		}
		src.env[f.Name] = v
	})
	if envErr != nil {
		return nil, src, envErr
	}
	return pos, src, nil
}

// isBoolValue reports whether v is a boolean flag's value.
func isBoolValue(v flag.Value) bool {
	b, ok := v.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// normalize returns v as the flag package prints f's values: a boolean
// word as true or false.
func normalize(f *flag.Flag, v string) string {
	if isBoolValue(f.Value) {
		if b, ok := ParseBool(v); ok {
			return strconv.FormatBool(b)
		}
	}
	return v
}

// setValue sets f from raw: booleans from the words of ParseBool; a value
// the flag refuses gets an error saying what was expected.
func setValue(fs *flag.FlagSet, f *flag.Flag, raw string) error {
	v := raw
	if isBoolValue(f.Value) {
		b, ok := ParseBool(raw)
		if !ok {
			return fmt.Errorf("not a boolean: use %s", BoolWords)
		}
		v = strconv.FormatBool(b)
	}
	err := fs.Set(f.Name, v)
	if err == nil {
		return nil
	}
	if err.Error() == "value out of range" { // the flag package's errRange
		return errors.New("out of range")
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err
	}
	switch g.Get().(type) {
	case time.Duration:
		return errors.New("not a duration: give a number with a unit, such as 10s, 500ms or 1m30s")
	case int, int64, uint, uint64:
		return errors.New("not a whole number")
	case float64:
		return errors.New("not a number")
	}
	return err
}

// Usage writes head and fs's flags with their variables and defaults to w,
// leaving out the flags Refuse marked.
func Usage(w io.Writer, fs *flag.FlagSet, head string) {
	fmt.Fprintln(w, head)
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(*refused); ok {
			return
		}
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		env := "env " + envName(f.Name) + ", "
		if strings.HasSuffix(f.Usage, commandLineOnly) {
			env = ""
		}
		fmt.Fprintf(w, "  --%s (%sdefault %s)\n      %s\n", f.Name, env, def, f.Usage)
	})
}
