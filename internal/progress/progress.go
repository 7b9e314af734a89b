// Package progress draws a one-line progress bar for `reconcile run` on a
// terminal: rows done / total, percentage, request rate, ETA and the current
// rate limit. On anything else (a pipe, a file, a log collector) New returns
// nil and the caller keeps apply's JSON "progress" log lines.
//
// The bar lives on the last line of the terminal and is redrawn in place:
// each redraw is one Write of "\r" + the line + "\x1b[K" (erase to the end of
// the line), about a hundred bytes, with no cursor movement beyond the
// current line, and the line is cut to the terminal's width so that it never
// wraps (a wrapped line could not be redrawn with "\r").
//
// Log lines go to the same stderr, so the logger must write through
// Bar.Writer: each log record then clears the bar's line, is written, and the
// bar is drawn again below it, in one Write under the bar's lock. Log output
// is never held back, and a record never lands in the middle of the bar.
package progress

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/reconcile/reconcile/internal/apply"
)

// Escape sequences (ANSI; every terminal the job runs on understands them).
const (
	eraseLine = "\r\x1b[2K" // cursor to column 0, erase the whole line
	eraseEOL  = "\x1b[K"    // erase from the cursor to the end of the line
)

const (
	defaultWidth = 80 // columns when the terminal's width is unknown
	maxBarCells  = 30 // cells of the [====>----] part at most
	minBarCells  = 10 // below this the bar part is left out
)

// Bar is a progress bar on a terminal. Its methods are safe for concurrent
// use; all of them do nothing on a nil *Bar.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	total    int64
	width    func() int // terminal columns; <= 0: unknown
	last     apply.Progress
	updated  bool // Update was called: there is something to draw
	drawn    bool // the bar is on the screen and the cursor is on its line
	midLine  bool // a log write ended without a newline: do not draw yet
	finished bool
	buf      bytes.Buffer
}

// Option configures New.
type Option func(*settings)

type settings struct {
	force bool
	width int
}

// ForceTerminal makes New treat w as a terminal of the given width in
// columns (tests, or a caller that knows better). width <= 0 means 80.
func ForceTerminal(width int) Option {
	return func(s *settings) { s.force, s.width = true, width }
}

// IsTerminal reports whether w is a terminal (an *os.File on a TTY).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// New returns a progress bar writing to w when w is a terminal, else nil:
// the caller then keeps the progress log lines (leave apply.Options.Progress
// nil; see Func). total is the number of rows to do; 0 means "take it from
// Update" (apply.Progress carries Total). Nothing is drawn before the first
// Update.
func New(w io.Writer, total int64, opts ...Option) *Bar {
	var s settings
	for _, o := range opts {
		o(&s)
	}
	b := &Bar{w: w, total: total}
	switch {
	case s.force:
		b.width = func() int { return s.width }
	case IsTerminal(w):
		fd := int(w.(*os.File).Fd())
		b.width = func() int {
			cols, _, err := term.GetSize(fd) // one ioctl per redraw
			if err != nil {
				return 0
			}
			return cols
		}
	default:
		return nil
	}
	return b
}

// Func returns b.Update as an apply.Options.Progress callback, or nil when b
// is nil, so that a nil bar leaves apply's progress log lines on:
//
//	Progress: bar.Func()
func (b *Bar) Func() func(apply.Progress) {
	if b == nil {
		return nil
	}
	return b.Update
}

// Update records p and redraws the bar. Its signature is that of
// apply.Options.Progress. After Finish it does nothing.
func (b *Bar) Update(p apply.Progress) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	if p.Total <= 0 {
		p.Total = b.total
	}
	b.last, b.updated = p, true
	if b.midLine {
		return // drawn when the pending log line ends
	}
	b.buf.Reset()
	b.buf.WriteByte('\r')
	b.buf.WriteString(b.line())
	b.buf.WriteString(eraseEOL)
	_, _ = b.w.Write(b.buf.Bytes())
	b.drawn = true
}

// Finish draws the bar a last time, if it was ever drawn, and ends its line,
// so that what follows starts on a new line and the last state stays in the
// scrollback. Later Updates do nothing and Writer passes writes through.
// Call it once the pass is over (after a last Update with the final counts,
// if wanted), before the summary log line. It may be called more than once.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	if !b.drawn || b.midLine {
		return
	}
	_, _ = io.WriteString(b.w, "\r"+b.line()+eraseEOL+"\n")
	b.drawn = false
}

