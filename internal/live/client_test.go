package live

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/reconcile/reconcile/internal/model"
)

const (
	testAKID     = "LTAItestid"
	testAKSecret = "AKsecret/With+Odd=Chars0123"
	testToken    = "STS.token/with+chars=="
	testAuthKey  = "AuthKey0123456789abcdef"
)

func newTestClient(t *testing.T, endpoint string, mod func(*Options)) *Client {
	t.Helper()
	o := Options{
		Endpoint:       endpoint,
		Region:         "cn-shanghai",
		RequestTimeout: 5 * time.Second,
		Credentials:    StaticCredentials(testAKID, testAKSecret, ""),
		MaxConns:       4,
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func testRequest() Request {
	return Request{Domain: "live.example.com", NotifyURL: "https://cb.example.com/snap", ReqAuth: true, AuthKey: model.Secret(testAuthKey)}
}

// answer writes a canned answer.
func answer(status int, body string, hdr map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func errBody(code, msg string) string {
	return fmt.Sprintf(`{"RequestId":"REQ-%s","HostId":"live.aliyuncs.com","Code":"%s","Message":"%s","Recommend":"https://api.aliyun.com/troubleshoot?q=%s"}`, code, code, msg, code)
}

func TestErrorAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		body       string
		hdr        map[string]string
		wantCode   string
		wantClass  Class
		wantRetry  time.Duration
		wantStatus int
	}{
		{"400 malformed", 400, errBody("MalformedParam", "NotifyUrl is malformed"), nil, "MalformedParam", ClassRowError, 0, 400},
		{"400 missing", 400, errBody("MissingParam", "DomainName is mandatory"), nil, "MissingParam", ClassRowError, 0, 400},
		{"403 forbidden", 403, errBody("Forbidden.RAM", "not authorized"), nil, "Forbidden.RAM", ClassPermission, 0, 403},
		{"400 signature", 400, errBody("SignatureDoesNotMatch", "bad sig"), nil, "SignatureDoesNotMatch", ClassCredentials, 0, 400},
		{"404 ak", 404, errBody("InvalidAccessKeyId.NotFound", "no such key"), nil, "InvalidAccessKeyId.NotFound", ClassCredentials, 0, 404},
		{"404 domain", 404, errBody("InvalidDomain.NotFound", "no domain"), nil, "InvalidDomain.NotFound", ClassRowError, 0, 404},
		{"409 exists", 409, errBody("ConfigAlreadyExists", "exists"), nil, "ConfigAlreadyExists", ClassDuplicate, 0, 409},
		{"400 exists", 400, errBody("ConfigAlreadyExists", "exists"), nil, "ConfigAlreadyExists", ClassDuplicate, 0, 400},
		{"400 notfound", 400, errBody("ConfigNotFound", "none"), nil, "ConfigNotFound", ClassNotFound, 0, 400},
		{"500 internal", 500, errBody("InternalError", "oops"), nil, "InternalError", ClassTransient, 0, 500},
		{"503 unavailable", 503, errBody("ServiceUnavailable", "later"), nil, "ServiceUnavailable", ClassTransient, 0, 503},
		{"throttling no hint", 400, errBody("Throttling", "slow down"), nil, "Throttling", ClassThrottled, 0, 400},
		{"throttling retry-after", 400, errBody("Throttling.User", "slow down"), map[string]string{"x-acs-retry-after": "1500"}, "Throttling.User", ClassThrottled, 1500 * time.Millisecond, 400},
		{"throttling ratelimit header", 400, errBody("Throttling.Api", "slow down"), map[string]string{"x-ratelimit-user-api": "Limit:30,Remain:0,TimeLeft:800,Reset:1"}, "Throttling.Api", ClassThrottled, 800 * time.Millisecond, 400},
		{"throttling other code", 400, errBody("Throttling.Burst", "slow down"), map[string]string{"x-acs-retry-after": "200"}, "Throttling.Burst", ClassThrottled, 200 * time.Millisecond, 400},
		{"throttling 503", 503, errBody("Throttling", "slow down"), nil, "Throttling", ClassThrottled, 0, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(answer(tt.status, tt.body, tt.hdr))
			defer srv.Close()
			c := newTestClient(t, srv.URL, nil)
			ans, err := c.Add(context.Background(), testRequest())
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %#v, want *APIError", err)
			}
			if ae.Code != tt.wantCode || ae.HTTPStatus != tt.wantStatus || ae.RequestID != "REQ-"+tt.wantCode || ae.Op != OpAdd {
				t.Errorf("got %+v", ae)
			}
			if ae.RetryAfter != tt.wantRetry {
				t.Errorf("RetryAfter = %v, want %v", ae.RetryAfter, tt.wantRetry)
			}
			if Classify(err) != tt.wantClass {
				t.Errorf("class = %v, want %v", Classify(err), tt.wantClass)
			}
			if ans.HTTPStatus != tt.wantStatus || ans.RequestID != ae.RequestID {
				t.Errorf("answer = %+v", ans)
			}
			if strings.Contains(ae.Message, "code:") || strings.Contains(ae.Message, "request id") {
				t.Errorf("message kept the SDK's decoration: %q", ae.Message)
			}
			if !strings.HasPrefix(err.Error(), OpAdd+": "+tt.wantCode+" (HTTP ") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func TestUnreadableAnswers(t *testing.T) {
	t.Parallel()
	big := `{"RequestId":"R","Pad":"` + strings.Repeat("x", 2<<20) + `"}`
	tests := []struct {
		name       string
		status     int
		body       string
		wantStatus int
		wantClass  Class
		wantMsg    string
	}{
		{"over-large 200", 200, big, 200, ClassTransient, "larger than"},
		{"over-large 500", 500, big, 500, ClassTransient, "larger than"},
		{"html 502", 502, "<html>bad gateway</html>", 502, ClassTransient, "HTTP 502"},
		{"html 429", 429, "<html>too many</html>", 429, ClassThrottled, "HTTP 429"},
		{"garbage 200", 200, "not json", 200, ClassTransient, "HTTP 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(answer(tt.status, tt.body, nil))
			defer srv.Close()
			c := newTestClient(t, srv.URL, nil)
			_, err := c.Add(context.Background(), testRequest())
			var te *TransportError
			if !errors.As(err, &te) {
				t.Fatalf("err = %#v, want *TransportError", err)
			}
			if te.AnswerStatus != tt.wantStatus || te.Timeout {
				t.Errorf("got %+v", te)
			}
			if !strings.Contains(te.Msg, tt.wantMsg) {
				t.Errorf("Msg = %q, want it to contain %q", te.Msg, tt.wantMsg)
			}
			if Classify(err) != tt.wantClass {
				t.Errorf("class = %v, want %v", Classify(err), tt.wantClass)
			}
		})
	}
}

// resetServer hijacks every connection and closes it without answering.
func resetServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// hangServer never answers; it returns when the client goes away. arrived
// receives once per request.
func hangServer(t *testing.T) (*httptest.Server, chan struct{}) {
	arrived := make(chan struct{}, 64)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv, arrived
}

func TestReset(t *testing.T) {
	t.Parallel()
	srv := resetServer(t)
	c := newTestClient(t, srv.URL, nil)
	_, err := c.Add(context.Background(), testRequest())
	var te *TransportError
	if !errors.As(err, &te) || te.Timeout || te.AnswerStatus != 0 {
		t.Fatalf("err = %#v, want non-timeout *TransportError", err)
	}
	if Classify(err) != ClassTransient || ErrorCode(err) != "ConnectionError" {
		t.Errorf("class %v code %q", Classify(err), ErrorCode(err))
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	srv, _ := hangServer(t)
	c := newTestClient(t, srv.URL, func(o *Options) { o.RequestTimeout = 100 * time.Millisecond })
	_, err := c.Add(context.Background(), testRequest())
	var te *TransportError
	if !errors.As(err, &te) || !te.Timeout {
		t.Fatalf("err = %#v, want *TransportError{Timeout: true}", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("a request timeout must not look like the caller's context: %v", err)
	}
	if Classify(err) != ClassTransient || ErrorCode(err) != "Timeout" {
		t.Errorf("class %v code %q", Classify(err), ErrorCode(err))
	}
}

func TestCallerCancel(t *testing.T) {
	t.Parallel()
	srv, arrived := hangServer(t)
	c := newTestClient(t, srv.URL, func(o *Options) { o.RequestTimeout = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := c.Add(ctx, testRequest())
	var ce *CanceledError
	if !errors.As(err, &ce) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %#v, want *CanceledError wrapping context.Canceled", err)
	}
	var te *TransportError
	if errors.As(err, &te) {
		t.Errorf("cancellation reported as transport error")
	}
	if Classify(err) != ClassCanceled {
		t.Errorf("class = %v", Classify(err))
	}

	// Already canceled: no request at all.
	_, err = c.Delete(ctx, "d.example.com", "")
	if !errors.As(err, &ce) || ce.Op != OpDelete {
		t.Errorf("pre-canceled: %#v", err)
	}

	// The caller's own deadline is a cancellation too, not a Timeout.
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	_, err = c.Add(dctx, testRequest())
	if !errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) || Classify(err) != ClassCanceled {
		t.Errorf("caller deadline: %#v", err)
	}
}

// TestRawSDKErrorLeaks documents why scrubbing is needed: the SDK's raw
// transport error carries the request URL with NotifyAuthKey (and, with the
// v2 signature, SecurityToken and Signature) in its query.
func TestRawSDKErrorLeaks(t *testing.T) {
	t.Parallel()
	srv := resetServer(t)
	u, _ := url.Parse(srv.URL)
	cfg := &openapiutil.Config{
		Endpoint:           dara.String(u.Host),
		Protocol:           dara.String("HTTP"),
		AccessKeyId:        dara.String(testAKID),
		AccessKeySecret:    dara.String(testAKSecret),
		SecurityToken:      dara.String(testToken),
		SignatureAlgorithm: dara.String("v2"),
	}
	api, err := openapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	api.DisableSDKError = dara.Bool(true)
	_, err = api.CallApiWithCtx(context.Background(), &openapiutil.Params{
		Action: dara.String(OpAdd), Version: dara.String(APIVersion), Protocol: dara.String("HTTP"),
		Pathname: dara.String("/"), Method: dara.String("POST"), AuthType: dara.String("AK"),
		Style: dara.String("RPC"), ReqBodyType: dara.String("formData"), BodyType: dara.String("json"),
	}, &openapiutil.OpenApiRequest{Query: map[string]*string{"NotifyAuthKey": dara.String(testAuthKey)}}, &dara.RuntimeOptions{})
	if err == nil {
		t.Fatal("want an error")
	}
	raw := err.Error()
	if !strings.Contains(raw, testAuthKey) || !strings.Contains(raw, "SecurityToken=") || !strings.Contains(raw, "Signature=") {
		t.Errorf("SDK error text changed; scrubbing assumptions may be stale: %q", raw)
	}
	if s := Scrub(raw, testAKSecret, testToken, testAuthKey); strings.Contains(s, testAuthKey) || strings.Contains(s, "STS.token") || strings.Contains(s, "Signature=") {
		t.Errorf("Scrub left a secret: %q", s)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	hang, _ := hangServer(t)
	reset := resetServer(t)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A server that echoes the whole query (auth key, token) in its message.
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"RequestId":"R","Code":"MalformedParam","Message":"bad request %s key %s token %s"}`,
			strings.ReplaceAll(r.URL.RawQuery, `"`, ""), r.URL.Query().Get("NotifyAuthKey"), r.URL.Query().Get("SecurityToken"))
	}))
	defer echo.Close()
	for _, sig := range []string{"", "v2"} {
		for name, srv := range map[string]*httptest.Server{"hang": hang, "reset": reset, "echo": echo} {
			t.Run(name+"/"+sig, func(t *testing.T) {
				c := newTestClient(t, srv.URL, func(o *Options) {
					o.RequestTimeout = 100 * time.Millisecond
					o.SignatureAlgorithm = sig
					o.Credentials = StaticCredentials(testAKID, testAKSecret, testToken)
				})
				r := testRequest()
				for _, call := range []func() error{
					func() error { _, err := c.Add(context.Background(), r); return err },
					func() error { _, err := c.Update(context.Background(), r); return err },
				} {
					err := call()
					if err == nil {
						t.Fatal("want an error")
					}
					for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), fmt.Sprint(errors.Unwrap(err))} {
						for _, s := range []string{testAuthKey, testAKSecret, testToken, url.QueryEscape(testAKSecret), url.QueryEscape(testToken)} {
							if strings.Contains(text, s) {
								t.Errorf("error text holds %q: %s", s, text)
							}
						}
					}
				}
			})
		}
	}
}

