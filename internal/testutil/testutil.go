// Package testutil holds the small helpers that several packages' tests
// share. It is imported by tests only.
package testutil

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer that one writer and concurrent readers may use at
// once (a logger writing while a test reads).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Context returns a context cancelled when t ends, or after two minutes,
// whichever comes first: a bound for database calls in tests.
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
