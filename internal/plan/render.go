package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/reconcile/reconcile/internal/textout"
)

// WriteTable writes p for people:
//
//	1000 desired rows; the next run would take up 129: call the API for 125 and record 4 invalid.
//
//	add               120
//	  a.example.com
//	  … 119 more
//
//	retry-failed        2
//	  d.example.com  last error: Throttling.User: Request was denied …
//
//	invalid             7  (3 invalid and unchanged since an earlier run: counted, not recorded again)
//	…
func (p Plan) WriteTable(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	invNow := p.Class(Invalid).Count - p.InvalidUnchanged
	if p.Pending == 0 {
		fmt.Fprintf(tw, "%d desired rows; nothing is pending: the next run would call nothing.\n", p.Desired)
	} else {
		fmt.Fprintf(tw, "%d desired rows; the next run would take up %d: call the API for %d and record %d invalid.\n",
			p.Desired, p.Pending, p.Calls, invNow)
	}
	for _, c := range p.Classes {
		fmt.Fprintln(tw)
		fmt.Fprintf(tw, "%-12s %8d", c.Class, c.Count)
		if c.Class == Invalid && p.InvalidUnchanged > 0 {
			fmt.Fprintf(tw, "  (%d invalid and unchanged since an earlier run: counted, not recorded again)", p.InvalidUnchanged)
		}
		fmt.Fprintln(tw)
		for _, e := range c.Domains {
			fmt.Fprintf(tw, "  %s\t%s\n", e.Domain, e.Detail)
		}
		if more := c.Count - int64(len(c.Domains)); more > 0 && len(c.Domains) > 0 {
			fmt.Fprintf(tw, "  … %d more\t\n", more)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return textout.WriteTrimmed(w, buf.Bytes())
}

// WriteJSON writes p as one indented JSON object (the fields of Plan).
func (p Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}
