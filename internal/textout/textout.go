// Package textout holds helpers for the human-readable output of commands.
package textout

import (
	"bytes"
	"io"
)

// WriteTrimmed writes text to w without the spaces that text/tabwriter
// leaves at the end of lines.
func WriteTrimmed(w io.Writer, text []byte) error {
	var out bytes.Buffer
	for _, l := range bytes.SplitAfter(text, []byte("\n")) {
		nl := bytes.HasSuffix(l, []byte("\n"))
		out.Write(bytes.TrimRight(l, " \n"))
		if nl {
			out.WriteByte('\n')
		}
	}
	_, err := w.Write(out.Bytes())
	return err
}
