package progress

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/apply"
	"github.com/reconcile/reconcile/internal/testutil"
)

var mid = apply.Progress{Done: 1234, Total: 5000, Requests: 1300, Rate: 24.8, ETA: 2*time.Minute + 32*time.Second, CurrentRate: 25}

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    apply.Progress
		cols int
		want string
	}{
		{"middle", mid, 100,
			"[======>-----------------------]  1234/5000  24.7%  24.8 req/s  ETA 2m32s  limit 25.0/s"},
		{"start", apply.Progress{Total: 5000, CurrentRate: 25}, 100,
			"[------------------------------]  0/5000  0.0%  0.0 req/s  ETA --  limit 25.0/s"},
		{"throttled", apply.Progress{Done: 2500, Total: 5000, Rate: 12.25, ETA: time.Hour + 2*time.Minute + 3400*time.Millisecond, CurrentRate: 12.75}, 100,
			"[==============>---------------]  2500/5000  50.0%  12.2 req/s  ETA 1h2m3s  limit 12.8/s"},
		{"done", apply.Progress{Done: 5000, Total: 5000, Rate: 25, CurrentRate: 25}, 100,
			"[==============================]  5000/5000  100.0%  25.0 req/s  ETA 0s  limit 25.0/s"},
		{"more rows than counted at start", apply.Progress{Done: 5010, Total: 5000, Rate: 25}, 100,
			"[==============================]  5010/5000  100.0%  25.0 req/s  ETA 0s"},
		{"no total", apply.Progress{Done: 7, Rate: 3}, 100,
			"7 rows  3.0 req/s  ETA --"},
		{"bad rate", apply.Progress{Done: 1, Total: 10, Rate: math.NaN(), CurrentRate: math.Inf(1)}, 100,
			"[==>---------------------------]  1/10  10.0%  0.0 req/s  ETA --"},
		{"narrow: shorter bar", mid, 80,
			"[====>-----------------]  1234/5000  24.7%  24.8 req/s  ETA 2m32s  limit 25.0/s"},
		{"narrower: no bar", mid, 60,
			"1234/5000  24.7%  24.8 req/s  ETA 2m32s  limit 25.0/s"},
		{"tiny: cut", mid, 20,
			"1234/5000  24.7%  2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Render(tc.p, tc.cols)
			if got != tc.want {
				t.Errorf("Render(%d cols)\n got %q\nwant %q", tc.cols, got, tc.want)
			}
			if len(got) >= tc.cols {
				t.Errorf("line of %d characters on a %d-column terminal would wrap", len(got), tc.cols)
			}
			if strings.ContainsAny(got, "\r\n\x1b") {
				t.Errorf("Render returned control characters: %q", got)
			}
		})
	}
}

func TestBarDrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, 5000, ForceTerminal(100))
	if b == nil {
		t.Fatal("New with ForceTerminal returned nil")
	}
	if out.Len() != 0 {
		t.Fatalf("New drew before any Update: %q", out.String())
	}
	b.Update(mid)
	want := "\r" + Render(mid, 100) + "\x1b[K"
	if out.String() != want {
		t.Fatalf("Update wrote %q, want %q", out.String(), want)
	}
	if !strings.Contains(out.String(), "1234/5000  24.7%  24.8 req/s  ETA 2m32s  limit 25.0/s") {
		t.Errorf("bar lacks done/total, percentage, rate, ETA or limit: %q", out.String())
	}

	// The total comes from New when Update has none.
	out.Reset()
	p := mid
	p.Total = 0
	b.Update(p)
	if out.String() != want {
		t.Errorf("Update without Total wrote %q, want %q", out.String(), want)
	}

	// Finish leaves the last state on its own line.
	out.Reset()
	b.Finish()
	if want := "\r" + Render(mid, 100) + "\x1b[K\n"; out.String() != want {
		t.Errorf("Finish wrote %q, want %q", out.String(), want)
	}
	out.Reset()
	b.Update(mid)
	b.Finish()
	if out.Len() != 0 {
		t.Errorf("Update/Finish after Finish wrote %q", out.String())
	}
}

