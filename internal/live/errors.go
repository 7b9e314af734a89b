package live

import (
	"context"
	"errors"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Error implements error: "Op: Code (HTTP 400, RequestId X): message".
// Message was scrubbed when the error was built.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Code != "" {
		b.WriteString(e.Code)
	} else {
		b.WriteString("(no code)")
	}
	b.WriteString(" (HTTP ")
	b.WriteString(strconv.Itoa(e.HTTPStatus))
	if e.RequestID != "" {
		b.WriteString(", RequestId ")
		b.WriteString(e.RequestID)
	}
	if e.RetryAfter > 0 {
		b.WriteString(", retry after ")
		b.WriteString(e.RetryAfter.String())
	}
	b.WriteString(")")
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// CanceledError reports that the caller's context ended before an answer
// arrived. Err is that context's Err() (context.Canceled or
// context.DeadlineExceeded), so errors.Is(err, context.Canceled) works. It is
// never produced by the Client's own RequestTimeout (that is a
// *TransportError with Timeout set).
type CanceledError struct {
	Op  string
	Err error
}

// Error implements error.
func (e *CanceledError) Error() string { return e.Op + ": canceled by caller: " + e.Err.Error() }

// Unwrap returns the context's error.
func (e *CanceledError) Unwrap() error { return e.Err }

// credentialCodes are the exact codes that mean "the AccessKey, signature,
// STS token or timestamp was refused" (live-api.md, "Errors"); prefixes in
// credentialPrefixes.
var credentialCodes = map[string]bool{
	"InvalidAccessKeyId":          true,
	"InvalidAccessKeyId.NotFound": true,
	"InvalidAccessKeyId.Inactive": true,
	"SignatureDoesNotMatch":       true,
	"IncompleteSignature":         true,
	"InvalidTimeStamp.Expired":    true,
	"InvalidSecurityToken":        true,
}

var credentialPrefixes = []string{"InvalidAccessKeyId.", "InvalidSecurityToken."}

// permissionCodes are the codes that mean "this identity may not do this
// operation on this resource": Forbidden and Forbidden.* (live-api.md,
// "Errors"; Forbidden.RAM is what RAM answers), and NoPermission and
// NotAuthorized, which Alibaba Cloud's RAM guide "How do I troubleshoot an
// access denied error?" lists next to Forbidden.RAM as the OpenAPI access
// denied errors. Prefixes in permissionPrefixes.
var permissionCodes = map[string]bool{
	"Forbidden":     true,
	"NoPermission":  true,
	"NotAuthorized": true,
}

var permissionPrefixes = []string{"Forbidden."}

// ClassifyCode classifies an API error code (and, for codes it does not
// know, the HTTP status) per live-api.md "Errors". Code wins over status, so
// a 403 without a known code is ClassRowError and a Forbidden with HTTP 400
// is ClassPermission. Codes refusing the identity itself (InvalidAccessKeyId,
// InvalidAccessKeyId.*, SignatureDoesNotMatch, IncompleteSignature,
// InvalidSecurityToken, InvalidSecurityToken.*, InvalidTimeStamp.Expired) are
// ClassCredentials; codes refusing one operation on one resource (Forbidden,
// Forbidden.*, NoPermission, NotAuthorized) are ClassPermission.
func ClassifyCode(code string, status int) Class {
	switch {
	case code == "ConfigAlreadyExists":
		return ClassDuplicate
	case strings.HasPrefix(code, "Throttling"):
		return ClassThrottled
	case code == "ConfigNotFound":
		return ClassNotFound
	case credentialCodes[code]:
		return ClassCredentials
	case permissionCodes[code]:
		return ClassPermission
	case code == "ServiceUnavailable", code == "InternalError", strings.HasPrefix(code, "ServiceUnavailable."), strings.HasPrefix(code, "InternalError."):
		return ClassTransient
	case code == "SignatureNonceUsed":
		// A nonce collision: the retry is re-signed with a fresh nonce.
		return ClassTransient
	}
	for _, p := range credentialPrefixes {
		if strings.HasPrefix(code, p) {
			return ClassCredentials
		}
	}
	for _, p := range permissionPrefixes {
		if strings.HasPrefix(code, p) {
			return ClassPermission
		}
	}
	switch {
	case status >= 500:
		return ClassTransient
	case status == 429:
		// Not in the docs; a proxy's rate limit. Treat as throttling.
		return ClassThrottled
	}
	return ClassRowError
}