func TestRequestParameters(t *testing.T) {
	t.Parallel()
	type seen struct {
		query url.Values
		hdr   http.Header
	}
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.URL.Query(), r.Header.Clone()})
		mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		answer(200, `{"RequestId":"OK-1"}`, nil)(w, r)
	}))
	defer srv.Close()

	for _, sig := range []string{"", "v2"} {
		got = nil
		c := newTestClient(t, srv.URL, func(o *Options) { o.SignatureAlgorithm = sig; o.UserAgent = "reconcile/test" })
		ctx := context.Background()
		ans, err := c.Add(ctx, testRequest())
		if err != nil || ans.RequestID != "OK-1" || ans.HTTPStatus != 200 {
			t.Fatalf("Add: %+v %v", ans, err)
		}
		r2 := Request{Domain: "b.example.com", NotifyURL: "https://cb.example.com/a b", Region: "ap-southeast-1"}
		if _, err := c.Update(ctx, r2); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Delete(ctx, "c.example.com", ""); err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Fatalf("%d requests", len(got))
		}
		action := func(s seen) string {
			if sig == "v2" {
				return s.query.Get("Action")
			}
			return s.hdr.Get("x-acs-action")
		}
		a, u, d := got[0], got[1], got[2]
		if action(a) != OpAdd || action(u) != OpUpdate || action(d) != OpDelete {
			t.Errorf("actions %q %q %q", action(a), action(u), action(d))
		}
		check := func(s seen, key, want string) {
			t.Helper()
			if v, ok := s.query[key]; want == "<absent>" && ok || want != "<absent>" && (len(v) != 1 || v[0] != want) {
				t.Errorf("sig %q: %s = %v, want %q", sig, key, v, want)
			}
		}
		check(a, "DomainName", "live.example.com")
		check(a, "NotifyUrl", "https://cb.example.com/snap")
		check(a, "NotifyReqAuth", "yes")
		check(a, "NotifyAuthKey", testAuthKey)
		check(a, "RegionId", "cn-shanghai")
		check(u, "DomainName", "b.example.com")
		check(u, "NotifyUrl", "https://cb.example.com/a b")
		check(u, "NotifyReqAuth", "no")
		check(u, "NotifyAuthKey", "<absent>")
		check(u, "RegionId", "ap-southeast-1")
		check(d, "DomainName", "c.example.com")
		check(d, "RegionId", "cn-shanghai")
		check(d, "NotifyUrl", "<absent>")
		if sig == "" {
			if !strings.HasPrefix(a.hdr.Get("Authorization"), "ACS3-HMAC-SHA256 Credential="+testAKID+",") || a.hdr.Get("x-acs-version") != APIVersion {
				t.Errorf("V3 headers: %v", a.hdr)
			}
		} else {
			check(a, "SignatureMethod", "HMAC-SHA1")
			check(a, "Version", APIVersion)
			check(a, "AccessKeyId", testAKID)
			if a.query.Get("Signature") == "" {
				t.Errorf("no Signature")
			}
		}
		if !strings.Contains(a.hdr.Get("User-Agent"), "reconcile/test") {
			t.Errorf("User-Agent %q", a.hdr.Get("User-Agent"))
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   Config
	}{
		{"exists", 200, `{"RequestId":"D1","DomainName":"live.example.com","NotifyUrl":"https://cb/x","NotifyReqAuth":"yes","NotifyAuthKey":"` + testAuthKey + `"}`,
			Config{Domain: "live.example.com", NotifyURL: "https://cb/x", ReqAuth: true, AuthKey: testAuthKey, Exists: true}},
		{"no auth", 200, `{"RequestId":"D1","DomainName":"live.example.com","NotifyUrl":"https://cb/x","NotifyReqAuth":"no"}`,
			Config{Domain: "live.example.com", NotifyURL: "https://cb/x", Exists: true}},
		{"empty", 200, `{"RequestId":"D1"}`, Config{Domain: "live.example.com"}},
		{"empty fields", 200, `{"RequestId":"D1","DomainName":"","NotifyUrl":"","NotifyReqAuth":"","NotifyAuthKey":""}`, Config{Domain: "live.example.com"}},
		{"config not found", 400, errBody("ConfigNotFound", "none"), Config{Domain: "live.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q url.Values
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				q = r.URL.Query()
				answer(tt.status, tt.body, nil)(w, r)
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL, nil)
			cfg, ans, err := c.Describe(context.Background(), "live.example.com", "")
			if err != nil {
				t.Fatal(err)
			}
			if cfg != tt.want {
				t.Errorf("got %+v, want %+v", cfg, tt.want)
			}
			if ans.RequestID == "" || ans.HTTPStatus != tt.status {
				t.Errorf("answer %+v", ans)
			}
			if q.Get("DomainName") != "live.example.com" || q.Get("RegionId") != "cn-shanghai" {
				t.Errorf("query %v", q)
			}
			if strings.Contains(fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg), testAuthKey) {
				t.Errorf("Config prints its auth key")
			}
		})
	}
	srv := httptest.NewServer(answer(500, errBody("InternalError", "x"), nil))
	defer srv.Close()
	c := newTestClient(t, srv.URL, nil)
	if _, _, err := c.Describe(context.Background(), "d", ""); Classify(err) != ClassTransient {
		t.Errorf("Describe 500: %v", err)
	}
}

