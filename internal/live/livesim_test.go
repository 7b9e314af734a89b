package live

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/model"
)

func simClient(t *testing.T, so livesim.Options, mod func(*Options)) (*Client, *livesim.Server) {
	t.Helper()
	sim := livesim.New(so)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	c := newTestClient(t, srv.URL, func(o *Options) {
		o.Credentials = StaticCredentials(so.AccessKeyID, so.AccessKeySecret, so.SecurityToken)
		if mod != nil {
			mod(o)
		}
	})
	return c, sim
}

func TestSimRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, sig, token string }{
		{"v3", "", ""}, {"v2", "v2", ""}, {"v3-sts", "", testToken}, {"v2-sts", "v2", testToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, sim := simClient(t, livesim.Options{AccessKeyID: testAKID, AccessKeySecret: testAKSecret, SecurityToken: tc.token},
				func(o *Options) { o.SignatureAlgorithm = tc.sig })
			ctx := context.Background()
			const domain = "live.example.com"

			cfg, _, err := c.Describe(ctx, domain, "")
			if err != nil || cfg.Exists {
				t.Fatalf("Describe before Add: %+v %v", cfg, err)
			}
			r := Request{Domain: domain, NotifyURL: "https://cb.example.com/snap?x=1&y=a b", ReqAuth: true, AuthKey: model.Secret(testAuthKey)}
			ans, err := c.Add(ctx, r)
			if err != nil || ans.RequestID == "" || ans.HTTPStatus != 200 {
				t.Fatalf("Add: %+v %v", ans, err)
			}
			if got, ok := sim.Config(domain); !ok || got.NotifyURL != r.NotifyURL || !got.ReqAuth || got.AuthKey != testAuthKey {
				t.Fatalf("stored %v %v", got, ok)
			}
			_, err = c.Add(ctx, r)
			if Classify(err) != ClassDuplicate {
				t.Fatalf("second Add: %v (class %v)", err, Classify(err))
			}
			r.NotifyURL, r.ReqAuth, r.AuthKey = "https://cb2.example.com/", false, ""
			if _, err := c.Update(ctx, r); err != nil {
				t.Fatalf("Update: %v", err)
			}
			cfg, _, err = c.Describe(ctx, domain, "")
			if err != nil || !cfg.Exists || cfg.NotifyURL != r.NotifyURL || cfg.ReqAuth || cfg.AuthKey.Reveal() != testAuthKey || cfg.Domain != domain {
				t.Fatalf("Describe after Update: %+v %v", cfg, err)
			}
			if _, err := c.Delete(ctx, domain, ""); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := c.Update(ctx, r); Classify(err) != ClassNotFound {
				t.Fatalf("Update after Delete: %v", err)
			}
			if cfg, _, err := c.Describe(ctx, domain, ""); err != nil || cfg.Exists {
				t.Fatalf("Describe after Delete: %+v %v", cfg, err)
			}
			r.NotifyURL = "not a url"
			if _, err := c.Add(ctx, r); Classify(err) != ClassRowError {
				t.Fatalf("bad Add: %v", err)
			}
		})
	}
}

func TestSimCredentials(t *testing.T) {
	t.Parallel()
	so := livesim.Options{AccessKeyID: testAKID, AccessKeySecret: testAKSecret}
	tests := []struct {
		name  string
		creds Credentials
		sig   string
	}{
		{"wrong secret v3", StaticCredentials(testAKID, "wrong-secret", ""), ""},
		{"wrong secret v2", StaticCredentials(testAKID, "wrong-secret", ""), "v2"},
		{"unknown id", StaticCredentials("LTAIother", testAKSecret, ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := simClient(t, so, func(o *Options) { o.Credentials = tt.creds; o.SignatureAlgorithm = tt.sig })
			_, err := c.Add(context.Background(), testRequest())
			var ae *APIError
			if !errors.As(err, &ae) || Classify(err) != ClassCredentials {
				t.Fatalf("err = %v, class %v", err, Classify(err))
			}
		})
	}
	// STS token required but missing.
	c, _ := simClient(t, livesim.Options{AccessKeyID: testAKID, AccessKeySecret: testAKSecret, SecurityToken: testToken},
		func(o *Options) { o.Credentials = StaticCredentials(testAKID, testAKSecret, "") })
	if _, err := c.Add(context.Background(), testRequest()); Classify(err) != ClassCredentials {
		t.Errorf("missing token: %v", err)
	}
}