// Classify tells the caller what to do with an error from this package.
//
//   - nil → ClassOK
//   - *CanceledError (or a bare context.Canceled / DeadlineExceeded) →
//     ClassCanceled: the caller's ctx ended; stop, this is not the row's fault
//   - *APIError → by Code (ClassifyCode); a refused AccessKey, signature
//     or token is ClassCredentials, a refused permission ClassPermission
//   - *TransportError → ClassTransient (ClassThrottled when an unreadable
//     answer had HTTP 429)
//   - *CredentialsError → ClassCredentialsUnavailable: getting credentials
//     failed at call time, no request was sent; transient
//   - *CredentialsRefusedError → ClassCredentials: STS refused to let the
//     job assume an account's role (it also wraps ErrNoCredentials)
//   - ErrNoCredentials → ClassCredentials: no credentials configured
//   - anything else → ClassRowError
func Classify(err error) Class {
	if err == nil {
		return ClassOK
	}
	var ce *CanceledError
	var ae *APIError
	var te *TransportError
	var cre *CredentialsError
	var ref *CredentialsRefusedError
	switch {
	case errors.As(err, &ce):
		return ClassCanceled
	case errors.As(err, &ref):
		// Before APIError: STS's NoPermission is not the Live API's.
		return ClassCredentials
	case errors.As(err, &ae):
		return ClassifyCode(ae.Code, ae.HTTPStatus)
	case errors.As(err, &te):
		if te.AnswerStatus == 429 {
			return ClassThrottled
		}
		return ClassTransient
	case errors.As(err, &cre):
		return ClassCredentialsUnavailable
	case errors.Is(err, ErrNoCredentials):
		return ClassCredentials
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ClassCanceled
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return ClassTransient
	}
	return ClassRowError
}

// Redacted replaces secrets in scrubbed text.
const redacted = "[REDACTED]"

var (
	// A URL with a query: keep scheme://host/path, drop "?…".
	urlQueryRE = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://[^\s"'<>?#]*)\?[^\s"'<>]*`)
	// Secret-bearing parameters wherever they appear (a bare query, a form
	// body, a log line), quoted or not.
	secretParamRE = regexp.MustCompile(`(?i)((?:NotifyAuthKey|AccessKeySecret|SecurityToken|BearerToken|Signature|x-acs-security-token|Authorization)["']?\s*[=:]\s*["']?)[^&\s"'<>,}]*`)
)

// Scrub removes secrets from msg before it may leave the package (errors,
// logs): URL queries are stripped, secret-bearing parameters
// (NotifyAuthKey=…, SecurityToken=…, Signature=…, AccessKeySecret=…) are
// blanked, and every given secret, raw or URL/percent-encoded, is replaced by
// "[REDACTED]". Empty secrets are ignored.
func Scrub(msg string, secrets ...string) string {
	msg = urlQueryRE.ReplaceAllString(msg, "$1")
	msg = secretParamRE.ReplaceAllString(msg, "${1}"+redacted)
	var variants []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		q := url.QueryEscape(s)
		pe := percentEncode(s)
		// Also encoded twice, as in a v1 string to sign that an error
		// answer may echo.
		variants = append(variants, s, q, url.PathEscape(s), strings.ReplaceAll(q, "+", "%20"),
			strings.ReplaceAll(strings.ReplaceAll(q, "+", "%20"), "*", "%2A"), pe, percentEncode(pe))
		if j := strconv.Quote(s); len(j) > 2 {
			variants = append(variants, j[1:len(j)-1])
		}
	}
	// Longest first, so a secret containing another is replaced whole.
	sort.Slice(variants, func(i, j int) bool { return len(variants[i]) > len(variants[j]) })
	for _, v := range variants {
		if v != "" && v != redacted {
			msg = strings.ReplaceAll(msg, v, redacted)
		}
	}
	return msg
}

// percentEncode is RFC 3986 percent-encoding as the v1 signature uses it:
// A-Z a-z 0-9 - _ . ~ kept, every other byte %XX (upper case).
func percentEncode(s string) string {
	const hexUpper = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexUpper[c>>4])
			b.WriteByte(hexUpper[c&15])
		}
	}
	return b.String()
}

// retryAfterHeader parses x-acs-retry-after. Its unit is UNVERIFIED for
// Live; newer Darabonba SDKs treat it as milliseconds, which is what we do.
// Non-positive or unparsable values mean "no hint".
func retryAfterHeader(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Millisecond
}