// TestConcurrentAdd runs 32 goroutines on one Client (go test -race).
func TestConcurrentAdd(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := n.Add(1)
		if r.URL.Query().Get("DomainName") == "" {
			t.Errorf("no DomainName")
		}
		answer(200, fmt.Sprintf(`{"RequestId":"R%d"}`, id), nil)(w, r)
	}))
	defer srv.Close()
	for _, sig := range []string{"", "v2"} {
		c := newTestClient(t, srv.URL, func(o *Options) { o.MaxConns = 32; o.SignatureAlgorithm = sig })
		const workers, each = 32, 8
		var wg sync.WaitGroup
		var mu sync.Mutex
		ids := map[string]bool{}
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					r := testRequest()
					r.Domain = fmt.Sprintf("d%d-%d.example.com", w, i)
					ans, err := c.Add(context.Background(), r)
					if err != nil {
						t.Errorf("Add: %v", err)
						return
					}
					mu.Lock()
					ids[ans.RequestID] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(ids) != workers*each {
			t.Errorf("%d distinct answers, want %d", len(ids), workers*each)
		}
	}
}

func TestRotatingCredentials(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seenIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seenIDs = append(seenIDs, r.URL.Query().Get("AccessKeyId")+"/"+r.URL.Query().Get("SecurityToken"))
		mu.Unlock()
		answer(200, `{"RequestId":"R"}`, nil)(w, r)
	}))
	defer srv.Close()
	rc := &rotating{}
	c := newTestClient(t, srv.URL, func(o *Options) { o.SignatureAlgorithm = "v2"; o.Credentials = rc })
	for range 3 {
		if _, err := c.Add(context.Background(), testRequest()); err != nil {
			t.Fatal(err)
		}
	}
	// New() asked once (gen 1); the three calls saw gens 2, 3, 4.
	want := []string{"id2/tok2", "id3/tok3", "id4/tok4"}
	if fmt.Sprint(seenIDs) != fmt.Sprint(want) {
		t.Errorf("saw %v, want %v", seenIDs, want)
	}
}

