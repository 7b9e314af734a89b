// Package importer loads desired rows from a CSV file into
// desired_snapshot_callbacks (`reconcile import`): it parses and validates
// the file while streaming it into Postgres with COPY, then upserts it in
// one transaction — all or nothing.
//
// The file's first line is exactly Header, or HeaderWithAccount (Header and
// an account column). Every other line is one desired row: notify_req_auth
// is true/false/yes/no/on/off/1/0 (any case), an empty notify_auth_key,
// region_id or account is stored as NULL (an empty or absent account is the
// default account), an account must be a name reconcile_accounts accepts
// (CheckAccount), and the row must pass validate.Row, the same check a run
// applies, so that an imported row is one the run can send. Bad lines are reported with their line number, column
// and reason; no message ever holds a field's value other than a valid
// domain name (an auth key could be in any column of a malformed line).
package importer

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/validate"
)

// Header is the first line of an import file without an account column
// (every row is of the default account).
const Header = "domain_name,notify_url,notify_req_auth,notify_auth_key,region_id"

// AccountColumn is the optional last column: the account that holds the
// domain (desired_snapshot_callbacks.account); empty is the default account.
const AccountColumn = "account"

// HeaderWithAccount is the first line of an import file with an account
// column.
const HeaderWithAccount = Header + "," + AccountColumn

// Columns are the names of every column a file may have, in order; the last
// (AccountColumn) is optional.
var Columns = strings.Split(HeaderWithAccount, ",")

// Column positions (0-based).
const (
	colDomain = iota
	colURL
	colReqAuth
	colKey
	colRegion
	colAccount
)

// MaxAccountLen is the longest account name (reconcile_accounts.name).
const MaxAccountLen = 63

// Sentinel errors. Returned errors wrap them; test with errors.Is.
var (
	// ErrHeader: the file is empty or its first line is not Header.
	ErrHeader = errors.New("the first line must be the header " + Header + " (or " + HeaderWithAccount + ")")
	// ErrBadLines: the file has bad lines and the import was not told to
	// skip them; nothing was written.
	ErrBadLines = errors.New("bad line(s)")
	// ErrRead: reading the input failed (not a problem of its content).
	ErrRead = errors.New("reading the input failed")
)

// LineError is one bad line: where, and why. Its text never holds a field's
// value except a valid domain name.
type LineError struct {
	// Line is the line number in the file (the header is line 1); for a
	// record spanning several lines (a quoted field with line breaks), its
	// first line.
	Line int64 `json:"line"`
	// Column is the 1-based column of the bad field; 0 when the problem is
	// the line as a whole (wrong number of columns, broken quoting).
	Column int `json:"column,omitempty"`
	// Field is the column's name ("" when Column is 0).
	Field string `json:"field,omitempty"`
	// Domain is the line's domain_name when it is a valid one, else "".
	Domain string `json:"domain,omitempty"`
	// Reason says what is wrong.
	Reason string `json:"reason"`
}

