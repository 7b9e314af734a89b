package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/reconcile/reconcile/internal/model"
)

// Credentials methods of a named account (reconcile_accounts.credentials).
const (
	// MethodRAMRoleARN assumes the account's RAM role (STS AssumeRole)
	// with the job's own identity.
	MethodRAMRoleARN = "ram_role_arn"
	// MethodProfile uses a named profile of the shared credentials file
	// (ALIBABA_CLOUD_CREDENTIALS_FILE, else ~/.alibabacloud/credentials).
	MethodProfile = "profile"
	// MethodDefault uses the job's own identity.
	MethodDefault = "default"
)

// AccountCredentialsSpec says how to reach one account: a reconcile_accounts
// row (plus the run's STS settings). It holds no secret.
type AccountCredentialsSpec struct {
	// Account is the account's name ("" is the default account); errors
	// name it (model.AccountLabel).
	Account string
	// Method is MethodRAMRoleARN, MethodProfile or MethodDefault.
	Method string
	// RoleARN (required), ExternalID and SessionName (default
	// "reconcile-<account>", cut to 64 characters) are for
	// MethodRAMRoleARN only.
	RoleARN, ExternalID, SessionName string
	// Profile is the profile name, for MethodProfile only (required).
	Profile string
	// STSEndpoint is where MethodRAMRoleARN calls AssumeRole: "" is
	// credentials-go's default (sts.aliyuncs.com, or
	// sts[-vpc].<ALIBABA_CLOUD_STS_REGION>.aliyuncs.com); else a host[:port]
	// or an https:// URL without a path. credentials-go speaks HTTPS only
	// to STS (it builds "https://" + endpoint) and verifies the server
	// against the system roots (SSL_CERT_FILE / SSL_CERT_DIR), so an
	// http:// URL is refused.
	STSEndpoint string
	// Duration is the assumed role's session length, whole seconds from 15
	// minutes to 12 hours (the role's MaxSessionDuration caps it, one hour
	// unless raised); 0 is one hour. credentials-go renews the session 3
	// minutes before it ends.
	Duration time.Duration
}

// CredentialsRefusedError reports that STS answered AssumeRole with a
// refusal: the job's identity may not assume the role (NoPermission: the
// trust policy does not name it, or the ExternalId does not match),
// the role does not exist (EntityNotExist.Role), a parameter is wrong
// (InvalidParameter.*, Missing*), or STS refused the job's own AccessKey
// (InvalidAccessKeyId.*, SignatureDoesNotMatch, ...). Retrying cannot
// help: it wraps ErrNoCredentials, so Classify maps it to ClassCredentials
// (and the run's exit code to configuration), and ErrorCode returns STS's
// Code. Its text holds the role ARN, STS's code, RequestId and message,
// never a secret nor the ExternalId.
type CredentialsRefusedError struct {
	Account   string // model.AccountLabel of the account
	RoleARN   string
	Code      string // STS's error code
	RequestID string
	Message   string // STS's message, scrubbed, cut before any string to sign
}