func TestSimThrottlingAndFaults(t *testing.T) {
	now := time.Now()
	so := livesim.Options{AccessKeyID: testAKID, AccessKeySecret: testAKSecret, Limit: 1, RetryAfterHeader: true,
		Now: func() time.Time { return now }}
	c, _ := simClient(t, so, nil)
	ctx := context.Background()
	r := testRequest()
	if _, err := c.Add(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Domain = "other.example.com"
	_, err := c.Add(ctx, r)
	var ae *APIError
	if !errors.As(err, &ae) || Classify(err) != ClassThrottled || ae.RetryAfter <= 0 {
		t.Fatalf("throttled: %#v", err)
	}

	so = livesim.Options{AccessKeyID: testAKID, AccessKeySecret: testAKSecret,
		ForceErrors: map[string]livesim.ForcedError{"ram.example.com": {Status: 403, Code: "Forbidden.RAM", Message: "no"}}}
	c, _ = simClient(t, so, nil)
	r.Domain = "ram.example.com"
	_, err = c.Add(ctx, r)
	if !errors.As(err, &ae) || ae.Code != "Forbidden.RAM" || Classify(err) != ClassPermission || ErrorCode(err) != "Forbidden.RAM" {
		t.Errorf("forced Forbidden.RAM: %v (class %v)", err, Classify(err))
	}
	// The refusal is for that domain only: the same client may write another.
	r.Domain = "allowed.example.com"
	if _, err := c.Add(ctx, r); err != nil {
		t.Errorf("Add of an allowed domain after a refused one: %v", err)
	}

	for _, f := range []struct {
		name    string
		faults  livesim.Faults
		timeout bool
	}{
		{"reset", livesim.Faults{Reset: 1}, false},
		{"lost", livesim.Faults{LostAnswer: 1}, false},
		{"hang", livesim.Faults{Hang: 1}, true},
	} {
		t.Run(f.name, func(t *testing.T) {
			so := livesim.Options{AccessKeyID: testAKID, AccessKeySecret: testAKSecret, Faults: f.faults}
			c, _ := simClient(t, so, func(o *Options) { o.RequestTimeout = 100 * time.Millisecond })
			_, err := c.Add(ctx, testRequest())
			var te *TransportError
			if !errors.As(err, &te) || te.Timeout != f.timeout || Classify(err) != ClassTransient {
				t.Fatalf("err = %#v", err)
			}
		})
	}
	so = livesim.Options{AccessKeyID: testAKID, AccessKeySecret: testAKSecret, Faults: livesim.Faults{ServerError: 1}}
	c, _ = simClient(t, so, nil)
	if _, err := c.Add(ctx, testRequest()); !errors.As(err, &ae) || Classify(err) != ClassTransient {
		t.Errorf("server error: %v", err)
	}
}

func TestSimConcurrent(t *testing.T) {
	t.Parallel()
	for _, sig := range []string{"", "v2"} {
		c, sim := simClient(t, livesim.Options{AccessKeyID: testAKID, AccessKeySecret: testAKSecret, SecurityToken: testToken},
			func(o *Options) { o.SignatureAlgorithm = sig; o.MaxConns = 32 })
		errs := make(chan error, 32*4)
		done := make(chan struct{})
		for w := range 32 {
			go func() {
				defer func() { done <- struct{}{} }()
				for i := range 4 {
					r := testRequest()
					r.Domain = "d" + string(rune('a'+w%26)) + string(rune('a'+w/26)) + string(rune('0'+i)) + ".example.com"
					if _, err := c.Add(context.Background(), r); err != nil {
						errs <- err
					}
				}
			}()
		}
		for range 32 {
			<-done
		}
		close(errs)
		for err := range errs {
			t.Errorf("sig %q: %v", sig, err)
		}
		if n := len(sim.Configs()); n != 32*4 {
			t.Errorf("sig %q: %d configs stored, want %d", sig, n, 32*4)
		}
	}
}
