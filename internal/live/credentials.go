package live

import (
	"context"
	"errors"
	"fmt"

	"github.com/aliyun/credentials-go/credentials"

	"github.com/reconcile/reconcile/internal/model"
)

// ErrNoCredentials is wrapped by every error that means "no usable
// credentials": the default chain found none, a provider failed to refresh,
// or a static credential is incomplete. Classify maps it to ClassCredentials.
var ErrNoCredentials = errors.New("no Alibaba Cloud credentials found")

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
// concurrent use.
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

// chainCredentials wraps credentials-go's default chain.
//
// credentials-go providers refresh (STS, ECS RAM role, OIDC) without locking,
// so every GetCredential runs under lock. The lock is a 1-slot channel and
// the provider call runs in its own goroutine, so a caller whose ctx ends
// stops waiting (the provider call itself is bounded by credentials-go's own
// HTTP timeouts). After a failure the chain object is rebuilt, because the
// default chain otherwise sticks to the last provider it tried.
type chainCredentials struct {
	lock chan struct{}
	cred credentials.Credential // guarded by lock
	make func() (credentials.Credential, error)
}

// DefaultChain returns the standard Alibaba Cloud credential chain (env
// variables → RRSA/OIDC → CLI profile → credentials file → ECS RAM role →
// credentials URI). It resolves once, eagerly, so a missing credential is
// reported here as an error wrapping ErrNoCredentials with a message that
// lists the variables to set.
func DefaultChain() (Credentials, error) {
	return newChain(func() (credentials.Credential, error) { return credentials.NewCredential(nil) })
}

func newChain(mk func() (credentials.Credential, error)) (*chainCredentials, error) {
	c := &chainCredentials{lock: make(chan struct{}, 1), make: mk}
	cred, err := mk()
	if err != nil {
		return nil, fmt.Errorf("%w: %s; %s", ErrNoCredentials, Scrub(err.Error()), credentialsHelp)
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
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return Credential{}, ctx.Err()
	}
	done := make(chan credResult, 1)
	go func() {
		defer func() { <-c.lock }()
		done <- c.fetchLocked()
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-ctx.Done():
		return Credential{}, ctx.Err()
	}
}

func (c *chainCredentials) fetchLocked() (r credResult) {
	defer func() {
		// A provider panicking must not take the job down with a message
		// that might carry a secret.
		if p := recover(); p != nil {
			r = credResult{err: fmt.Errorf("%w: credentials provider panicked; %s", ErrNoCredentials, credentialsHelp)}
		}
	}()
	if c.cred == nil {
		cred, err := c.make()
		if err != nil {
			return credResult{err: fmt.Errorf("%w: %s; %s", ErrNoCredentials, Scrub(err.Error()), credentialsHelp)}
		}
		c.cred = cred
	}
	m, err := c.cred.GetCredential()
	if err != nil || m == nil || m.AccessKeyId == nil || *m.AccessKeyId == "" || m.AccessKeySecret == nil || *m.AccessKeySecret == "" {
		c.cred = nil // rebuild next time: the chain sticks to the last provider tried
		msg := "the provider returned an empty AccessKey"
		if err != nil {
			msg = Scrub(err.Error())
		}
		return credResult{err: fmt.Errorf("%w: %s; %s", ErrNoCredentials, msg, credentialsHelp)}
	}
	out := Credential{AccessKeyID: *m.AccessKeyId, AccessKeySecret: model.Secret(*m.AccessKeySecret)}
	if m.SecurityToken != nil {
		out.SecurityToken = model.Secret(*m.SecurityToken)
	}
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
