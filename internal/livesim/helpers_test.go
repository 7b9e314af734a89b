package livesim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
)

const (
	testID     = "LTAI5tTestKeyId0001"
	testSecret = "TestSecretValue0123456789abcdef"
	testToken  = "STS.testtoken.0123456789"
	goodKey    = "abcdEFGH12345678" // 16 letters and digits
)

// env is a simulator served by httptest.
type env struct {
	sim  *Server
	ts   *httptest.Server
	host string
	once sync.Once
}

func newEnv(t testing.TB, o Options) *env {
	t.Helper()
	if o.AccessKeyID == "" {
		o.AccessKeyID, o.AccessKeySecret = testID, testSecret
	}
	e := &env{sim: New(o)}
	e.ts = httptest.NewServer(e.sim)
	e.host = strings.TrimPrefix(e.ts.URL, "http://")
	t.Cleanup(e.stop)
	return e
}

// stop releases hung handlers, then waits for every handler to return: a
// barrier after which the log is final.
func (e *env) stop() {
	e.once.Do(func() {
		e.sim.Close()
		e.ts.Close()
	})
}

// recorder is a dara.HttpClient that shares one transport and remembers the
// last response's headers; mutate may alter a request after signing, and
// replay sends each request twice, returning the second answer.
type recorder struct {
	hc      *http.Client
	mutate  func(*http.Request)
	replay  bool
	mu      sync.Mutex
	headers http.Header
}

func (r *recorder) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	if r.mutate != nil {
		r.mutate(req)
	}
	if r.replay {
		var body []byte
		if req.Body != nil {
			body, _ = io.ReadAll(req.Body)
		}
		first := req.Clone(req.Context())
		first.Body = io.NopCloser(bytes.NewReader(body))
		resp, err := r.hc.Do(first)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := r.hc.Do(req)
	if err == nil {
		r.mu.Lock()
		r.headers = resp.Header.Clone()
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) lastHeaders() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.headers
}

var sharedHC = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

type clientOpt struct {
	v1           bool
	id, secret   string
	token        string
	rec          *recorder
	disableSDKEr bool
}

// client returns an official SDK client for the env (one per goroutine: the
// SDK client is not safe for concurrent use).
func (e *env) client(t testing.TB, o clientOpt) *openapi.Client {
	t.Helper()
	if o.id == "" {
		o.id, o.secret = testID, testSecret
	}
	if o.rec == nil {
		o.rec = &recorder{hc: sharedHC}
	}
	if o.rec.hc == nil {
		o.rec.hc = sharedHC
	}
	cfg := &openapi.Config{
		AccessKeyId:     dara.String(o.id),
		AccessKeySecret: dara.String(o.secret),
		Endpoint:        dara.String(e.host),
		Protocol:        dara.String("HTTP"),
		HttpClient:      o.rec,
	}
	if o.token != "" {
		cfg.SecurityToken = dara.String(o.token)
	}
	if o.v1 {
		cfg.SignatureAlgorithm = dara.String("v2")
	}
	c, err := openapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.DisableSDKError = dara.Bool(true)
	return c
}

// call runs one operation like the product SDK does and returns the body.
func call(ctx context.Context, c *openapi.Client, action string, q map[string]string) (map[string]any, error) {
	return callWith(ctx, c, action, q, false)
}

// callWith sends the parameters in the query, or in a form body when inBody.
func callWith(ctx context.Context, c *openapi.Client, action string, q map[string]string, inBody bool) (map[string]any, error) {
	query := make(map[string]*string, len(q))
	form := make(map[string]any, len(q))
	for k, v := range q {
		query[k] = dara.String(v)
		form[k] = v
	}
	req := &openapi.OpenApiRequest{Query: query}
	if inBody {
		req = &openapi.OpenApiRequest{Body: form}
	}
	params := &openapi.Params{
		Action:      dara.String(action),
		Version:     dara.String("2016-11-01"),
		Protocol:    dara.String("HTTP"),
		Pathname:    dara.String("/"),
		Method:      dara.String("POST"),
		AuthType:    dara.String("AK"),
		Style:       dara.String("RPC"),
		ReqBodyType: dara.String("formData"),
		BodyType:    dara.String("json"),
	}
	res, err := c.CallApiWithCtx(ctx, params, req, &dara.RuntimeOptions{})
	if err != nil {
		return nil, err
	}
	body, _ := res["body"].(map[string]any)
	return body, nil
}

// outcome summarises an SDK result.
type outcome struct {
	kind       string // "ok", "throttling", "client", "server", "transport"
	code       string
	status     int
	retryAfter int64
	msg        string
}

func classify(err error) outcome {
	var te *openapi.ThrottlingError
	var ce *openapi.ClientError
	var se *openapi.ServerError
	switch {
	case err == nil:
		return outcome{kind: "ok", status: 200}
	case errors.As(err, &te):
		return outcome{kind: "throttling", code: dara.StringValue(te.Code), status: dara.IntValue(te.StatusCode), retryAfter: dara.Int64Value(te.RetryAfter), msg: dara.StringValue(te.Message)}
	case errors.As(err, &ce):
		return outcome{kind: "client", code: dara.StringValue(ce.Code), status: dara.IntValue(ce.StatusCode), msg: dara.StringValue(ce.Message)}
	case errors.As(err, &se):
		return outcome{kind: "server", code: dara.StringValue(se.Code), status: dara.IntValue(se.StatusCode), msg: dara.StringValue(se.Message)}
	}
	return outcome{kind: "transport", msg: err.Error()}
}

func addQ(domain string) map[string]string {
	return map[string]string{"DomainName": domain, "NotifyUrl": "https://cb.example.com/snap", "NotifyReqAuth": "yes", "NotifyAuthKey": goodKey, "RegionId": "cn-shanghai"}
}

// rawV1 sends a hand-built v1-signed POST with params in the query.
func rawV1(t testing.TB, e *env, secret string, params url.Values) (int, http.Header, errorBody) {
	t.Helper()
	p := url.Values{}
	for k, v := range params {
		p[k] = v
	}
	defaults := map[string]string{
		"Version": "2016-11-01", "Format": "JSON", "AccessKeyId": testID,
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
		"SignatureNonce": fmt.Sprintf("nonce-%d", nonceSeq.Add(1)),
		"Timestamp":      time.Now().UTC().Format("2006-01-02T15:04:05Z"),
	}
	for k, v := range defaults {
		if !p.Has(k) {
			p.Set(k, v)
		}
	}
	p.Set("Signature", SignV1("POST", p, secret))
	resp, err := sharedHC.Post(e.ts.URL+"/?"+p.Encode(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb errorBody
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &eb)
	return resp.StatusCode, resp.Header, eb
}

var nonceSeq atomic.Int64

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
