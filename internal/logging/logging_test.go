package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/model"
)

func TestScrub(t *testing.T) {
	r := NewRedactor()
	r.Add("AKSECRET/with+symbols==", "aaaaBBBB1111cccc", "sixteencharsKEY1extra")
	tests := []struct{ in, want string }{
		{"nothing here", "nothing here"},
		{"secret AKSECRET/with+symbols== end", "secret [REDACTED] end"},
		{"Post \"https://h/?NotifyAuthKey=aaaaBBBB1111cccc&x=1\"", "Post \"https://h/?NotifyAuthKey=[REDACTED]&x=1\""},
		{"glued:XYaaaaBBBB1111ccccZ", "glued:XY[REDACTED]Z"},
		{"twice aaaaBBBB1111cccc aaaaBBBB1111cccc", "twice [REDACTED] [REDACTED]"},
		{"longer key sixteencharsKEY1extra wins", "longer key [REDACTED] wins"},
		{"aaaaBBBB1111ccc short", "aaaaBBBB1111ccc short"},
	}
	for _, tt := range tests {
		if got := r.Scrub(tt.in); got != tt.want {
			t.Errorf("Scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoggerRedacts(t *testing.T) {
	r := NewRedactor()
	r.Add("topSecretValue42", "STS.tokenvalue/xyz")
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log := New(&buf, Options{Format: format, Level: "debug", Redactor: r})
		log.Info("msg topSecretValue42", "err", errors.New("wrapped STS.tokenvalue/xyz"),
			"key", model.Secret("anotherKey123456"), "s", "x topSecretValue42 y")
		out := buf.String()
		for _, s := range []string{"topSecretValue42", "STS.tokenvalue/xyz", "anotherKey123456"} {
			if strings.Contains(out, s) {
				t.Errorf("%s log %q contains %q", format, out, s)
			}
		}
		if !strings.Contains(out, model.Redacted) {
			t.Errorf("%s log %q has no redaction marker", format, out)
		}
	}
}

func TestHoldRelease(t *testing.T) {
	r := NewRedactor()
	r.Hold("heldKey123456789A")
	r.Hold("heldKey123456789A")
	r.Hold("short") // not an acceptable key: ignored
	if got := r.Scrub("x heldKey123456789A"); got != "x [REDACTED]" {
		t.Fatalf("held key not scrubbed: %q", got)
	}
	r.Release("heldKey123456789A")
	if got := r.Scrub("heldKey123456789A"); got != "[REDACTED]" {
		t.Fatalf("key released once of twice is no longer scrubbed: %q", got)
	}
	r.Release("heldKey123456789A")
	if got := r.Scrub("heldKey123456789A"); got != "heldKey123456789A" {
		t.Fatalf("released key still held: %q", got)
	}
	if len(r.keys) != 0 {
		t.Fatalf("keys left after release: %d", len(r.keys))
	}
}

// TestDurationsAreStrings: every duration, in groups too and with or
// without a redactor, is written as "10s" in JSON (slog's default would be
// the integer 10000000000) and in text.
func TestDurationsAreStrings(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		for _, r := range []*Redactor{nil, NewRedactor()} {
			var buf bytes.Buffer
			log := New(&buf, Options{Format: format, Level: "info", Redactor: r})
			log.Info("m", "elapsed", 8600*time.Millisecond,
				slog.Group("config", slog.Duration("request_timeout", 10*time.Second)))
			out := buf.String()
			if strings.Contains(out, "10000000000") || strings.Contains(out, "8600000000") {
				t.Errorf("%s log has a duration in nanoseconds: %s", format, out)
			}
			want := []string{`"elapsed":"8.6s"`, `"request_timeout":"10s"`}
			if format == "text" {
				want = []string{"elapsed=8.6s", "config.request_timeout=10s"}
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("%s log %q lacks %s", format, out, w)
				}
			}
		}
	}
}
