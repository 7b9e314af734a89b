// Package logging builds the job's slog.Logger: JSON lines for machines,
// human text on a terminal, and a Redactor that removes known secrets from
// every record before it is written.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/mattn/go-isatty"

	"github.com/reconcile/reconcile/internal/model"
)

// Redactor knows the secret values of a process (AccessKey secret, STS token,
// notify_auth_keys) and replaces them in text with model.Redacted. It is safe
// for concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	fixed   []string       // AccessKey secret, STS token
	keys    map[string]int // alphanumeric secrets of 16–32 chars (auth keys) → holders
	minKey  int
	maxKey  int
	nonZero bool
}

// NewRedactor returns an empty Redactor.
func NewRedactor() *Redactor {
	return &Redactor{keys: make(map[string]int), minKey: 16, maxKey: 32}
}

// Add registers secret values (empty ones are ignored). Values of 16–32
// letters and digits are kept in a set and found in any text by a scan of
// its alphanumeric runs; others are matched literally.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if len(s) < 4 {
			continue // too short to redact without destroying the text
		}
		r.nonZero = true
		if len(s) >= r.minKey && len(s) <= r.maxKey && isAlnum(s) {
			r.keys[s]++
			continue
		}
		r.fixed = append(r.fixed, s)
	}
}

// Hold registers an auth key for as long as the row that carries it is being
// worked on; Release undoes one Hold. The set thus holds the keys of rows in
// flight only, and memory stays flat whatever the table size. (Values that
// are not 16–32 letters and digits cannot be auth keys the API accepts, and
// are ignored.)
func (r *Redactor) Hold(key string) {
	if len(key) < r.minKey || len(key) > r.maxKey || !isAlnum(key) {
		return
	}
	r.mu.Lock()
	r.keys[key]++
	r.nonZero = true
	r.mu.Unlock()
}

// Release undoes one Hold of key.
func (r *Redactor) Release(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.keys[key]; n > 1 {
		r.keys[key] = n - 1
	} else {
		delete(r.keys, key)
	}
}

// Scrub returns s with every known secret replaced by model.Redacted.
func (r *Redactor) Scrub(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.nonZero {
		return s
	}
	for _, f := range r.fixed {
		if strings.Contains(s, f) {
			s = strings.ReplaceAll(s, f, model.Redacted)
		}
	}
	if len(r.keys) == 0 {
		return s
	}
	// Look at every alphanumeric run long enough to hold a key, and at each
	// of its substrings of a key's length.
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isAlnumByte(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isAlnumByte(s[j]) {
			j++
		}
		for start := i; start+r.minKey <= j; {
			hit := 0
			for n := r.maxKey; n >= r.minKey; n-- {
				if start+n <= j {
					if _, ok := r.keys[s[start:start+n]]; ok {
						hit = n
						break
					}
				}
			}
			if hit == 0 {
				start++
				continue
			}
			b.WriteString(s[last:start])
			b.WriteString(model.Redacted)
			start += hit
			last = start
		}
		i = j
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnumByte(s[i]) {
			return false
		}
	}
	return true
}

func isAlnumByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ReplaceAttr is a slog ReplaceAttr function that scrubs string, error and
// any-valued attributes.
func (r *Redactor) ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(r.Scrub(v.String()))
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			a.Value = slog.StringValue(r.Scrub(x.Error()))
		case model.Secret:
			a.Value = slog.StringValue(x.String())
		case interface{ String() string }:
			a.Value = slog.StringValue(r.Scrub(x.String()))
		}
	}
	return a
}

// DurationString is a slog ReplaceAttr function that turns a
// time.Duration value into its String() form; other attributes pass
// unchanged.
func DurationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// Options configure New.
type Options struct {
	// Format is "auto" (text when w is a terminal, JSON otherwise), "json" or "text".
	Format string
	// Level is "debug", "info", "warn" or "error".
	Level string
	// Redactor scrubs every record; nil means none.
	Redactor *Redactor
}

// New returns a logger writing to w. The message is scrubbed too.
//
// Every time.Duration attribute, at any depth of groups, is written as its
// String() ("10s", "1m30s", "250ms") in both formats: slog's JSON handler
// would otherwise write nanoseconds (10000000000), so one log line could
// mix two conventions.
func New(w io.Writer, o Options) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(o.Level))
	ho := &slog.HandlerOptions{Level: lvl, ReplaceAttr: DurationString}
	if r := o.Redactor; r != nil {
		ho.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			return r.ReplaceAttr(groups, DurationString(groups, a))
		}
	}
	var h slog.Handler
	if o.Format == "text" || o.Format == "auto" && IsTerminal(w) {
		h = slog.NewTextHandler(w, ho)
	} else {
		h = slog.NewJSONHandler(w, ho)
	}
	if o.Redactor != nil {
		h = scrubMessage{Handler: h, r: o.Redactor}
	}
	return slog.New(h)
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// scrubMessage scrubs the record's message (ReplaceAttr sees only attributes).
type scrubMessage struct {
	slog.Handler
	r *Redactor
}

func (h scrubMessage) Handle(ctx context.Context, rec slog.Record) error {
	rec.Message = h.r.Scrub(rec.Message)
	return h.Handler.Handle(ctx, rec)
}

func (h scrubMessage) WithAttrs(as []slog.Attr) slog.Handler {
	return scrubMessage{Handler: h.Handler.WithAttrs(as), r: h.r}
}

func (h scrubMessage) WithGroup(name string) slog.Handler {
	return scrubMessage{Handler: h.Handler.WithGroup(name), r: h.r}
}
