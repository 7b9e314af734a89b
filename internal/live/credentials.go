package live

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/aliyun/credentials-go/credentials"

	"github.com/reconcile/reconcile/internal/model"
)

// ErrNoCredentials is wrapped by every error that means "no usable
// credentials are configured": the default chain found none when it was
// built (DefaultChain, New), a static credential is incomplete, an
// account's credentials spec cannot work (AccountCredentials), or STS
// refused to let the job assume an account's role
// (*CredentialsRefusedError). It is a configuration error: retrying
// cannot help; Classify maps it to ClassCredentials. A provider that
// delivered credentials before and then fails to refresh, or an STS that
// cannot be reached, is not this: that is a *CredentialsError.
var ErrNoCredentials = errors.New("no Alibaba Cloud credentials found")

// CredentialsError reports that getting credentials failed at call time: a
// provider that had delivered credentials before (STS AssumeRole, ECS RAM
// role metadata, RRSA/OIDC token exchange, credentials URI, ...) failed to
// refresh them. No request was sent, so it proves nothing about the cloud
// or the row. It never wraps ErrNoCredentials, and Classify maps it to
// ClassCredentialsUnavailable: transient, retry after a backoff. Its text
// names the provider and carries the provider's error, scrubbed of URL
// queries, secret-bearing parameters and the last credential's secrets.
type CredentialsError struct {
	// Provider names the provider that failed: credentials-go's provider
	// name (e.g. "default/ecs_ram_role", "default/oidc_role_arn"), or the Go
	// type of a custom Credentials.
	Provider string
	// Err is the provider's error, reduced to its scrubbed text (the
	// original may hold URLs with tokens, so it is not kept).
	Err error
}

// Error implements error.
func (e *CredentialsError) Error() string {
	return "credentials provider " + e.Provider + " failed, no request sent: " + e.Err.Error()
}

// Unwrap returns the scrubbed provider error.
func (e *CredentialsError) Unwrap() error { return e.Err }

// credentialsHelp lists where the default chain looks.
const credentialsHelp = "set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET " +
	"(plus ALIBABA_CLOUD_SECURITY_TOKEN for STS), or the RRSA/OIDC variables ALIBABA_CLOUD_ROLE_ARN, " +
	"ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE, or configure the aliyun CLI / " +
	"~/.alibabacloud/credentials (ALIBABA_CLOUD_PROFILE selects a profile), or run on ECS with a RAM role " +
	"(ALIBABA_CLOUD_ECS_METADATA names it), or set ALIBABA_CLOUD_CREDENTIALS_URI"

// Credential is one consistent set of credentials. Secrets are model.Secret so
// they never print.
type Credential struct {
	AccessKeyID     string
	AccessKeySecret model.Secret
	SecurityToken   model.Secret // empty unless STS
}

// Credentials hands out the current credential. Client calls Get once per
// API call, so implementations must be cheap (cache) and safe for
// concurrent use. Get returns an error wrapping ErrNoCredentials when no
// credentials are configured (a configuration error) and a
// *CredentialsError when a refresh failed. Any other error is reported by
// New wrapping ErrNoCredentials, and by a call as a *CredentialsError naming
// the implementation's Go type.
type Credentials interface {
	Get(ctx context.Context) (Credential, error)
}

// SecretsOf returns the credential's secret values (AccessKey secret, STS
// token), non-empty ones only, for registering with a log redactor.
func SecretsOf(c Credential) []string {
	var out []string
	if s := c.AccessKeySecret.Reveal(); s != "" {
		out = append(out, s)
	}
	if s := c.SecurityToken.Reveal(); s != "" {
		out = append(out, s)
	}
	return out
}

// StaticCredentials returns a fixed AccessKey (token "" for a plain
// AccessKey, non-empty for STS).
func StaticCredentials(id, secret, token string) Credentials {
	return staticCredentials{Credential{AccessKeyID: id, AccessKeySecret: model.Secret(secret), SecurityToken: model.Secret(token)}}
}

type staticCredentials struct{ c Credential }

