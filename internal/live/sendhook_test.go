package live

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"sync"
	"testing"
)

// hookLog records what a SendHook was told.
type hookLog struct {
	mu         sync.Mutex
	before     int
	wrote      int
	notWritten []bool
}

func (l *hookLog) hook(beforeErr error) SendHook {
	return SendHook{
		Before: func() error { l.mu.Lock(); defer l.mu.Unlock(); l.before++; return beforeErr },
		Wrote:  func() { l.mu.Lock(); defer l.mu.Unlock(); l.wrote++ },
		NotWritten: func(may bool) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.notWritten = append(l.notWritten, may)
		},
	}
}

// TestSendHookReportsTheWire: for every Before that lets the request go,
// exactly one of Wrote (written to a connection) and NotWritten runs, and
// NotWritten says whether the request can have reached the server.
func TestSendHookReportsTheWire(t *testing.T) {
	t.Parallel()
	okSrv := httptest.NewServer(answer(200, `{"RequestId":"R"}`, nil))
	defer okSrv.Close()
	tlsSrv := httptest.NewTLSServer(answer(200, `{"RequestId":"R"}`, nil))
	defer tlsSrv.Close()
	reset := resetServer(t)
	// A port nothing listens on: the dial is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	errNo := errors.New("not now")
	for _, tt := range []struct {
		name       string
		endpoint   string
		beforeErr  error
		wrote      int
		notWritten []bool
	}{
		{"answered", okSrv.URL, nil, 1, nil},
		{"reset after the request was read", reset.URL, nil, 1, nil},
		{"dial refused", refused, nil, 0, []bool{false}},
		{"TLS handshake failed", tlsSrv.URL, nil, 0, []bool{false}},
		{"Before refused", okSrv.URL, errNo, 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.endpoint, nil)
			var l hookLog
			_, err := c.Add(WithSendHook(context.Background(), l.hook(tt.beforeErr)), testRequest())
			if tt.beforeErr != nil && err == nil {
				t.Fatal("the call succeeded although Before refused")
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.before != 1 || l.wrote != tt.wrote || len(l.notWritten) != len(tt.notWritten) {
				t.Fatalf("Before %d, Wrote %d, NotWritten %v; want 1, %d, %v", l.before, l.wrote, l.notWritten, tt.wrote, tt.notWritten)
			}
			for i := range tt.notWritten {
				if l.notWritten[i] != tt.notWritten[i] {
					t.Fatalf("NotWritten(%v), want %v", l.notWritten[i], tt.notWritten[i])
				}
			}
		})
	}
}
