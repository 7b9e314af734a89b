package live

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/reconcile/reconcile/internal/livesim"
)

// fakeProvider is a credentials-go provider standing in for STS, ECS
// metadata or OIDC: it hands out the test STS credential, and fails the next
// failNext calls the way a refresh does, with an error text that carries the
// token and a URL query. calls is a plain int on purpose: credentials-go
// providers are not safe for concurrent use, so the race detector checks
// that every call is serialized.
type fakeProvider struct {
	failNext atomic.Int32
	calls    int
	// block, when set, is received from (after entered is signaled) before
	// the call fails or succeeds.
	block   chan struct{}
	entered chan struct{}
}

var _ providers.CredentialsProvider = (*fakeProvider)(nil)

func (p *fakeProvider) GetCredentials() (*providers.Credentials, error) {
	p.calls++
	if p.entered != nil {
		p.entered <- struct{}{}
	}
	if p.block != nil {
		<-p.block
	}
	if p.failNext.Load() > 0 {
		p.failNext.Add(-1)
		return nil, fmt.Errorf(`refresh sts token err: Post "https://sts.aliyuncs.com/?SecurityToken=%s": connection reset, old token %s`,
			testToken, testToken)
	}
	return &providers.Credentials{AccessKeyId: testAKID, AccessKeySecret: testAKSecret, SecurityToken: testToken,
		ProviderName: p.GetProviderName()}, nil
}

func (p *fakeProvider) GetProviderName() string { return "fake_sts" }

func fakeChain(t *testing.T, p *fakeProvider) *chainCredentials {
	t.Helper()
	cc, err := newChain(func() (credentials.Credential, error) {
		return credentials.FromCredentialsProvider("sts", p), nil
	})
	if err != nil {
		t.Fatalf("newChain: %v", err)
	}
	return cc
}

// A provider that delivered and then fails to refresh gives a
// *CredentialsError naming it (ClassCredentialsUnavailable, not "refused by
// the API"), sends nothing, leaks no secret, and the next call after the
// provider recovers succeeds.
func TestProviderRefreshFailureIsTransient(t *testing.T) {
	t.Parallel()
	p := &fakeProvider{}
	so := livesim.Options{AccessKeyID: testAKID, AccessKeySecret: testAKSecret, SecurityToken: testToken}
	c, sim := simClient(t, so, func(o *Options) { o.Credentials = fakeChain(t, p) })
	ctx := context.Background()
	r := testRequest()

	p.failNext.Store(2)
	for i := range 2 {
		_, err := c.Add(ctx, r)
		var cre *CredentialsError
		if !errors.As(err, &cre) || cre.Provider != "fake_sts" {
			t.Fatalf("call %d: err = %v, want a *CredentialsError from fake_sts", i, err)
		}
		if Classify(err) != ClassCredentialsUnavailable || errors.Is(err, ErrNoCredentials) || ErrorCode(err) != "CredentialsUnavailable" {
			t.Fatalf("call %d: class %v, code %q, ErrNoCredentials %v", i, Classify(err), ErrorCode(err), errors.Is(err, ErrNoCredentials))
		}
		msg := err.Error()
		for _, want := range []string{OpAdd, "fake_sts", "no request sent", "refresh sts token err", "connection reset"} {
			if !strings.Contains(msg, want) {
				t.Errorf("call %d: %q does not say %q", i, msg, want)
			}
		}
		for _, secret := range []string{testToken, testAKSecret, testAuthKey, "SecurityToken=STS"} {
			if strings.Contains(msg, secret) {
				t.Errorf("call %d: %q holds the secret %q", i, msg, secret)
			}
		}
	}
	if n := len(sim.Log()); n != 0 {
		t.Fatalf("the simulator got %d requests while the provider failed, want 0", n)
	}

	if _, err := c.Add(ctx, r); err != nil {
		t.Fatalf("after the provider recovered: %v", err)
	}
	if got, ok := sim.Config(r.Domain); !ok || got.NotifyURL != r.NotifyURL {
		t.Fatalf("stored %+v %v", got, ok)
	}
}

