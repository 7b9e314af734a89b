package live

import (
	"errors"
	"net"
	"testing"
)

// recConn is a net.Conn whose Write records that it returned, and fails
// when fail is set.
type recConn struct {
	net.Conn // nil: only Write is used
	returned int
	fail     bool
}

var errWriteFailed = errors.New("write failed")

func (c *recConn) Write(p []byte) (int, error) {
	c.returned++
	if c.fail {
		return 0, errWriteFailed
	}
	return len(p), nil
}

// TestTimedConnReportsAfterTheWrite: an armed callback runs once, after the
// next Write returned from the network connection, and not after a failed
// Write.
func TestTimedConnReportsAfterTheWrite(t *testing.T) {
	t.Parallel()
	rc := &recConn{}
	tc := &timedConn{Conn: rc}
	var calls, returnedAtCall int
	tc.arm(func() { calls++; returnedAtCall = rc.returned })
	if _, err := tc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || returnedAtCall != 1 {
		t.Fatalf("callback ran %d times, after %d writes returned; want once, after the write", calls, returnedAtCall)
	}
	if _, err := tc.Write([]byte("again")); err != nil || calls != 1 {
		t.Fatalf("a write with nothing armed: err %v, callback ran %d times, want 1", err, calls)
	}
	tc.arm(func() { calls++ })
	rc.fail = true
	if _, err := tc.Write([]byte("x")); !errors.Is(err, errWriteFailed) || calls != 1 {
		t.Fatalf("a failed write: err %v, callback ran %d times, want 1", err, calls)
	}
	rc.fail = false
	if _, err := tc.Write([]byte("y")); err != nil || calls != 1 {
		t.Fatalf("a failed write disarms: the next write ran the callback (%d calls)", calls)
	}
	if timedConnOf(tc) != tc || timedConnOf(rc) != nil {
		t.Fatal("timedConnOf does not find the timedConn")
	}
}