func (s staticCredentials) Get(ctx context.Context) (Credential, error) {
	if s.c.AccessKeyID == "" || s.c.AccessKeySecret.IsZero() {
		return Credential{}, fmt.Errorf("%w: static credentials need an AccessKey ID and secret", ErrNoCredentials)
	}
	return s.c, nil
}

// chainCredentials wraps a credentials-go Credential (the default chain).
//
// credentials-go providers refresh (STS, ECS RAM role, OIDC) without locking,
// so every GetCredential runs under lock. The lock is a 1-slot channel and
// the provider call runs in its own goroutine, so a caller whose ctx ends
// stops waiting (the provider call itself is bounded by credentials-go's own
// HTTP timeouts). Callers that waited while a provider call ran take that
// call's result instead of calling again, so a provider outage costs one
// provider call per wave of waiting callers, not one per caller.
//
// Until the provider has delivered once, a failure means "nothing usable is
// configured" (ErrNoCredentials) and the chain object is rebuilt, because
// the default chain otherwise sticks to the last provider it tried. Once a
// provider has delivered, a failure is a *CredentialsError naming it, and
// the chain is kept: the default chain then sticks to the provider that
// delivered, which is the one to retry (a rebuild could silently pick up
// another identity, such as the ECS node's role under a pod's RRSA role).
type chainCredentials struct {
	lock chan struct{}
	make func() (credentials.Credential, error)
	// help ends the ErrNoCredentials errors: where to configure what is
	// missing (credentialsHelp for the default chain).
	help string
	// fail, when set, replaces the policy above: it turns a provider's
	// failure into the error Get returns, given whether a provider
	// delivered before and the secrets to scrub; the chain is kept. Set
	// by AccountCredentials for an assumed role.
	fail func(err error, delivered bool, secrets []string) error

	// Guarded by lock.
	cred     credentials.Credential
	provider string   // who delivered last; "" until a provider delivered
	secrets  []string // the last delivered secrets, scrubbed from errors
	last     credResult

	// done counts finished provider calls; it is written under lock and
	// read before taking it.
	done atomic.Uint64
	// waiting, when set (tests), runs after Get noted done and before it
	// waits for the lock.
	waiting func()
}

// DefaultChain returns the standard Alibaba Cloud credential chain (env
// variables → RRSA/OIDC → CLI profile → credentials file → ECS RAM role →
// credentials URI). It resolves once, eagerly, so a missing credential is
// reported here as an error wrapping ErrNoCredentials with a message that
// lists the variables to set. Later failures to refresh (the provider found
// here failing, e.g. STS or ECS metadata unreachable) are returned by Get
// as a *CredentialsError, not ErrNoCredentials.
func DefaultChain() (Credentials, error) {
	return newChain(func() (credentials.Credential, error) { return credentials.NewCredential(nil) })
}

func newChain(mk func() (credentials.Credential, error)) (*chainCredentials, error) {
	return newChainHelp(mk, credentialsHelp)
}

// newChainHelp is newChain with another help text for its
// ErrNoCredentials errors.
func newChainHelp(mk func() (credentials.Credential, error), help string) (*chainCredentials, error) {
	c := &chainCredentials{lock: make(chan struct{}, 1), make: mk, help: help}
	cred, err := mk()
	if err != nil {
		return nil, fmt.Errorf("%w: %s; %s", ErrNoCredentials, Scrub(err.Error()), help)
	}
	c.cred = cred
	if _, err := c.Get(context.Background()); err != nil {
		return nil, err
	}
	return c, nil
}

type credResult struct {
	c   Credential
	err error
}

// Get implements Credentials.
func (c *chainCredentials) Get(ctx context.Context) (Credential, error) {
	seen := c.done.Load()
	if c.waiting != nil {
		c.waiting()
	}
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return Credential{}, ctx.Err()
	}
	done := make(chan credResult, 1)
	go func() {
		defer func() { <-c.lock }()
		if c.done.Load() != seen {
			// A provider call finished while this caller waited: its
			// result is as fresh as a call of our own.
			done <- c.last
			return
		}
		r := c.fetchLocked()
		c.last = r
		c.done.Add(1)
		done <- r
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-ctx.Done():
		return Credential{}, ctx.Err()
	}
}

