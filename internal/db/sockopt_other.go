//go:build !linux

package db

import "syscall"

// setTCPUserTimeout does nothing outside Linux (no TCP_USER_TIMEOUT there);
// keepalives still apply.
func setTCPUserTimeout(string, string, syscall.RawConn) error { return nil }