type rotating struct {
	mu  sync.Mutex
	gen int
}

func (r *rotating) Get(context.Context) (Credential, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	return Credential{AccessKeyID: fmt.Sprintf("id%d", r.gen), AccessKeySecret: "s", SecurityToken: model.Secret(fmt.Sprintf("tok%d", r.gen))}, nil
}

func TestCredentialsFailurePerCall(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(answer(200, `{"RequestId":"R"}`, nil))
	defer srv.Close()
	fc := &failing{}
	c := newTestClient(t, srv.URL, func(o *Options) { o.Credentials = fc })
	fc.fail.Store(true)
	_, err := c.Add(context.Background(), testRequest())
	var cre *CredentialsError
	if !errors.As(err, &cre) || cre.Provider != "*live.failing" || errors.Is(err, ErrNoCredentials) ||
		Classify(err) != ClassCredentialsUnavailable || ErrorCode(err) != "CredentialsUnavailable" {
		t.Errorf("err = %v (class %v)", err, Classify(err))
	}
	if strings.Contains(err.Error(), "leaky") {
		t.Errorf("credential error not scrubbed: %v", err)
	}
	fc.fail.Store(false)
	if _, err := c.Add(context.Background(), testRequest()); err != nil {
		t.Errorf("after recovery: %v", err)
	}
}

