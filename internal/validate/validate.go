// Package validate checks a desired row against the Live API's rules before
// any request is sent, so that a bad row costs no request and gets a message
// naming the field.
package validate

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/reconcile/reconcile/internal/model"
)

// Limits of the API (live-api.md, "Operations").
const (
	// MaxNotifyURLLen is the longest NotifyUrl the API accepts, in characters.
	MaxNotifyURLLen = 500
	// MinAuthKeyLen and MaxAuthKeyLen bound NotifyAuthKey.
	MinAuthKeyLen = 16
	MaxAuthKeyLen = 32
	// MaxDomainLen is the longest DNS name.
	MaxDomainLen = 253
	// MaxRegionLen bounds region_id (region ids are short, e.g. cn-shanghai).
	MaxRegionLen = 64
)

// FieldError says which field of which row breaks which rule. Its text never
// contains the auth key.
type FieldError struct {
	Domain string // the row's domain_name, as stored (quoted when printed)
	Field  string // column name: domain_name, notify_url, notify_auth_key, notify_req_auth, region_id
	Reason string
}

// Error implements error.
func (e *FieldError) Error() string {
	return fmt.Sprintf("row %q: %s: %s", printable(e.Domain), e.Field, e.Reason)
}

// Code is the error_code recorded for the invalid outcome, e.g. "Invalid.notify_url".
func (e *FieldError) Code() string { return "Invalid." + e.Field }

// Row checks every field of r and returns the first problem as a
// *FieldError, or nil when the row may be sent. It never panics, whatever
// the input, and never sends anything.
func Row(r model.Row) error {
	fail := func(field, format string, args ...any) error {
		return &FieldError{Domain: r.Domain, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if reason := Domain(r.Domain); reason != "" {
		return fail("domain_name", "%s", reason)
	}
	if reason := NotifyURL(r.NotifyURL); reason != "" {
		return fail("notify_url", "%s", reason)
	}
	key := r.AuthKey.Reveal()
	if r.ReqAuth && key == "" {
		return fail("notify_auth_key", "required when notify_req_auth is true")
	}
	if key != "" {
		if reason := AuthKey(key); reason != "" {
			return fail("notify_auth_key", "%s", reason)
		}
	}
	if r.Region != "" {
		if reason := Region(r.Region); reason != "" {
			return fail("region_id", "%s", reason)
		}
	}
	return nil
}

// Domain returns why d is not an acceptable streaming domain, or "".
// Upper-case and non-ASCII (IDN) names are refused rather than normalised:
// domain_name is the table's key, and silently rewriting it would let two
// rows name the same domain. Use lower-case and the punycode (xn--) form.
func Domain(d string) string {
	switch {
	case d == "":
		return "is empty"
	case !utf8.ValidString(d):
		return "is not valid UTF-8"
	case hasControl(d):
		return "contains control characters"
	case strings.TrimSpace(d) != d:
		return "has leading or trailing spaces"
	case len(d) > MaxDomainLen:
		return fmt.Sprintf("is longer than %d characters (%d)", MaxDomainLen, len(d))
	}
	for _, c := range d {
		if c > unicode.MaxASCII {
			return "contains non-ASCII characters: use the punycode (xn--) form of an internationalised name"
		}
		if c >= 'A' && c <= 'Z' {
			return "contains upper-case letters: domain names are stored lower-case"
		}
	}
	if strings.Contains(d, "://") || strings.ContainsAny(d, "/:@") {
		return "must be a bare host name, not a URL"
	}
	if net.ParseIP(d) != nil {
		return "is an IP address, not a domain"
	}
	labels := strings.Split(strings.TrimSuffix(d, "."), ".")
	if len(labels) < 2 {
		return "needs at least two labels (e.g. live.example.com)"
	}
	for _, l := range labels {
		switch {
		case l == "":
			return "has an empty label (two dots in a row)"
		case len(l) > 63:
			return fmt.Sprintf("has a label longer than 63 characters (%d)", len(l))
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Sprintf("label %q starts or ends with a hyphen", l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Sprintf("label %q has a character other than a-z, 0-9 and '-'", l)
			}
		}
	}
	return ""
}

// NotifyURL returns why u is not an acceptable callback URL, or "".
func NotifyURL(u string) string {
	n := utf8.RuneCountInString(u)
	switch {
	case u == "":
		return "is empty"
	case !utf8.ValidString(u):
		return "is not valid UTF-8"
	case n > MaxNotifyURLLen:
		return fmt.Sprintf("is longer than %d characters (%d)", MaxNotifyURLLen, n)
	case hasControl(u):
		return "contains control characters"
	case strings.ContainsAny(u, " \t"):
		return "contains spaces (percent-encode them)"
	}
	p, err := url.Parse(u)
	if err != nil {
		return "is not a valid URL"
	}
	switch strings.ToLower(p.Scheme) {
	case "http", "https":
	case "":
		return "has no scheme: it must start with http:// or https://"
	default:
		return fmt.Sprintf("has scheme %q: only http and https are allowed", p.Scheme)
	}
	if p.User != nil {
		return "contains credentials (user:password@): they would be stored in the cloud in clear text"
	}
	if p.Hostname() == "" {
		return "has no host"
	}
	if p.Opaque != "" {
		return "is not a valid URL (missing // after the scheme)"
	}
	return ""
}

// AuthKey returns why k is not an acceptable NotifyAuthKey, or "". The
// reason never contains the key.
func AuthKey(k string) string {
	n := utf8.RuneCountInString(k)
	if n < MinAuthKeyLen || n > MaxAuthKeyLen {
		return fmt.Sprintf("must be %d to %d characters long (it has %d)", MinAuthKeyLen, MaxAuthKeyLen, n)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "must contain only letters and digits"
		}
	}
	return ""
}

// Region returns why r is not an acceptable RegionId, or "".
func Region(r string) string {
	if len(r) > MaxRegionLen {
		return fmt.Sprintf("is longer than %d characters", MaxRegionLen)
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "must contain only a-z, 0-9 and '-' (e.g. cn-shanghai)"
		}
	}
	return ""
}

func hasControl(s string) bool {
	for _, c := range s {
		if unicode.IsControl(c) || c == utf8.RuneError {
			return true
		}
	}
	return false
}

// printable makes s safe to print in one line: invalid UTF-8 and control
// characters become escapes (via %q), and very long values are cut.
func printable(s string) string {
	const max = 120
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
