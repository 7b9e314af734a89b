package live

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestClassifyCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code   string
		status int
		want   Class
	}{
		{"ConfigAlreadyExists", 409, ClassDuplicate},
		{"ConfigAlreadyExists", 400, ClassDuplicate},
		{"Throttling", 400, ClassThrottled},
		{"Throttling.User", 400, ClassThrottled},
		{"Throttling.Api", 400, ClassThrottled},
		{"Throttling.Something", 503, ClassThrottled},
		{"ServiceUnavailable", 503, ClassTransient},
		{"InternalError", 500, ClassTransient},
		{"InternalError", 400, ClassTransient}, // code wins over status
		{"UnknownError", 502, ClassTransient},
		{"", 504, ClassTransient},
		{"SignatureNonceUsed", 400, ClassTransient},
		{"InvalidAccessKeyId.NotFound", 404, ClassCredentials},
		{"InvalidAccessKeyId.Inactive", 400, ClassCredentials},
		{"InvalidAccessKeyId", 400, ClassCredentials},
		{"SignatureDoesNotMatch", 400, ClassCredentials},
		{"IncompleteSignature", 400, ClassCredentials},
		{"InvalidTimeStamp.Expired", 400, ClassCredentials},
		{"InvalidSecurityToken.Expired", 400, ClassCredentials},
		{"InvalidSecurityToken.MismatchWithAccessKey", 400, ClassCredentials},
		{"InvalidSecurityToken", 400, ClassCredentials},
		{"Forbidden", 403, ClassPermission},
		{"Forbidden.RAM", 403, ClassPermission},
		{"Forbidden.RAM", 400, ClassPermission}, // code wins over status
		{"Forbidden.NoPermission", 403, ClassPermission},
		{"Forbidden.Something", 403, ClassPermission},
		{"NoPermission", 403, ClassPermission},
		{"NotAuthorized", 403, ClassPermission},
		{"", 403, ClassRowError},
		{"NoPermissionX", 403, ClassRowError},
		{"ConfigNotFound", 400, ClassNotFound},
		{"ConfigNotFound", 404, ClassNotFound},
		{"MissingParam", 400, ClassRowError},
		{"MalformedParam", 400, ClassRowError},
		{"InvalidDomain.NotFound", 404, ClassRowError},
		{"ForbiddenX", 403, ClassRowError},
		{"SomethingElse", 400, ClassRowError},
		{"", 400, ClassRowError},
		{"", 429, ClassThrottled},
	}
	for _, tt := range tests {
		err := fmt.Errorf("wrapped: %w", &APIError{Op: OpAdd, Code: tt.code, HTTPStatus: tt.status})
		if got := Classify(err); got != tt.want {
			t.Errorf("Classify(%q, %d) = %v, want %v", tt.code, tt.status, got, tt.want)
		}
	}
}

func TestClassString(t *testing.T) {
	t.Parallel()
	seen := map[string]Class{}
	for c := ClassOK; c <= ClassCredentialsUnavailable; c++ {
		name := c.String()
		if name == "unknown" {
			t.Errorf("Class(%d) has no name", c)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("Class(%d) and Class(%d) share the name %q", prev, c, name)
		}
		seen[name] = c
	}
	if ClassPermission.String() != "permission" {
		t.Errorf("ClassPermission = %q", ClassPermission.String())
	}
	if got := Class(-1).String(); got != "unknown" {
		t.Errorf("Class(-1) = %q", got)
	}
}

func TestClassifyOther(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want Class
	}{
		{nil, ClassOK},
		{&TransportError{Op: OpAdd, Timeout: true}, ClassTransient},
		{&TransportError{Op: OpAdd}, ClassTransient},
		{&TransportError{Op: OpAdd, AnswerStatus: 502}, ClassTransient},
		{&TransportError{Op: OpAdd, AnswerStatus: 429}, ClassThrottled},
		{&CanceledError{Op: OpAdd, Err: context.Canceled}, ClassCanceled},
		{context.Canceled, ClassCanceled},
		{fmt.Errorf("x: %w", ErrNoCredentials), ClassCredentials},
		{fmt.Errorf("x: %w", &CredentialsError{Provider: "p", Err: errors.New("down")}), ClassCredentialsUnavailable},
		{errors.New("other"), ClassRowError},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestErrorCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{&APIError{Code: "MalformedParam"}, "MalformedParam"},
		{&TransportError{Timeout: true}, "Timeout"},
		{&TransportError{}, "ConnectionError"},
		{&CanceledError{Op: OpAdd, Err: context.Canceled}, "Canceled"},
		{fmt.Errorf("%w", ErrNoCredentials), "NoCredentials"},
		{fmt.Errorf("%w", &CredentialsError{Provider: "p", Err: errors.New("down")}), "CredentialsUnavailable"},
		{errors.New("x"), "Error"},
	}
	for _, tt := range tests {
		if got := ErrorCode(tt.err); got != tt.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestAPIErrorText(t *testing.T) {
	t.Parallel()
	e := &APIError{Op: OpAdd, Code: "MalformedParam", Message: "NotifyUrl is bad", HTTPStatus: 400, RequestID: "X"}
	want := "AddLiveSnapshotNotifyConfig: MalformedParam (HTTP 400, RequestId X): NotifyUrl is bad"
	if got := e.Error(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e = &APIError{Op: OpAdd, Code: "Throttling", HTTPStatus: 400, RetryAfter: 1500 * time.Millisecond}
	if got := e.Error(); got != "AddLiveSnapshotNotifyConfig: Throttling (HTTP 400, retry after 1.5s)" {
		t.Errorf("got %q", got)
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	tests := []struct {
		msg     string
		secrets []string
		want    string
	}{
		{`Post "https://live.aliyuncs.com/?AccessKeyId=a&NotifyAuthKey=abc123": EOF`, nil, `Post "https://live.aliyuncs.com/": EOF`},
		{`Post "http://127.0.0.1:80/?x=1": context deadline exceeded`, nil, `Post "http://127.0.0.1:80/": context deadline exceeded`},
		{`bad NotifyAuthKey=abc123&x=1`, nil, `bad NotifyAuthKey=[REDACTED]&x=1`},
		{`SecurityToken=tok/en+1 Signature="sig"`, nil, `SecurityToken=[REDACTED] Signature="[REDACTED]"`},
		{`the key k3yV4lue is wrong`, []string{"k3yV4lue"}, `the key [REDACTED] is wrong`},
		{`enc a%2Fb%2Bc and raw a/b+c and q a%2Fb%2Bc`, []string{"a/b+c"}, `enc [REDACTED] and raw [REDACTED] and q [REDACTED]`},
		{`space a%20b plus a+b`, []string{"a b"}, `space [REDACTED] plus [REDACTED]`},
		{`nothing here`, []string{"", "zzz"}, `nothing here`},
		{`abcdef abc`, []string{"abc", "abcdef"}, `[REDACTED] [REDACTED]`},
	}
	for _, tt := range tests {
		if got := Scrub(tt.msg, tt.secrets...); got != tt.want {
			t.Errorf("Scrub(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
	if s := Scrub("SignatureDoesNotMatch: the signature does not match"); !strings.Contains(s, "SignatureDoesNotMatch: the") {
		t.Errorf("Scrub mangled an error code: %q", s)
	}
}
