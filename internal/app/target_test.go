package app

import (
	"errors"
	"strings"
	"testing"

	"github.com/reconcile/reconcile/internal/config"
)

// TestParseTarget: the target is what libpq's rules give, without the
// password, and counts only other hosts as fallbacks (not sslmode=prefer's
// plain retry of the same host).
func TestParseTarget(t *testing.T) {
	t.Setenv("PGDATABASE", "")
	for _, tc := range []struct {
		url, want string
		fallbacks int
		named     bool
	}{
		{"postgres://job:s3cret@db.internal:6432/video", "job@db.internal:6432/video", 0, true},
		{"postgres://job:s3cret@db1:5432,db2:5433/video?sslmode=prefer", "job@db1:5432/video", 1, true},
		{"host=/run/pg port=5432 user=job password=s3cret dbname=video", "job@[/run/pg]:5432/video", 0, true},
		{"postgres://job@db.internal/", "job@db.internal:5432/job (no database named: the user's name)", 0, false},
	} {
		got, _, err := ParseTarget(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if got.String() != tc.want || got.Fallbacks != tc.fallbacks || (got.Database != "") != tc.named {
			t.Errorf("%s: %q (fallbacks %d, database %q), want %q (%d)", tc.url, got, got.Fallbacks, got.Database, tc.want, tc.fallbacks)
		}
		if strings.Contains(got.String(), "s3cret") {
			t.Errorf("%s: target shows the password", tc.url)
		}
		if err := got.RequireDatabase("migrate"); (err == nil) != tc.named || err != nil && !errors.Is(err, config.ErrUsage) {
			t.Errorf("%s: RequireDatabase = %v", tc.url, err)
		}
	}
	t.Setenv("PGDATABASE", "fromenv")
	if got, _, _ := ParseTarget("postgres://job@db.internal/"); got.Database != "fromenv" || got.RequireDatabase("migrate") != nil {
		t.Errorf("PGDATABASE: database %q, want fromenv and accepted", got.Database)
	}
}