func TestFinishWithoutUpdateWritesNothing(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, 10, ForceTerminal(80))
	b.Finish()
	fmt.Fprintln(b.Writer(), "after")
	if out.String() != "after\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestLogLinesDoNotInterleave(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, 5000, ForceTerminal(100))
	w := b.Writer()
	line := Render(mid, 100)

	// Before the first Update, log lines pass through untouched.
	fmt.Fprint(w, "level=INFO msg=\"run started\"\n")
	if got := out.String(); got != "level=INFO msg=\"run started\"\n" {
		t.Fatalf("log before the bar: %q", got)
	}

	out.Reset()
	b.Update(mid)
	fmt.Fprint(w, "level=WARN msg=\"row failed\" domain=a.example.com\n")
	want := "\r" + line + "\x1b[K" + // the bar
		"\r\x1b[2K" + "level=WARN msg=\"row failed\" domain=a.example.com\n" + // cleared, the log line
		"\r" + line + "\x1b[K" // the bar again, below it
	if out.String() != want {
		t.Fatalf("got  %q\nwant %q", out.String(), want)
	}

	// A write that does not end a line: the bar is not drawn after it, nor
	// by an Update, until the line ends.
	out.Reset()
	fmt.Fprint(w, "partial ")
	b.Update(mid)
	fmt.Fprint(w, "rest\n")
	want = "\r\x1b[2K" + "partial " + "rest\n" + "\r" + line + "\x1b[K"
	if out.String() != want {
		t.Fatalf("got  %q\nwant %q", out.String(), want)
	}

	// After Finish, log lines pass through.
	out.Reset()
	b.Finish()
	fmt.Fprint(w, "level=INFO msg=summary\n")
	want = "\r" + line + "\x1b[K\n" + "level=INFO msg=summary\n"
	if out.String() != want {
		t.Fatalf("got  %q\nwant %q", out.String(), want)
	}
}

// What a person sees: replay the bytes on a minimal terminal model and check
// the screen: every log line intact on its own line, the bar last.
func TestScreenWithSlog(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, 3, ForceTerminal(120))
	log := slog.New(slog.NewTextHandler(b.Writer(), &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	log.Info("run started", "pending", 3)
	b.Update(apply.Progress{Done: 1, Total: 3, Rate: 2, ETA: time.Second, CurrentRate: 25})
	log.Warn("row failed", "domain", "b.example.com")
	b.Update(apply.Progress{Done: 3, Total: 3, Rate: 2, CurrentRate: 25})
	b.Finish()
	log.Info("summary", "applied", 2, "failed", 1)

	screen := emulate(out.String())
	want := []string{
		`level=INFO msg="run started" pending=3`,
		`level=WARN msg="row failed" domain=b.example.com`,
		"[==============================]  3/3  100.0%  2.0 req/s  ETA 0s  limit 25.0/s",
		`level=INFO msg=summary applied=2 failed=1`,
		"",
	}
	if strings.Join(screen, "\n") != strings.Join(want, "\n") {
		t.Errorf("screen:\n%s\nwant:\n%s", strings.Join(screen, "\n"), strings.Join(want, "\n"))
	}
}

// emulate applies \r, \n, ESC[K and ESC[2K to lines of text.
func emulate(s string) []string {
	lines := []string{""}
	col := 0
	for i := 0; i < len(s); i++ {
		cur := &lines[len(lines)-1]
		switch {
		case s[i] == '\r':
			col = 0
		case s[i] == '\n':
			lines = append(lines, "")
			col = 0
		case strings.HasPrefix(s[i:], "\x1b[2K"):
			*cur = ""
			i += 3
		case strings.HasPrefix(s[i:], "\x1b[K"):
			*cur = (*cur)[:min(col, len(*cur))]
			i += 2
		default:
			for len(*cur) < col {
				*cur += " "
			}
			if col < len(*cur) {
				*cur = (*cur)[:col] + string(s[i]) + (*cur)[col+1:]
			} else {
				*cur += string(s[i])
			}
			col++
		}
	}
	return lines
}

func TestConcurrentUpdatesAndLogs(t *testing.T) {
	var out testutil.Buffer
	b := New(&out, 1000, ForceTerminal(100))
	w := b.Writer()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				fmt.Fprintf(w, "log g%d i%d\n", g, i)
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			b.Update(apply.Progress{Done: int64(i), Total: 1000, Rate: 10})
		}
	})
	wg.Wait()
	b.Finish()
	n := 0
	for _, l := range emulate(out.String()) {
		if strings.HasPrefix(l, "log ") {
			n++
			if !strings.HasPrefix(l, "log g") || strings.Contains(l[1:], "log") || strings.Contains(l, "[") {
				t.Errorf("mangled log line %q", l)
			}
		}
	}
	if n != 200 {
		t.Errorf("%d log lines on screen, want 200", n)
	}
}

func TestNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	if b := New(&buf, 10); b != nil {
		t.Error("New on a bytes.Buffer returned a bar")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	b := New(f, 10)
	if b != nil {
		t.Fatal("New on a regular file returned a bar")
	}
	// A nil bar is a no-op, and leaves apply's log lines on.
	if b.Func() != nil {
		t.Error("nil bar's Func is not nil: apply would drop its progress log lines")
	}
	if b.Writer() != nil {
		t.Error("nil bar's Writer is not nil")
	}
	b.Update(mid)
	b.Finish()
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Errorf("nil bar wrote %d bytes", st.Size())
	}

	// A live bar's Func is its Update.
	var out bytes.Buffer
	live := New(&out, 10, ForceTerminal(0))
	live.Func()(apply.Progress{Done: 1, Total: 10})
	if !strings.Contains(out.String(), "1/10  10.0%") {
		t.Errorf("Func did not draw: %q", out.String())
	}
	if len(Render(apply.Progress{Done: 1, Total: 10}, defaultWidth)) >= defaultWidth {
		t.Error("default width line too long")
	}
}
