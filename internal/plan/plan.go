// Package plan computes what the next `reconcile run` would do (`reconcile
// plan`), without calling the API or writing anything.
//
// Every desired row falls in exactly one class:
//
//   - add: pending, and the cloud holds no config as far as the job knows
//     (never applied, or found missing): the run sends Add;
//   - update: pending, and an earlier run applied other values (or found a
//     drifted config): the run sends Update;
//   - retry-failed: pending, and its latest outcome is failed: the run sends
//     it again (as Add or Update);
//   - invalid: pending and breaking validate.Row now (the run records
//     invalid and sends nothing), or invalid and unchanged since an earlier
//     run (counted, nothing recorded);
//   - done: its latest done outcome is for its current values.
//
// Pending rows are read with db.PendingPage, the run's own query, in keyset
// pages, and classified with validate.Row, the run's own check, so plan and
// run agree; memory holds one page and the first Limit domains of each class.
//
// The plan also counts the classes per account (Plan.Accounts; the default
// account, NULL in SQL and "" in Go, is labelled "default") and flags the
// accounts a run will not take up: an account with desired rows that no
// reconcile_accounts row names (unknown) and a disabled one. Their rows are
// classified as for any account but stay pending (Plan.HeldBack).
package plan

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/validate"
)

// Class is what the next run does with a row.
type Class string

// The classes, in the order they are reported.
const (
	Add         Class = "add"
	Update      Class = "update"
	RetryFailed Class = "retry-failed"
	Invalid     Class = "invalid"
	Done        Class = "done"
)

// Classes lists every class in report order.
var Classes = []Class{Add, Update, RetryFailed, Invalid, Done}

// Defaults of Options.
const (
	DefaultLimit    = 10
	DefaultPageSize = 1000
	// maxDetail bounds an error message shown as a detail, in runes.
	maxDetail = 160
)

// Flags of AccountSummary.Flag: why the next run leaves an account's rows
// pending.
const (
	FlagUnknown  = "unknown account (rows stay pending)"
	FlagDisabled = "disabled (rows stay pending)"
)

// Options change what Build reads.
type Options struct {
	// Limit is how many domains each class lists (the first by name); 0
	// lists none. Negative is refused.
	Limit int
	// PageSize is how many pending rows one page reads; 0 means
	// DefaultPageSize.
	PageSize int
}

// Entry is one listed domain, with its account and a detail (the reason it
// is invalid, the last error of a failed one, the outcome of a done one).
type Entry struct {
	Domain string `json:"domain"`
	// Account is the row's account label: its name, or "default" for the
	// default account (model.AccountLabel).
	Account string `json:"account"`
	Detail  string `json:"detail,omitempty"`
}

// AccountSummary is the plan of one account's rows.
type AccountSummary struct {
	// Account is the account's label: its name, or "default" for the
	// default account (model.AccountLabel).
	Account string `json:"account"`
	// Desired, Pending, Calls and InvalidUnchanged are as in Plan, for the
	// account's rows.
	Desired          int64 `json:"desired"`
	Pending          int64 `json:"pending"`
	Calls            int64 `json:"calls"`
	InvalidUnchanged int64 `json:"invalid_unchanged"`
	// Counts holds the count of every class (keys: the Classes).
	Counts map[Class]int64 `json:"counts"`
	// Unknown: no reconcile_accounts row names the account; Disabled: its
	// row is disabled. Either way the next run leaves its rows pending.
	Unknown  bool `json:"unknown"`
	Disabled bool `json:"disabled"`
	// Flag says why the run leaves the rows pending (FlagUnknown,
	// FlagDisabled), or is empty.
	Flag string `json:"flag,omitempty"`
}

// HeldBack reports whether the next run leaves the account's rows pending.
func (a *AccountSummary) HeldBack() bool { return a.Unknown || a.Disabled }

// ClassSummary is one class: how many rows, and the first Limit of them.
type ClassSummary struct {
	Class   Class   `json:"class"`
	Count   int64   `json:"count"`
	Domains []Entry `json:"domains"`
}

