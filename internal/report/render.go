package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/textout"
)

// Formats of the report.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// CSVHeader is the first line of the CSV form: one value per line, in long
// ("tidy") form, so that every section fits one shape.
const CSVHeader = "section,name,field,value"

// maxMessage bounds a sample error message in the table, in runes.
const maxMessage = 160

// Write writes r in format (FormatTable, FormatJSON or FormatCSV).
func (r Report) Write(w io.Writer, format string) error {
	switch format {
	case FormatTable, "":
		return r.WriteTable(w)
	case FormatJSON:
		return r.WriteJSON(w)
	case FormatCSV:
		return r.WriteCSV(w)
	}
	return fmt.Errorf("report: unknown format %q", format)
}

// WriteJSON writes r as one indented JSON object (the fields of Report).
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r for people.
func (r Report) WriteTable(out io.Writer) error {
	run := r.Run
	w := &bytes.Buffer{}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Run %d (%s): %s\n", run.ID, run.Kind, run.Status)
	fmt.Fprintf(tw, "  started\t%s\n", run.StartedAt.UTC().Format(time.RFC3339))
	if run.FinishedAt != nil {
		fmt.Fprintf(tw, "  finished\t%s (took %s)\n", run.FinishedAt.UTC().Format(time.RFC3339), seconds(run.DurationSeconds))
	} else {
		fmt.Fprintf(tw, "  finished\tnot yet\n")
	}
	fmt.Fprintf(tw, "  requests\t%d (%d throttled), %.1f/s achieved; --rate %s, --concurrency %d\n",
		r.Requests, r.Throttled, r.RequestsPerSecond, strconv.FormatFloat(run.Rate, 'f', -1, 64), run.Concurrency)
	fmt.Fprintf(tw, "  host\t%s, reconcile %s\n", run.HostName, run.Version)
	if run.Note != "" {
		fmt.Fprintf(tw, "  note\t%s\n", oneLine(run.Note, 500))
	}
	fmt.Fprintln(tw)
	_ = tw.Flush()

	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-17s\tCOUNT\tATTEMPTS\tMAX ATTEMPTS\tFIRST\tLAST\t\n", "OUTCOME")
	for _, o := range r.Outcomes {
		first, last := "-", "-"
		if o.FirstSeconds != nil {
			first, last = "+"+seconds(*o.FirstSeconds), "+"+seconds(*o.LastSeconds)
		}
		fmt.Fprintf(tw, "%-17s\t%d\t%d\t%d\t%s\t%s\t\n", o.Outcome, o.Count, o.Attempts, o.MaxAttempts, first, last)
	}
	fmt.Fprintf(tw, "%-17s\t%d\t\t\t\t\t\n", "invalid_unchanged", r.InvalidUnchanged)
	_ = tw.Flush()
	fmt.Fprintf(w, "done %d, not done %d; invalid_unchanged rows were invalid before with the same values (counted, not re-sent)\n\n",
		r.Done, r.NotDone)

	multi := r.MultiAccount()
	if multi {
		r.writeAccounts(w)
	}

	if len(r.Failures) == 0 {
		fmt.Fprintln(w, "No failures.")
		return textout.WriteTrimmed(out, w.Bytes())
	}
	fmt.Fprintln(w, "FAILURES BY ERROR CODE")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if multi {
		fmt.Fprintf(tw, "ACCOUNT\tOUTCOME\tERROR CODE\tCOUNT\tSAMPLE DOMAINS\n")
	} else {
		fmt.Fprintf(tw, "OUTCOME\tERROR CODE\tCOUNT\tSAMPLE DOMAINS\n")
	}
	for _, f := range r.Failures {
		sample := strings.Join(f.SampleDomains, " ")
		if int64(len(f.SampleDomains)) < f.Count {
			sample += " …"
		}
		lead := ""
		if multi {
			lead = f.Account + "\t"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%d\t%s\n", lead, f.Outcome, orNone(f.ErrorCode), f.Count, sample)
		if f.SampleMessage != "" {
			if multi {
				lead = "\t"
			}
			fmt.Fprintf(tw, "%s\t\t\te.g. %s\n", lead, oneLine(f.SampleMessage, maxMessage))
		}
	}
	_ = tw.Flush()
	return textout.WriteTrimmed(out, w.Bytes())
}

// writeAccounts writes the accounts section of the table: one line per
// account with its status and counts (and the reason it stopped under it),
// then its outcomes.
//
//	ACCOUNTS
//	ACCOUNT   STATUS     PENDING  DONE  NOT DONE  REQUESTS  THROTTLED  RATE  TOOK
//	default   succeeded      950   940        10      1000         12    25  9m58s
//	tenant-a  failed          40     0         0         1          0    10  0.3s
//	  reason: credentials refused (error code NoPermission)
//
//	OUTCOMES BY ACCOUNT
//	ACCOUNT   APPLIED  ALREADY_EXISTS  UPDATED  INVALID  FAILED
//	default       930              10        0        4       6
//	tenant-a        0               0        0        0       0
func (r Report) writeAccounts(w *bytes.Buffer) {
	width := len("ACCOUNT")
	for _, a := range r.Accounts {
		width = max(width, len([]rune(a.Account)))
	}
	fmt.Fprintln(w, "ACCOUNTS")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	// The name and the status are padded by hand, so that AlignRight leaves
	// them left-aligned; every cell ends with a tab.
	fmt.Fprintf(tw, "%-*s\t%-11s\tPENDING\tDONE\tNOT DONE\tREQUESTS\tTHROTTLED\tRATE\tTOOK\t\n", width, "ACCOUNT", "STATUS")
	var reasons []string
	for _, a := range r.Accounts {
		rate, took := "-", "-"
		if a.Rate != nil {
			rate = strconv.FormatFloat(*a.Rate, 'f', -1, 64)
		}
		if a.FinishedAt != nil {
			took = seconds(a.DurationSeconds)
		}
		status := a.Status
		if status == "" {
			status = "-"
		}
		fmt.Fprintf(tw, "%-*s\t%-11s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", width, a.Account, status, a.Pending, a.Done,
			a.NotDone, a.Requests, a.Throttled, rate, took)
		if a.Reason != "" || a.ErrorCode != "" {
			why := a.Reason
			if a.ErrorCode != "" {
				if why != "" {
					why += " "
				}
				why += "(error code " + a.ErrorCode + ")"
			}
			reasons = append(reasons, fmt.Sprintf("  %s: %s", a.Account, oneLine(why, maxMessage)))
		}
	}
	_ = tw.Flush()
	for _, l := range reasons {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)

	// The outcomes of the run-level table, in its order, and any other an
	// account had.
	var names []string
	seen := map[string]bool{}
	for _, o := range r.Outcomes {
		names, seen[o.Outcome] = append(names, o.Outcome), true
	}
	for _, a := range r.Accounts {
		for _, k := range slices.Sorted(maps.Keys(a.Outcomes)) {
			if !seen[k] {
				names, seen[k] = append(names, k), true
			}
		}
	}
	fmt.Fprintln(w, "OUTCOMES BY ACCOUNT")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\t", width, "ACCOUNT")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t", strings.ToUpper(n))
	}
	fmt.Fprintln(tw)
	for _, a := range r.Accounts {
		fmt.Fprintf(tw, "%-*s\t", width, a.Account)
		for _, n := range names {
			fmt.Fprintf(tw, "%d\t", a.Outcomes[n])
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}

// WriteCSV writes r as CSVHeader and one line per value:
//
//	run,,status,succeeded
//	outcome,applied,count,950
//	failure,failed/Throttling.User,sample_domains,a.example.com b.example.com
//	failure,failed/Throttling.User,account,default
//	account,tenant-a,status,failed
//	account,tenant-a,outcome.applied,12
//
// A failure group of a named account is named <account>:<outcome>/<code>
// (tenant-a:failed/Throttling.User), one of the default account
// <outcome>/<code> as before accounts; every group has an account line.
// The account lines (one per field of Account, the outcomes as
// outcome.<outcome>) follow the failures. A run from before schema 7 has
// neither: its lines are those it had then.
func (r Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	put := func(section, name, field, value string) { _ = cw.Write([]string{section, name, field, value}) }
	_ = cw.Write(strings.Split(CSVHeader, ","))
	run := r.Run
	put("run", "", "id", strconv.FormatInt(run.ID, 10))
	put("run", "", "kind", run.Kind)
	put("run", "", "status", run.Status)
	put("run", "", "started_at", run.StartedAt.UTC().Format(time.RFC3339Nano))
	finished := ""
	if run.FinishedAt != nil {
		finished = run.FinishedAt.UTC().Format(time.RFC3339Nano)
	}
	put("run", "", "finished_at", finished)
	put("run", "", "duration_seconds", float(run.DurationSeconds))
	put("run", "", "rate", float(run.Rate))
	put("run", "", "concurrency", strconv.Itoa(run.Concurrency))
	put("run", "", "host_name", run.HostName)
	put("run", "", "program_version", run.Version)
	put("run", "", "note", run.Note)
	put("run", "", "requests", strconv.FormatInt(r.Requests, 10))
	put("run", "", "throttled", strconv.FormatInt(r.Throttled, 10))
	put("run", "", "requests_per_second", float(r.RequestsPerSecond))
	put("run", "", "done", strconv.FormatInt(r.Done, 10))
	put("run", "", "not_done", strconv.FormatInt(r.NotDone, 10))
	put("run", "", "invalid_unchanged", strconv.FormatInt(r.InvalidUnchanged, 10))
	for _, o := range r.Outcomes {
		put("outcome", o.Outcome, "count", strconv.FormatInt(o.Count, 10))
		put("outcome", o.Outcome, "attempts", strconv.FormatInt(o.Attempts, 10))
		put("outcome", o.Outcome, "max_attempts", strconv.FormatInt(o.MaxAttempts, 10))
		if o.FirstSeconds != nil {
			put("outcome", o.Outcome, "first_seconds", float(*o.FirstSeconds))
			put("outcome", o.Outcome, "last_seconds", float(*o.LastSeconds))
		}
	}
	// A run from before schema 7 (no accounts) gets the lines it got then.
	withAccounts := len(r.Accounts) > 0 || r.MultiAccount()
	for _, f := range r.Failures {
		name := f.Outcome + "/" + f.ErrorCode
		if f.Account != model.DefaultAccountLabel {
			name = f.Account + ":" + name
		}
		put("failure", name, "count", strconv.FormatInt(f.Count, 10))
		put("failure", name, "sample_domains", strings.Join(f.SampleDomains, " "))
		put("failure", name, "sample_message", f.SampleMessage)
		if withAccounts {
			put("failure", name, "account", f.Account)
		}
	}
	for _, a := range r.Accounts {
		n := a.Account
		put("account", n, "status", a.Status)
		put("account", n, "reason", a.Reason)
		put("account", n, "error_code", a.ErrorCode)
		put("account", n, "pending", strconv.FormatInt(a.Pending, 10))
		put("account", n, "done", strconv.FormatInt(a.Done, 10))
		put("account", n, "not_done", strconv.FormatInt(a.NotDone, 10))
		put("account", n, "requests", strconv.FormatInt(a.Requests, 10))
		put("account", n, "throttled", strconv.FormatInt(a.Throttled, 10))
		rate := ""
		if a.Rate != nil {
			rate = float(*a.Rate)
		}
		put("account", n, "rate", rate)
		started := ""
		if !a.StartedAt.IsZero() {
			started = a.StartedAt.UTC().Format(time.RFC3339Nano)
		}
		put("account", n, "started_at", started)
		finished := ""
		if a.FinishedAt != nil {
			finished = a.FinishedAt.UTC().Format(time.RFC3339Nano)
		}
		put("account", n, "finished_at", finished)
		put("account", n, "duration_seconds", float(a.DurationSeconds))
		for _, o := range slices.Sorted(maps.Keys(a.Outcomes)) {
			put("account", n, "outcome."+o, strconv.FormatInt(a.Outcomes[o], 10))
		}
	}
	cw.Flush()
	return cw.Error()
}

func float(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// seconds prints a duration in seconds readably: 0.25s, 12.3s, 10m3s.
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// oneLine makes a stored message printable on one table line.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return strconv.Quote(s)
}