// failLocked builds the error for a failed fetch (err is the provider's
// error, its text not yet scrubbed) and, until a provider delivered,
// drops the chain (unless c.fail decides).
func (c *chainCredentials) failLocked(err error) credResult {
	if c.fail != nil {
		return credResult{err: c.fail(err, c.provider != "", c.secrets)}
	}
	what := Scrub(err.Error(), c.secrets...)
	if c.provider == "" {
		c.cred = nil // rebuild next time: the chain sticks to the last provider tried
		return credResult{err: fmt.Errorf("%w: %s; %s", ErrNoCredentials, what, c.help)}
	}
	return credResult{err: &CredentialsError{Provider: c.provider, Err: errors.New(what)}}
}

var (
	errProviderPanicked = errors.New("the provider panicked")
	errEmptyAccessKey   = errors.New("the provider returned an empty AccessKey")
)

func (c *chainCredentials) fetchLocked() (r credResult) {
	defer func() {
		// A provider panicking must not take the job down with a message
		// that might carry a secret.
		if p := recover(); p != nil {
			r = c.failLocked(errProviderPanicked)
		}
	}()
	if c.cred == nil {
		cred, err := c.make()
		if err != nil {
			return c.failLocked(err)
		}
		c.cred = cred
	}
	m, err := c.cred.GetCredential()
	if err != nil {
		return c.failLocked(err)
	}
	if m == nil || m.AccessKeyId == nil || *m.AccessKeyId == "" || m.AccessKeySecret == nil || *m.AccessKeySecret == "" {
		return c.failLocked(errEmptyAccessKey)
	}
	out := Credential{AccessKeyID: *m.AccessKeyId, AccessKeySecret: model.Secret(*m.AccessKeySecret)}
	if m.SecurityToken != nil {
		out.SecurityToken = model.Secret(*m.SecurityToken)
	}
	c.provider = "unnamed"
	if m.ProviderName != nil && *m.ProviderName != "" {
		c.provider = *m.ProviderName
	} else if t := c.cred.GetType(); t != nil && *t != "" {
		c.provider = *t
	}
	c.secrets = SecretsOf(out)
	return credResult{c: out}
}

// callCredential adapts one Credential to credentials-go's Credential
// interface, which is what the SDK's openapi.Client signs with. Each pooled
// SDK client owns one callCredential; the Client sets it right before a call
// and clears it after, while it holds that pooled client exclusively. So every
// request is signed with one consistent (id, secret, token) snapshot taken
// from Credentials.Get at the start of that call, and rotating STS
// credentials are picked up on the next call.
type callCredential struct{ c Credential }

var _ credentials.Credential = (*callCredential)(nil)

func (cc *callCredential) GetAccessKeyId() (*string, error) {
	s := cc.c.AccessKeyID
	return &s, nil
}

func (cc *callCredential) GetAccessKeySecret() (*string, error) {
	s := cc.c.AccessKeySecret.Reveal()
	return &s, nil
}

func (cc *callCredential) GetSecurityToken() (*string, error) {
	s := cc.c.SecurityToken.Reveal()
	return &s, nil
}

func (cc *callCredential) GetBearerToken() *string { s := ""; return &s }

func (cc *callCredential) GetType() *string {
	t := "access_key"
	if !cc.c.SecurityToken.IsZero() {
		t = "sts"
	}
	return &t
}

func (cc *callCredential) GetCredential() (*credentials.CredentialModel, error) {
	if cc.c.AccessKeyID == "" {
		return nil, ErrNoCredentials
	}
	id, sec, tok := cc.c.AccessKeyID, cc.c.AccessKeySecret.Reveal(), cc.c.SecurityToken.Reveal()
	return &credentials.CredentialModel{
		AccessKeyId:     &id,
		AccessKeySecret: &sec,
		SecurityToken:   &tok,
		Type:            cc.GetType(),
	}, nil
}

func secret(s string) model.Secret { return model.Secret(s) }