// Writer returns the writer that log output sharing the bar's terminal must
// go through (logging.New(bar.Writer(), ...)). Each Write clears the bar's
// line, writes p, and, when p ends a line, draws the bar again: one Write
// to the terminal. After Finish it writes straight through. Writer returns
// nil on a nil *Bar.
//
// A logger built on it no longer sees an *os.File, so a logger format of
// "auto" must be resolved beforehand (text on a terminal).
func (b *Bar) Writer() io.Writer {
	if b == nil {
		return nil
	}
	return logWriter{b}
}

type logWriter struct{ b *Bar }

func (lw logWriter) Write(p []byte) (int, error) {
	b := lw.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return b.w.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	b.buf.Reset()
	if b.drawn {
		b.buf.WriteString(eraseLine)
		b.drawn = false
	}
	b.buf.Write(p)
	b.midLine = p[len(p)-1] != '\n'
	if b.updated && !b.midLine {
		b.buf.WriteByte('\r')
		b.buf.WriteString(b.line())
		b.buf.WriteString(eraseEOL)
		b.drawn = true
	}
	if _, err := b.w.Write(b.buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// line renders the bar's text for b.last, cut to the terminal's width. The
// caller holds b.mu.
func (b *Bar) line() string {
	cols := 0
	if b.width != nil {
		cols = b.width()
	}
	if cols <= 0 {
		cols = defaultWidth
	}
	return Render(b.last, cols)
}

// Render returns the one-line text of p for a terminal of cols columns,
// without control characters:
//
//	[======>-----------------------]  1234/5000  24.7%  24.8 req/s  ETA 2m32s  limit 25.0/s
//
// The rate is API requests per second over the last interval (retries
// included), the ETA apply's estimate from it, and the limit the gate's
// current rate (below --rate after throttling). The bar part shrinks, then
// disappears, on narrow terminals; the line is always shorter than cols so
// that it never wraps.
func Render(p apply.Progress, cols int) string {
	var stats strings.Builder
	stats.WriteString(strconv.FormatInt(p.Done, 10))
	if p.Total > 0 {
		fmt.Fprintf(&stats, "/%d  %.1f%%", p.Total, percent(p.Done, p.Total))
	} else {
		stats.WriteString(" rows")
	}
	rate := p.Rate
	if math.IsNaN(rate) || math.IsInf(rate, 0) || rate < 0 {
		rate = 0
	}
	fmt.Fprintf(&stats, "  %.1f req/s", rate)
	switch {
	case p.Total > 0 && p.Done >= p.Total:
		stats.WriteString("  ETA 0s")
	case p.ETA > 0:
		stats.WriteString("  ETA " + p.ETA.Round(time.Second).String())
	default:
		stats.WriteString("  ETA --")
	}
	if p.CurrentRate > 0 && !math.IsInf(p.CurrentRate, 0) {
		fmt.Fprintf(&stats, "  limit %.1f/s", p.CurrentRate)
	}
	s := stats.String()
	room := cols - 1 // never write into the last column: some terminals wrap there
	if p.Total > 0 {
		if cells := min(maxBarCells, room-len(s)-4); cells >= minBarCells {
			return bar(p.Done, p.Total, cells) + "  " + s
		}
	}
	if len(s) > room {
		s = s[:max(room, 0)]
	}
	return s
}

func percent(done, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return min(float64(done)/float64(total)*100, 100)
}

// bar returns "[====>-----]" with cells cells between the brackets.
func bar(done, total int64, cells int) string {
	filled := int(float64(cells) * percent(done, total) / 100)
	var sb strings.Builder
	sb.Grow(cells + 2)
	sb.WriteByte('[')
	switch {
	case filled >= cells:
		sb.WriteString(strings.Repeat("=", cells))
	case filled > 0:
		sb.WriteString(strings.Repeat("=", filled-1))
		sb.WriteByte('>')
		sb.WriteString(strings.Repeat("-", cells-filled))
	default:
		sb.WriteString(strings.Repeat("-", cells))
	}
	sb.WriteByte(']')
	return sb.String()
}