// Error implements error.
func (e *CredentialsRefusedError) Error() string {
	var b strings.Builder
	b.WriteString("STS refused to assume role ")
	b.WriteString(e.RoleARN)
	b.WriteString(": ")
	b.WriteString(e.Code)
	if e.RequestID != "" {
		b.WriteString(" (RequestId ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns ErrNoCredentials: a refusal is a configuration error.
func (e *CredentialsRefusedError) Unwrap() error { return ErrNoCredentials }

// accountSpecError is a spec that cannot work; it wraps ErrNoCredentials.
type accountSpecError struct{ msg string }

func (e *accountSpecError) Error() string { return e.msg }
func (e *accountSpecError) Unwrap() error { return ErrNoCredentials }

var (
	roleARNRE     = regexp.MustCompile(`^acs:ram::[0-9]+:role/\S+$`)
	sessionNameRE = regexp.MustCompile(`^[A-Za-z0-9._@-]{2,64}$`)
	externalIDRE  = regexp.MustCompile(`^[A-Za-z0-9_+=,.@:/-]+$`)
)

// AccountCredentials returns the credentials of the account spec
// describes. source is the job's own identity (DefaultChain's, or a static
// one in tests): what MethodDefault returns as it is, and what
// MethodRAMRoleARN signs AssumeRole with.
//
//   - MethodRAMRoleARN: credentials-go's RAM role ARN provider with source
//     as its previous provider. Nothing is sent until the first Get (which
//     New makes). Get then returns the assumed role's STS credential,
//     renewed by credentials-go before it expires; a refusal by STS is a
//     *CredentialsRefusedError (ClassCredentials); STS unreachable, a 5xx,
//     throttling or an unreadable answer is a *CredentialsError
//     (ClassCredentialsUnavailable); source failing returns source's error
//     (so it keeps its class).
//   - MethodProfile: credentials-go's profile provider for spec.Profile,
//     read now: a missing file or profile, or a profile it cannot use, is
//     an error here. A profile that itself refreshes (ram_role_arn,
//     ecs_ram_role) and fails later gives a *CredentialsError.
//   - MethodDefault: source.
//
// A spec that cannot work (unknown method, missing or malformed role ARN,
// a setting of another method, a bad duration or STS endpoint, no source)
// is an error wrapping ErrNoCredentials that names the account and the
// field. Every error of the returned Credentials starts `account "<name>":`.
// No error holds a secret: source's and the issued credential's secrets
// and tokens are scrubbed, STS's string to sign is cut, and the
// ExternalId is never quoted.
//
// The adapter from source to credentials-go hands credentials-go the
// plain secret and token (it must sign AssumeRole with them); they travel
// in the request's query (SecurityToken) and body only, and every error
// text credentials-go builds is scrubbed here before it leaves.
func AccountCredentials(spec AccountCredentialsSpec, source Credentials) (Credentials, error) {
	label := model.AccountLabel(spec.Account)
	bad := func(field, format string, args ...any) error {
		return &accountSpecError{fmt.Sprintf("account %q: %s: %s", label, field, fmt.Sprintf(format, args...))}
	}
	only := func(method string) error {
		switch {
		case method != MethodRAMRoleARN && spec.RoleARN != "":
			return bad("role_arn", "set, but only credentials ram_role_arn assumes a role")
		case method != MethodRAMRoleARN && spec.ExternalID != "":
			return bad("external_id", "set, but only credentials ram_role_arn assumes a role")
		case method != MethodRAMRoleARN && spec.SessionName != "":
			return bad("session_name", "set, but only credentials ram_role_arn assumes a role")
		case method != MethodProfile && spec.Profile != "":
			return bad("profile", "set, but only credentials profile reads a profile")
		}
		return nil
	}
	switch spec.Method {
	case MethodDefault:
		if err := only(MethodDefault); err != nil {
			return nil, err
		}
		if source == nil {
			return nil, bad("credentials", "default needs the job's own credentials, and none were given")
		}
		return source, nil
	case MethodProfile:
		if err := only(MethodProfile); err != nil {
			return nil, err
		}
		return profileCredentials(label, spec.Profile, bad)
	case MethodRAMRoleARN:
		if err := only(MethodRAMRoleARN); err != nil {
			return nil, err
		}
		return roleCredentials(label, spec, source, bad)
	case "":
		return nil, bad("credentials", "no method; want ram_role_arn, profile or default")
	default:
		m := spec.Method
		if len(m) > 40 || !utf8.ValidString(m) {
			m = m[:min(len(m), 40)] + "…"
		}
		return nil, bad("credentials", "unknown method %q; want ram_role_arn, profile or default", m)
	}
}

// accountCreds prefixes every error of inner with the account.
type accountCreds struct {
	label string
	inner Credentials
}

func (a *accountCreds) Get(ctx context.Context) (Credential, error) {
	c, err := a.inner.Get(ctx)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return Credential{}, err
		}
		return Credential{}, fmt.Errorf("account %q: %w", a.label, err)
	}
	return c, nil
}

// ---- profile ----

func profileCredentials(label, profile string, bad func(string, string, ...any) error) (Credentials, error) {
	if strings.TrimSpace(profile) == "" {
		return nil, bad("profile", "credentials profile needs a profile name")
	}
	help := "profile " + strconv.Quote(profile) + " must be a section of the shared credentials file " +
		"(ALIBABA_CLOUD_CREDENTIALS_FILE, else ~/.alibabacloud/credentials) with type access_key, ram_role_arn or ecs_ram_role"
	c, err := newChainHelp(func() (credentials.Credential, error) {
		p, err := providers.NewProfileCredentialsProviderBuilder().WithProfileName(profile).Build()
		if err != nil {
			return nil, err
		}
		return credentials.FromCredentialsProvider("profile", iniSafe{p}), nil
	}, help)
	if err != nil {
		return nil, fmt.Errorf("account %q: profile: %w", label, err)
	}
	return &accountCreds{label: label, inner: c}, nil
}

// iniLineRE matches the errors of gopkg.in/ini.v1 that quote a line of
// the file (which may hold a secret): the line is dropped.
var iniLineRE = regexp.MustCompile(`(?s)(key-value delimiter not found|empty key name|missing closing key quote|unclosed section).*`)

// iniSafe drops the file's lines from the profile provider's errors.
type iniSafe struct{ p providers.CredentialsProvider }

func (s iniSafe) GetCredentials() (*providers.Credentials, error) {
	c, err := s.p.GetCredentials()
	if err != nil {
		return nil, errors.New(iniLineRE.ReplaceAllString(err.Error(), "$1 (the line is not shown)"))
	}
	return c, nil
}

func (s iniSafe) GetProviderName() string { return s.p.GetProviderName() }

// ---- ram_role_arn ----

// stsRefreshFailed is how credentials-go's RAM role ARN provider starts
// the error of a non-200 answer; STS's JSON answer follows.
const stsRefreshFailed = "refresh session token failed: "

// sourceTimeout bounds one Get of the source credentials made for
// AssumeRole (credentials-go's provider interface has no context).
const sourceTimeout = time.Minute

func roleCredentials(label string, spec AccountCredentialsSpec, source Credentials, bad func(string, string, ...any) error) (Credentials, error) {
	switch {
	case spec.RoleARN == "":
		return nil, bad("role_arn", "credentials ram_role_arn needs the RAM role to assume (acs:ram::<account id>:role/<name>)")
	case !roleARNRE.MatchString(spec.RoleARN):
		return nil, bad("role_arn", "%q is not acs:ram::<account id>:role/<name>", spec.RoleARN)
	case spec.ExternalID != "" && (len(spec.ExternalID) < 2 || len(spec.ExternalID) > 1224 || !externalIDRE.MatchString(spec.ExternalID)):
		return nil, bad("external_id", "must be 2 to 1224 letters, digits or _ + = , . @ : / -")
	case source == nil:
		return nil, bad("credentials", "ram_role_arn assumes the role with the job's own credentials, and none were given")
	}
	session := spec.SessionName
	if session == "" {
		session = "reconcile-" + label
		if len(session) > 64 {
			session = session[:64]
		}
	}
	if !sessionNameRE.MatchString(session) {
		return nil, bad("session_name", "%q must be 2 to 64 letters, digits or . @ - _", session)
	}
	secs := 0
	if d := spec.Duration; d != 0 {
		if d%time.Second != 0 || d < 15*time.Minute || d > 12*time.Hour {
			return nil, bad("duration", "%v must be whole seconds from 15m to 12h", d)
		}
		secs = int(d / time.Second)
	}
	endpoint, err := stsEndpoint(spec.STSEndpoint)
	if err != nil {
		return nil, bad("sts_endpoint", "%v", err)
	}

	src := &sourceProvider{src: source}
	p, err := providers.NewRAMRoleARNCredentialsProviderBuilder().
		WithCredentialsProvider(src).
		WithRoleArn(spec.RoleARN).
		WithExternalId(spec.ExternalID).
		WithRoleSessionName(session).
		WithStsEndpoint(endpoint).
		WithDurationSeconds(secs).
		Build()
	if err != nil {
		return nil, bad("credentials", "building the RAM role ARN provider: %s", Scrub(err.Error()))
	}
	rf := &roleFailure{arn: spec.RoleARN, label: label, src: src}
	c := &chainCredentials{
		lock: make(chan struct{}, 1),
		make: func() (credentials.Credential, error) {
			return credentials.FromCredentialsProvider(MethodRAMRoleARN, p), nil
		},
		fail: rf.classify,
	}
	return &accountCreds{label: label, inner: c}, nil
}

// stsEndpoint turns STSEndpoint into what credentials-go wants: a
// host[:port] it prefixes with https://.
func stsEndpoint(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	scheme, hostport, err := ParseEndpoint(s)
	if err != nil {
		return "", err
	}
	if scheme != "https" {
		return "", fmt.Errorf("%q: credentials-go calls STS over HTTPS only; give a host[:port] or an https:// URL", s)
	}
	return hostport, nil
}

// sourceProvider adapts the job's own Credentials to credentials-go's
// provider interface, as the RAM role ARN provider's previous provider.
// It is called by that provider only, under the chain's lock, so its
// fields need no lock of their own.
type sourceProvider struct {
	src     Credentials
	secrets []string // of the source's last credential, scrubbed from errors
}

var _ providers.CredentialsProvider = (*sourceProvider)(nil)

// sourceError carries the source's own error through credentials-go
// (which returns it unchanged).
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

func (p *sourceProvider) GetCredentials() (*providers.Credentials, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	c, err := p.src.Get(ctx)
	if err != nil {
		return nil, &sourceError{err}
	}
	p.secrets = SecretsOf(c)
	return &providers.Credentials{
		AccessKeyId:     c.AccessKeyID,
		AccessKeySecret: c.AccessKeySecret.Reveal(),
		SecurityToken:   c.SecurityToken.Reveal(),
		ProviderName:    "reconcile",
	}, nil
}

func (p *sourceProvider) GetProviderName() string { return "reconcile" }

// roleFailure classifies the failures of an assumed role's provider.
type roleFailure struct {
	arn, label string
	src        *sourceProvider
}

// stsTransientCode reports whether an STS error code is worth retrying:
// the service failing or throttling, or a nonce collision.
func stsTransientCode(code string) bool {
	if strings.HasPrefix(code, "Throttling") {
		return true
	}
	for _, p := range []string{"InternalError", "ServiceUnavailable", "SignatureNonceUsed", "RequestTimeout"} {
		if code == p || strings.HasPrefix(code, p+".") {
			return true
		}
	}
	return false
}

// stringToSignRE finds where an STS message starts echoing its string to
// sign (which holds every parameter, the source's token included).
var stringToSignRE = regexp.MustCompile(`(?i)\s*(server\s+)?string\s*to\s*sign.*$`)

func (f *roleFailure) classify(err error, _ bool, secrets []string) error {
	secrets = append(append([]string(nil), secrets...), f.src.secrets...)
	provider := MethodRAMRoleARN + " " + f.arn
	var se *sourceError
	if errors.As(err, &se) {
		var cre *CredentialsError
		var ref *CredentialsRefusedError
		if errors.Is(se.err, ErrNoCredentials) || errors.As(se.err, &cre) || errors.As(se.err, &ref) {
			return fmt.Errorf("the job's own credentials, to assume %s: %w", f.arn, se.err)
		}
		return &CredentialsError{Provider: provider + " (the job's own credentials)", Err: errors.New(Scrub(se.err.Error(), secrets...))}
	}
	if body, ok := strings.CutPrefix(err.Error(), stsRefreshFailed); ok {
		var ans struct {
			RequestID string `json:"RequestId"`
			Code      string `json:"Code"`
			Message   string `json:"Message"`
		}
		if json.Unmarshal([]byte(body), &ans) == nil && ans.Code != "" {
			msg := Scrub(stringToSignRE.ReplaceAllString(ans.Message, ""), secrets...)
			if len(msg) > 300 {
				msg = msg[:300] + "…"
			}
			if stsTransientCode(ans.Code) {
				return &CredentialsError{Provider: provider, Err: fmt.Errorf("STS answered %s (RequestId %s): %s",
					Scrub(ans.Code, secrets...), Scrub(ans.RequestID, secrets...), msg)}
			}
			return &CredentialsRefusedError{Account: f.label, RoleARN: f.arn, Code: Scrub(ans.Code, secrets...),
				RequestID: Scrub(ans.RequestID, secrets...), Message: msg}
		}
		// Not STS's JSON: a proxy's or gateway's page, most likely a 5xx.
		body = stringToSignRE.ReplaceAllString(Scrub(body, secrets...), "")
		if len(body) > 200 {
			body = body[:200] + "…"
		}
		return &CredentialsError{Provider: provider, Err: fmt.Errorf("STS answered without an error code: %q", body)}
	}
	return &CredentialsError{Provider: provider, Err: errors.New(Scrub(err.Error(), secrets...))}
}