// A provider that never delivered is "no credentials configured"
// (ErrNoCredentials, ClassCredentials), not a refresh failure, and the chain
// object is built anew for every try.
func TestProviderFailingFromTheStartIsNoCredentials(t *testing.T) {
	t.Parallel()
	p := &fakeProvider{}
	p.failNext.Store(1)
	builds := 0
	_, err := newChain(func() (credentials.Credential, error) {
		builds++
		return credentials.FromCredentialsProvider("sts", p), nil
	})
	var cre *CredentialsError
	if !errors.Is(err, ErrNoCredentials) || errors.As(err, &cre) || Classify(err) != ClassCredentials {
		t.Fatalf("err = %v (class %v), want ErrNoCredentials", err, Classify(err))
	}
	// No credential was delivered yet, so only the token in the URL's query
	// is known to be secret.
	if !strings.Contains(err.Error(), "ALIBABA_CLOUD_ACCESS_KEY_ID") || strings.Contains(err.Error(), "SecurityToken=STS") {
		t.Errorf("err = %q: want the help text and no token from the URL", err)
	}

	// Through New: a chain that delivered once, then failing, still builds
	// no client with a misleading "no credentials".
	cc := fakeChain(t, p)
	p.failNext.Store(1)
	_, err = New(context.Background(), Options{Endpoint: "http://127.0.0.1:1", Credentials: cc})
	if !errors.As(err, &cre) || errors.Is(err, ErrNoCredentials) {
		t.Errorf("New with a failing refresh: %v, want the *CredentialsError", err)
	}
	if builds != 1 {
		t.Errorf("chain built %d times, want 1", builds)
	}
}

// Once a provider delivered, a failure keeps the chain (the default chain
// sticks to the provider that delivered, which is the one to retry); it is
// not rebuilt, which could pick up another identity.
func TestChainKeptAfterRefreshFailure(t *testing.T) {
	t.Parallel()
	p := &fakeProvider{}
	builds := 0
	cc, err := newChain(func() (credentials.Credential, error) {
		builds++
		return credentials.FromCredentialsProvider("sts", p), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.failNext.Store(1)
	if _, err := cc.Get(context.Background()); err == nil {
		t.Fatal("want a failure")
	}
	if c, err := cc.Get(context.Background()); err != nil || c.AccessKeyID != testAKID {
		t.Fatalf("after recovery: %+v %v", c, err)
	}
	if builds != 1 {
		t.Errorf("chain built %d times, want 1", builds)
	}
}

// Callers that waited while a provider call ran take its result: one failing
// refresh is one provider call, however many callers queued behind it.
func TestWaitingCallersShareTheRefresh(t *testing.T) {
	t.Parallel()
	p := &fakeProvider{}
	cc := fakeChain(t, p)
	p.entered = make(chan struct{}, 1)
	p.block = make(chan struct{})
	p.failNext.Store(1)
	waiting := make(chan struct{}, 2)
	cc.waiting = func() { waiting <- struct{}{} }

	errs := make(chan error, 2)
	go func() { _, err := cc.Get(context.Background()); errs <- err }()
	<-waiting
	<-p.entered // the first caller is inside the provider
	go func() { _, err := cc.Get(context.Background()); errs <- err }()
	<-waiting // the second caller noted the count and waits for the lock
	close(p.block)
	for range 2 {
		var cre *CredentialsError
		if err := <-errs; !errors.As(err, &cre) {
			t.Errorf("err = %v, want the shared *CredentialsError", err)
		}
	}
	cc.waiting = nil
	p.entered, p.block = nil, nil
	if p.calls != 2 { // newChain's, then the shared one
		t.Errorf("provider called %d times, want 2", p.calls)
	}
	if c, err := cc.Get(context.Background()); err != nil || c.AccessKeyID != testAKID {
		t.Errorf("a later call: %+v %v", c, err)
	}
}

// Concurrent calls through one Client never call the provider at the same
// time (the race detector watches fakeProvider.calls).
func TestProviderCallsSerialized(t *testing.T) {
	t.Parallel()
	p := &fakeProvider{}
	so := livesim.Options{AccessKeyID: testAKID, AccessKeySecret: testAKSecret, SecurityToken: testToken}
	c, _ := simClient(t, so, func(o *Options) { o.Credentials = fakeChain(t, p); o.MaxConns = 8 })
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				r := testRequest()
				r.Domain = fmt.Sprintf("d%d-%d.example.com", w, i)
				if _, err := c.Add(context.Background(), r); err != nil {
					t.Errorf("Add: %v", err)
				}
			}
		}()
	}
	wg.Wait()
}