type failing struct{ fail atomic.Bool }

func (f *failing) Get(context.Context) (Credential, error) {
	if f.fail.Load() {
		return Credential{}, errors.New(`refresh failed: Get "http://sts/?SecurityToken=leaky": EOF`)
	}
	return Credential{AccessKeyID: "a", AccessKeySecret: "b"}, nil
}

func TestDefaultChain(t *testing.T) {
	home := t.TempDir()
	for k, v := range map[string]string{
		"HOME": home, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
		"ALIBABA_CLOUD_ACCESS_KEY_ID": "", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "", "ALIBABA_CLOUD_SECURITY_TOKEN": "",
		"ALIBABA_CLOUD_ROLE_ARN": "", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "", "ALIBABA_CLOUD_OIDC_TOKEN_FILE": "",
		"ALIBABA_CLOUD_CREDENTIALS_URI": "", "ALIBABA_CLOUD_CREDENTIALS_FILE": "", "ALIBABA_CLOUD_CONFIG_FILE": "",
	} {
		t.Setenv(k, v)
	}
	_, err := DefaultChain()
	if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "ALIBABA_CLOUD_ACCESS_KEY_ID") {
		t.Fatalf("no credentials: %v", err)
	}

	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "envid")
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "envsecret")
	t.Setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "envtoken")
	creds, err := DefaultChain()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := creds.Get(context.Background())
			if err != nil || c.AccessKeyID != "envid" || c.AccessKeySecret.Reveal() != "envsecret" || c.SecurityToken.Reveal() != "envtoken" {
				t.Errorf("Get: %+v %v", c, err)
			}
			if got := SecretsOf(c); fmt.Sprint(got) != "[envsecret envtoken]" {
				t.Errorf("SecretsOf = %v", got)
			}
			if strings.Contains(fmt.Sprintf("%v %+v %#v", c, c, c), "envsecret") {
				t.Errorf("Credential prints its secret")
			}
		}()
	}
	wg.Wait()

	// The provider that delivered failing later is a refresh failure naming
	// it, not "no credentials"; the chain recovers with it.
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "")
	_, err = creds.Get(context.Background())
	var cre *CredentialsError
	if !errors.As(err, &cre) || cre.Provider != "default/env" || errors.Is(err, ErrNoCredentials) {
		t.Errorf("want a *CredentialsError from default/env, got %v", err)
	}
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "envid2")
	if c, err := creds.Get(context.Background()); err != nil || c.AccessKeyID != "envid2" {
		t.Errorf("after recovery: %+v %v", c, err)
	}

	// A canceled ctx does not wait.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cc := creds.(*chainCredentials)
	cc.lock <- struct{}{} // hold the lock
	if _, err := creds.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Get: %v", err)
	}
	<-cc.lock
}

// TestTLSVerified: the client verifies server certificates (an httptest TLS
// server's self-signed certificate is refused).
func TestTLSVerified(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(answer(200, `{"RequestId":"R"}`, nil))
	defer srv.Close()
	c := newTestClient(t, srv.URL, nil)
	_, err := c.Add(context.Background(), testRequest())
	var te *TransportError
	if !errors.As(err, &te) || !strings.Contains(te.Msg, "certificate") {
		t.Fatalf("err = %v, want a certificate error", err)
	}
}
