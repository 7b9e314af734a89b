package model

import (
	"fmt"
	"log/slog"
)

// Redacted is what a Secret prints as, wherever it is formatted.
const Redacted = "[REDACTED]"

// Secret holds a value that must never be printed: an AccessKey secret, an
// STS token or a notify_auth_key. Every way of formatting it (fmt verbs,
// slog, JSON) yields Redacted; only Reveal returns the value, and only the
// code that puts it on the wire should call it.
type Secret string

// Reveal returns the secret's value. Call it only where the value is sent.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }

// String implements fmt.Stringer and redacts.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString implements fmt.GoStringer (%#v) and redacts.
func (s Secret) GoString() string { return s.String() }

// Format implements fmt.Formatter so that every verb (%s, %v, %q, %x …) redacts.
func (s Secret) Format(f fmt.State, verb rune) { _, _ = fmt.Fprint(f, s.String()) }

// LogValue implements slog.LogValuer and redacts.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler (used by JSON) and redacts.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