// Plan is what the next run would do.
type Plan struct {
	// Desired is the number of desired rows.
	Desired int64 `json:"desired"`
	// Pending is the number of rows the next run would take up: add,
	// update, retry-failed and the rows invalid now (not the invalid and
	// unchanged ones, for which a run records nothing).
	Pending int64 `json:"pending"`
	// Calls is the number of rows the run would call the API for (add,
	// update, retry-failed): at least one request each.
	Calls int64 `json:"calls"`
	// InvalidUnchanged is the part of the invalid class that is invalid and
	// unchanged since an earlier run.
	InvalidUnchanged int64 `json:"invalid_unchanged"`
	// Classes holds every class, in Classes order.
	Classes []ClassSummary `json:"classes"`
	// HeldBack is the part of Pending in accounts the next run will not
	// take up (unknown or disabled): those rows stay pending.
	HeldBack int64 `json:"held_back"`
	// Accounts holds the plan of each account with desired rows, the
	// default account first and then by name.
	Accounts []AccountSummary `json:"accounts"`
}

// MultiAccount reports whether some desired row names an account (other
// than the default one): then the table shows the accounts.
func (p *Plan) MultiAccount() bool {
	for _, a := range p.Accounts {
		if a.Account != model.DefaultAccountLabel {
			return true
		}
	}
	return false
}

// Account returns the summary of the account labelled label, or nil.
func (p *Plan) Account(label string) *AccountSummary {
	for i := range p.Accounts {
		if p.Accounts[i].Account == label {
			return &p.Accounts[i]
		}
	}
	return nil
}

// Class returns the summary of class c.
func (p *Plan) Class(c Class) *ClassSummary {
	for i := range p.Classes {
		if p.Classes[i].Class == c {
			return &p.Classes[i]
		}
	}
	return nil
}

// Classify returns the class of a pending row as the run would treat it,
// and a detail for display: the field and reason when it is invalid, the
// latest outcome when it is not a done one. The detail never holds the auth
// key.
func Classify(r model.Row) (Class, string) {
	if err := validate.Row(r); err != nil {
		var fe *validate.FieldError
		if errors.As(err, &fe) {
			return Invalid, fe.Field + ": " + fe.Reason
		}
		return Invalid, "invalid"
	}
	var detail string
	if r.LastOutcome != "" && !r.LastOutcome.Done() {
		detail = "last outcome: " + string(r.LastOutcome)
	}
	switch {
	case r.LastOutcome == model.OutcomeFailed:
		return RetryFailed, ""
	case r.Applied:
		return Update, detail
	}
	return Add, detail
}

