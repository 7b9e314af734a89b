package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/reconcile/reconcile/internal/logging"
)

// TestPanicReportIsScrubbed: a panic whose value (and stack) carries a
// secret the process knows is reported without it.
func TestPanicReportIsScrubbed(t *testing.T) {
	t.Parallel()
	const secret, key = "AKsecretForPanicTest/+=", "panicAuthKey12345678"
	r := logging.NewRedactor()
	r.Add(secret)
	r.Hold(key)
	var out bytes.Buffer
	func() {
		defer func() {
			p := recover()
			reportPanic(r, &out, p, []byte("goroutine 1 [running]:\nmain.f(\""+key+"\")\n"))
		}()
		panic(errors.New(`Post "https://live.aliyuncs.com/?NotifyAuthKey=` + key + `": secret ` + secret))
	}()
	got := out.String()
	if strings.Contains(got, secret) || strings.Contains(got, key) {
		t.Fatalf("panic report leaks a secret:\n%s", got)
	}
	if !strings.Contains(got, "reconcile: panic:") || !strings.Contains(got, "[REDACTED]") || !strings.Contains(got, "goroutine 1") {
		t.Fatalf("panic report lacks its parts:\n%s", got)
	}
}
