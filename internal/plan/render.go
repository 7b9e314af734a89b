package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
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
//
// When some desired row names an account (p.MultiAccount), the first line
// says how many accounts, a table of the accounts follows it (counts per
// class, and the flag of an unknown or disabled account), and every listed
// domain shows its account:
//
//	1000 desired rows in 3 accounts; the next run would take up 129: call the API for 125 and record 4 invalid.
//	20 of the pending rows are in accounts the next run will not take up: they stay pending.
//
//	  ACCOUNT   DESIRED  PENDING  ADD  UPDATE  RETRY-FAILED  INVALID  DONE
//	  default       900      100   95       3             2        0   800
//	  tenant-a       80        9    9       0             0        0    71
//	  tenant-x       20       20   20       0             0        0     0  unknown account (rows stay pending)
//
//	add               120
//	  a.example.com  default
//	…
//
// A database whose rows are all of the default account gets the first form,
// unchanged from before accounts.
func (p Plan) WriteTable(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	multi := p.MultiAccount()
	invNow := p.Class(Invalid).Count - p.InvalidUnchanged
	desired := fmt.Sprintf("%d desired rows", p.Desired)
	if multi {
		desired += fmt.Sprintf(" in %d accounts", len(p.Accounts))
	}
	if p.Pending == 0 {
		fmt.Fprintf(tw, "%s; nothing is pending: the next run would call nothing.\n", desired)
	} else {
		fmt.Fprintf(tw, "%s; the next run would take up %d: call the API for %d and record %d invalid.\n",
			desired, p.Pending, p.Calls, invNow)
	}
	if p.HeldBack > 0 {
		fmt.Fprintf(tw, "%d of the pending rows are in accounts the next run will not take up: they stay pending.\n", p.HeldBack)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if multi {
		fmt.Fprintln(&buf)
		at := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', tabwriter.AlignRight)
		// Every cell ends with a tab; the flag, after the last one, is not
		// aligned. The name is padded by hand, so that AlignRight leaves it
		// left-aligned.
		width := accountWidth(p.Accounts)
		fmt.Fprintf(at, "%-*s\tDESIRED\tPENDING\t", width, "ACCOUNT")
		for _, c := range Classes {
			fmt.Fprintf(at, "%s\t", strings.ToUpper(string(c)))
		}
		fmt.Fprintln(at)
		for _, a := range p.Accounts {
			fmt.Fprintf(at, "%-*s\t%d\t%d\t", width, a.Account, a.Desired, a.Pending)
			for _, c := range Classes {
				fmt.Fprintf(at, "%d\t", a.Counts[c])
			}
			if a.Flag != "" {
				fmt.Fprint(at, "  "+a.Flag)
			}
			fmt.Fprintln(at)
		}
		if err := at.Flush(); err != nil {
			return err
		}
	}
	tw = tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	for _, c := range p.Classes {
		fmt.Fprintln(tw)
		fmt.Fprintf(tw, "%-12s %8d", c.Class, c.Count)
		if c.Class == Invalid && p.InvalidUnchanged > 0 {
			fmt.Fprintf(tw, "  (%d invalid and unchanged since an earlier run: counted, not recorded again)", p.InvalidUnchanged)
		}
		fmt.Fprintln(tw)
		for _, e := range c.Domains {
			if multi {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", e.Domain, e.Account, e.Detail)
			} else {
				fmt.Fprintf(tw, "  %s\t%s\n", e.Domain, e.Detail)
			}
		}
		if more := c.Count - int64(len(c.Domains)); more > 0 && len(c.Domains) > 0 {
			if multi {
				fmt.Fprintf(tw, "  … %d more\t\t\n", more)
			} else {
				fmt.Fprintf(tw, "  … %d more\t\n", more)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return textout.WriteTrimmed(w, buf.Bytes())
}

// accountWidth is the width of the ACCOUNT column.
func accountWidth(accounts []AccountSummary) int {
	n := len("ACCOUNT")
	for _, a := range accounts {
		n = max(n, len([]rune(a.Account)))
	}
	return n
}

// WriteJSON writes p as one indented JSON object (the fields of Plan).
func (p Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}