// Error implements error: `line 12, column 2 (notify_url) of "a.example.com": is empty`.
func (e *LineError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d", e.Line)
	if e.Column > 0 {
		fmt.Fprintf(&b, ", column %d (%s)", e.Column, e.Field)
	}
	if e.Domain != "" {
		fmt.Fprintf(&b, " of %q", e.Domain)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Record is one line of the file.
type Record struct {
	// Line is the line number (see LineError.Line).
	Line int64
	// Row holds the desired values; Fingerprint, Applied and UpdatedAt are
	// unset. For a bad line only Domain may be set (the first column as
	// read, whatever it holds): callers must not print it.
	Row model.Row
}

// Parser reads an import file record by record. Memory is bounded by the
// longest record, not the file: the CSV reader reuses its record buffer.
// A Parser is not safe for concurrent use.
type Parser struct {
	r *csv.Reader
	// cols is the number of columns of the header (and of every line).
	cols int
}

// NewParser reads and checks the header line of r. It returns an error
// wrapping ErrHeader when r is empty or its first line is neither exactly
// Header nor exactly HeaderWithAccount (a UTF-8 byte order mark before it is
// allowed), and ErrRead when r fails.
func NewParser(r io.Reader) (*Parser, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // counted by Next, to report the line and go on
	cr.ReuseRecord = true
	head, err := cr.Read()
	var perr *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w (the input is empty)", ErrHeader)
	case errors.As(err, &perr):
		return nil, fmt.Errorf("%w (line 1: %v)", ErrHeader, perr.Err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrRead, err)
	}
	if len(head) > 0 {
		head[0] = strings.TrimPrefix(head[0], "\uFEFF")
	}
	got := strings.Join(head, ",")
	switch {
	case got == Header && len(head) == len(Columns)-1:
	case got == HeaderWithAccount && len(head) == len(Columns):
	default:
		return nil, fmt.Errorf("%w (line 1 has %d columns and is not it)", ErrHeader, len(head))
	}
	return &Parser{r: cr, cols: len(head)}, nil
}

// HasAccount reports whether the file has the account column.
func (p *Parser) HasAccount() bool { return p.cols > colAccount }

// Next reads the next record. It returns the record and a nil *LineError
// for a good line; the record (Line set, Row.Domain as read when there was
// one) and a *LineError for a bad line; and io.EOF at the end of the input.
// Any other error (wrapping ErrRead) means the input could not be read and
// the rest is lost. A good record passes validate.Row. Empty lines are
// skipped.
func (p *Parser) Next() (Record, *LineError, error) {
	fields, err := p.r.Read()
	if err != nil {
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			// The reader has moved past the broken record; go on.
			return Record{Line: int64(perr.StartLine)},
				&LineError{Line: int64(perr.StartLine), Reason: "broken CSV quoting: " + perr.Err.Error() + fmt.Sprintf(" (at line %d, column %d)", perr.Line, perr.Column)}, nil
		}
		if errors.Is(err, io.EOF) {
			return Record{}, nil, io.EOF
		}
		return Record{}, nil, fmt.Errorf("%w: %w", ErrRead, err)
	}
	line, _ := p.r.FieldPos(0) // fields is never empty here: csv skips empty lines
	rec := Record{Line: int64(line)}
	rec.Row.Domain = fields[colDomain]
	bad := func(col int, reason string) (Record, *LineError, error) {
		le := &LineError{Line: rec.Line, Column: col + 1, Field: Columns[col], Reason: reason}
		if validate.Domain(rec.Row.Domain) == "" {
			le.Domain = rec.Row.Domain
		}
		return Record{Line: rec.Line, Row: model.Row{Domain: rec.Row.Domain}}, le, nil
	}
	if len(fields) != p.cols {
		le := &LineError{Line: rec.Line, Reason: fmt.Sprintf("has %d columns, want %d (%s)", len(fields), p.cols,
			strings.Join(Columns[:p.cols], ","))}
		if validate.Domain(rec.Row.Domain) == "" {
			le.Domain = rec.Row.Domain
		}
		return Record{Line: rec.Line, Row: model.Row{Domain: rec.Row.Domain}}, le, nil
	}
	reqAuth, ok := ParseBool(fields[colReqAuth])
	if !ok {
		return bad(colReqAuth, "must be "+config.BoolWords)
	}
	rec.Row.NotifyURL = fields[colURL]
	rec.Row.ReqAuth = reqAuth
	rec.Row.AuthKey = model.Secret(fields[colKey])
	rec.Row.Region = fields[colRegion]
	if err := validate.Row(rec.Row); err != nil {
		var fe *validate.FieldError
		if !errors.As(err, &fe) {
			return bad(colDomain, err.Error())
		}
		col := colDomain
		for i, name := range Columns {
			if name == fe.Field {
				col = i
			}
		}
		return bad(col, fe.Reason)
	}
	if p.cols > colAccount {
		if reason := CheckAccount(fields[colAccount]); reason != "" {
			return bad(colAccount, reason)
		}
		rec.Row.Account = fields[colAccount]
	}
	return rec, nil, nil
}

// CheckAccount returns why name cannot be the account of a desired row, or
// "" when it can: "" (the default account) or a name reconcile_accounts
// accepts, ^[a-z0-9][a-z0-9._-]{0,62}$ and not "default" (the label of the
// default account). The reason never repeats the name (a key written into
// the wrong column must not be printed).
func CheckAccount(name string) string {
	switch {
	case name == "":
		return ""
	case name == model.DefaultAccountLabel:
		return `"` + model.DefaultAccountLabel + `" is reserved: leave the account empty for the default account`
	case len(name) > MaxAccountLen:
		return fmt.Sprintf("is longer than %d characters", MaxAccountLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return "must be lower-case letters a-z, digits, '.', '_' and '-', starting with a letter or digit " +
				"(a name of reconcile_accounts)"
		}
	}
	return ""
}

// ParseBool reads notify_req_auth with the words every flag and variable
// of reconcile takes (config.ParseBool): true/yes/on/1 and false/no/off/0,
// in any case. Anything else (the empty string included) is not ok.
func ParseBool(s string) (v, ok bool) { return config.ParseBool(s) }

// storable reports whether s can be stored as text in Postgres (valid
// UTF-8, no NUL byte).
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
