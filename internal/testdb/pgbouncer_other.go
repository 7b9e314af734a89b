//go:build !linux

package testdb

import "testing"

// PgBouncer pool modes for ThroughPgBouncer.
const (
	PoolTransaction = "transaction"
	PoolSession     = "session"
)

// ThroughPgBouncer skips t: the tests start PgBouncer on Linux only.
func (d *DB) ThroughPgBouncer(t testing.TB, mode string) string {
	t.Helper()
	t.Skip("testdb: the PgBouncer tests run on Linux only")
	return ""
}