// Build reads the desired rows through q and returns the plan. Run it in a
// REPEATABLE READ (read-only) transaction to get counts and lists from one
// snapshot; on a pool, each statement has its own. It writes nothing.
func Build(ctx context.Context, q db.Querier, o Options) (Plan, error) {
	if o.Limit < 0 {
		return Plan{}, fmt.Errorf("plan: limit %d: %w", o.Limit, db.ErrInvalidArgument)
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	byAccount, err := db.CountStatusByAccount(ctx, q)
	if err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	var counts db.StatusCounts
	p := Plan{Accounts: []AccountSummary{}}
	named := false
	for _, a := range byAccount {
		counts.Desired += a.Desired
		counts.Done += a.Done
		counts.InvalidUnchanged += a.InvalidUnchanged
		named = named || a.Account != ""
		s := AccountSummary{Account: model.AccountLabel(a.Account), Desired: a.Desired,
			InvalidUnchanged: a.InvalidUnchanged, Counts: map[Class]int64{}, Unknown: a.Unknown, Disabled: a.Disabled}
		for _, c := range Classes {
			s.Counts[c] = 0
		}
		s.Counts[Invalid] = a.InvalidUnchanged
		s.Counts[Done] = a.Done
		switch {
		case a.Unknown:
			s.Flag = FlagUnknown
		case a.Disabled:
			s.Flag = FlagDisabled
		}
		p.Accounts = append(p.Accounts, s)
	}
	p.Desired, p.InvalidUnchanged = counts.Desired, counts.InvalidUnchanged
	for _, c := range Classes {
		p.Classes = append(p.Classes, ClassSummary{Class: c, Domains: []Entry{}})
	}
	// account returns the summary of account label, adding one when a row
	// of an account the counts did not see turns up (outside a snapshot).
	account := func(label string) *AccountSummary {
		if a := p.Account(label); a != nil {
			return a
		}
		p.Accounts = append(p.Accounts, AccountSummary{Account: label, Counts: map[Class]int64{}})
		return &p.Accounts[len(p.Accounts)-1]
	}

	after := ""
	for {
		rows, err := db.PendingPage(ctx, q, after, o.PageSize)
		if err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		if named {
			// Only when some row names an account: a table of the default
			// account alone costs no lookup.
			if err := db.FillAccounts(ctx, q, rows); err != nil {
				return Plan{}, fmt.Errorf("plan: %w", err)
			}
		}
		for _, r := range rows {
			c, detail := Classify(r)
			label := model.AccountLabel(r.Account)
			s := p.Class(c)
			s.Count++
			account(label).Counts[c]++
			if len(s.Domains) < o.Limit {
				s.Domains = append(s.Domains, Entry{Domain: r.Domain, Account: label, Detail: detail})
			}
		}
		if len(rows) < o.PageSize {
			break
		}
		after = rows[len(rows)-1].Domain
	}
	for _, c := range []Class{Add, Update, RetryFailed, Invalid} {
		p.Pending += p.Class(c).Count
	}
	p.Calls = p.Pending - p.Class(Invalid).Count
	for i := range p.Accounts {
		a := &p.Accounts[i]
		a.Calls = a.Counts[Add] + a.Counts[Update] + a.Counts[RetryFailed]
		a.Pending = a.Calls + a.Counts[Invalid] - a.InvalidUnchanged
		if a.HeldBack() {
			p.HeldBack += a.Pending
		}
	}

	// Details of the failed rows listed: their last error.
	retry := p.Class(RetryFailed)
	if len(retry.Domains) > 0 {
		names := make([]string, len(retry.Domains))
		for i, e := range retry.Domains {
			names[i] = e.Domain
		}
		last, err := db.LastOutcomes(ctx, q, names)
		if err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		for i, e := range retry.Domains {
			if s, ok := last[e.Domain]; ok {
				retry.Domains[i].Detail = errorDetail("last error", s)
			}
		}
	}

	// Rows that are not pending: invalid and unchanged (after those invalid
	// now), and done.
	inv := p.Class(Invalid)
	inv.Count += counts.InvalidUnchanged
	if n := o.Limit - len(inv.Domains); n > 0 && counts.InvalidUnchanged > 0 {
		list, err := db.InvalidUnchangedSample(ctx, q, n)
		if err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		for _, s := range list {
			inv.Domains = append(inv.Domains, Entry{Domain: s.Domain, Account: model.AccountLabel(s.Account),
				Detail: errorDetail(fmt.Sprintf("unchanged since run %d", s.RunID), s)})
		}
	}
	done := p.Class(Done)
	done.Count = counts.Done
	if o.Limit > 0 && counts.Done > 0 {
		list, err := db.DoneSample(ctx, q, o.Limit)
		if err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		for _, s := range list {
			done.Domains = append(done.Domains, Entry{Domain: s.Domain, Account: model.AccountLabel(s.Account),
				Detail: fmt.Sprintf("%s (run %d)", s.Outcome, s.RunID)})
		}
	}
	return p, nil
}

// errorDetail formats a stored error: `prefix: code: message`, the message
// without the `row "<domain>": ` that invalid outcomes start with, and cut.
func errorDetail(prefix string, s db.DomainStatus) string {
	msg := strings.TrimPrefix(s.ErrorMessage, fmt.Sprintf("row %q: ", s.Domain))
	if r := []rune(msg); len(r) > maxDetail {
		msg = string(r[:maxDetail-1]) + "…"
	}
	parts := []string{prefix}
	if s.ErrorCode != "" {
		parts = append(parts, s.ErrorCode)
	}
	if msg != "" {
		parts = append(parts, msg)
	}
	return strings.Join(parts, ": ")
}
