package live

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"
)

// The four operations.
const (
	OpAdd      = "AddLiveSnapshotNotifyConfig"
	OpUpdate   = "UpdateLiveSnapshotNotifyConfig"
	OpDescribe = "DescribeLiveSnapshotNotifyConfig"
	OpDelete   = "DeleteLiveSnapshotNotifyConfig"
)

// Client calls the Live snapshot-callback API. It is safe for concurrent use:
// darabonba's openapi.Client is not, so Client keeps a pool of them (one per
// concurrent call, created on demand) that share one *http.Client. SDK
// retries are off: every call is exactly one HTTP request, so the caller's
// rate limiter sees every request.
type Client struct {
	protocol string // "HTTP" or "HTTPS"
	hostport string
	region   string
	timeout  time.Duration
	sigAlg   string
	ua       string
	creds    Credentials

	httpc *http.Client
	doer  *httpDoer
	pool  chan *sdkClient
}

// sdkClient is one pooled openapi.Client and the credential it signs with.
type sdkClient struct {
	api  *openapi.Client
	cred *callCredential
}

// New validates opts and builds a Client. It asks opts.Credentials once, so
// missing credentials fail here: an error wrapping ErrNoCredentials, or the
// *CredentialsError itself when Credentials reports a provider that
// delivered before and failed to refresh.
func New(ctx context.Context, opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	scheme, hostport, _ := opts.endpoint() // validated above
	if _, err := opts.Credentials.Get(ctx); err != nil {
		var cre *CredentialsError
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, ErrNoCredentials) || errors.As(err, &cre) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s", ErrNoCredentials, Scrub(err.Error()))
	}
	timeout := opts.RequestTimeout
	if timeout == 0 {
		timeout = DefaultRequestTimeout
	}
	maxConns := opts.MaxConns
	if maxConns == 0 {
		maxConns = DefaultMaxConns
	}
	capped := func(d time.Duration) time.Duration {
		if d > timeout {
			return timeout
		}
		return d
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   capped(10 * time.Second),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12}, // verification on
		TLSHandshakeTimeout: capped(10 * time.Second),
		// A backstop only: the per-call context deadline (timeout) fires first.
		ResponseHeaderTimeout: timeout + time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns,
		IdleConnTimeout:       90 * time.Second,
	}
	httpc := &http.Client{
		Transport: tr,
		// The API never redirects; following one would re-send the signed
		// query (and the auth key) somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c := &Client{
		protocol: strings.ToUpper(scheme),
		hostport: hostport,
		region:   opts.Region,
		timeout:  timeout,
		sigAlg:   opts.SignatureAlgorithm,
		ua:       opts.UserAgent,
		creds:    opts.Credentials,
		httpc:    httpc,
		doer:     &httpDoer{c: httpc, max: MaxAnswerBytes},
		pool:     make(chan *sdkClient, maxConns),
	}
	return c, nil
}

// Close releases idle connections. Calls after Close still work.
func (c *Client) Close() { c.httpc.CloseIdleConnections() }

func (c *Client) newSDKClient() (*sdkClient, error) {
	cred := &callCredential{}
	cfg := &openapiutil.Config{
		Endpoint:   dara.String(c.hostport),
		Protocol:   dara.String(c.protocol),
		Credential: cred,
		HttpClient: c.doer,
		// RetryOptions nil: dara.ShouldRetry allows exactly one attempt.
	}
	if c.region != "" {
		cfg.RegionId = dara.String(c.region)
	}
	if c.ua != "" {
		cfg.UserAgent = dara.String(c.ua)
	}
	if c.sigAlg != "" {
		cfg.SignatureAlgorithm = dara.String(c.sigAlg)
	}
	api, err := openapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("live: building SDK client: %s", Scrub(err.Error()))
	}
	api.DisableSDKError = dara.Bool(true) // typed errors (not copied by Init)
	return &sdkClient{api: api, cred: cred}, nil
}

func (c *Client) acquire() (*sdkClient, error) {
	select {
	case s := <-c.pool:
		return s, nil
	default:
		return c.newSDKClient()
	}
}

func (c *Client) release(s *sdkClient) {
	s.cred.c = Credential{}
	select {
	case c.pool <- s:
	default:
	}
}

// Add calls AddLiveSnapshotNotifyConfig.
func (c *Client) Add(ctx context.Context, r Request) (Answer, error) {
	ans, _, err := c.call(ctx, OpAdd, c.writeQuery(r), r.AuthKey.Reveal())
	return ans, err
}

// Update calls UpdateLiveSnapshotNotifyConfig with every field of r
// (NotifyAuthKey only when non-empty, as for Add).
func (c *Client) Update(ctx context.Context, r Request) (Answer, error) {
	ans, _, err := c.call(ctx, OpUpdate, c.writeQuery(r), r.AuthKey.Reveal())
	return ans, err
}

// Describe calls DescribeLiveSnapshotNotifyConfig. Exists is false when the
// API answers with an empty NotifyUrl (what it is believed to do for a
// domain without a config, UNVERIFIED) or with the code ConfigNotFound
// (defensive; then Answer carries that answer's status and RequestId and err
// is nil). Config.AuthKey is a model.Secret; never log the raw answer.
func (c *Client) Describe(ctx context.Context, domain, region string) (Config, Answer, error) {
	ans, body, err := c.call(ctx, OpDescribe, c.baseQuery(domain, region), "")
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == "ConfigNotFound" {
			return Config{Domain: domain}, ans, nil
		}
		return Config{}, ans, err
	}
	cfg := Config{
		Domain:    str(body["DomainName"]),
		NotifyURL: str(body["NotifyUrl"]),
		AuthKey:   secret(str(body["NotifyAuthKey"])),
	}
	ra := strings.ToLower(str(body["NotifyReqAuth"]))
	cfg.ReqAuth = ra == "yes" || ra == "true" || ra == "on"
	if cfg.Domain == "" {
		cfg.Domain = domain
	}
	cfg.Exists = cfg.NotifyURL != ""
	return cfg, ans, nil
}

// Delete calls DeleteLiveSnapshotNotifyConfig.
func (c *Client) Delete(ctx context.Context, domain, region string) (Answer, error) {
	ans, _, err := c.call(ctx, OpDelete, c.baseQuery(domain, region), "")
	return ans, err
}

func (c *Client) baseQuery(domain, region string) map[string]*string {
	q := map[string]*string{"DomainName": dara.String(domain)}
	if region == "" {
		region = c.region
	}
	if region != "" {
		q["RegionId"] = dara.String(region)
	}
	return q
}

func (c *Client) writeQuery(r Request) map[string]*string {
	q := c.baseQuery(r.Domain, r.Region)
	q["NotifyUrl"] = dara.String(r.NotifyURL)
	if r.ReqAuth {
		q["NotifyReqAuth"] = dara.String("yes")
	} else {
		q["NotifyReqAuth"] = dara.String("no")
	}
	if !r.AuthKey.IsZero() {
		q["NotifyAuthKey"] = dara.String(r.AuthKey.Reveal())
	}
	return q
}

// call runs one API call: one HTTP request, no SDK retry. authKey is the
// request's NotifyAuthKey (scrubbed from every error).
func (c *Client) call(ctx context.Context, op string, query map[string]*string, authKey string) (Answer, map[string]any, error) {
	if err := ctx.Err(); err != nil {
		return Answer{}, nil, &CanceledError{Op: op, Err: err}
	}
	cred, err := c.creds.Get(ctx)
	if err != nil {
		// Nothing was sent.
		if cerr := ctx.Err(); cerr != nil {
			return Answer{}, nil, &CanceledError{Op: op, Err: cerr}
		}
		var cre *CredentialsError
		if errors.Is(err, ErrNoCredentials) || errors.As(err, &cre) {
			return Answer{}, nil, fmt.Errorf("%s: %w", op, err)
		}
		// A custom Credentials failing after New succeeded: a refresh
		// failure of unknown kind.
		return Answer{}, nil, fmt.Errorf("%s: %w", op, &CredentialsError{
			Provider: fmt.Sprintf("%T", c.creds), Err: errors.New(Scrub(err.Error(), authKey))})
	}
	secrets := append(SecretsOf(cred), authKey)

	s, err := c.acquire()
	if err != nil {
		return Answer{}, nil, &TransportError{Op: op, Msg: Scrub(err.Error(), secrets...)}
	}
	s.cred.c = cred

	st := &callState{}
	reqCtx, cancel := context.WithTimeout(context.WithValue(ctx, callStateKey{}, st), c.timeout)
	params := &openapiutil.Params{
		Action:      dara.String(op),
		Version:     dara.String(APIVersion),
		Protocol:    dara.String(c.protocol),
		Pathname:    dara.String("/"),
		Method:      dara.String("POST"),
		AuthType:    dara.String("AK"),
		Style:       dara.String("RPC"),
		ReqBodyType: dara.String("formData"),
		BodyType:    dara.String("json"),
	}
	req := &openapiutil.OpenApiRequest{Query: query}
	res, callErr := safeCall(func() (map[string]interface{}, error) {
		return s.api.CallApiWithCtx(reqCtx, params, req, &dara.RuntimeOptions{})
	})
	st.finish()
	reqTimedOut := errors.Is(reqCtx.Err(), context.DeadlineExceeded)
	cancel()
	c.release(s)

	status, hdr := st.result()
	ans := Answer{HTTPStatus: status, RequestID: hdr.Get("x-acs-request-id")}
	if callErr == nil {
		body, _ := res["body"].(map[string]interface{})
		if id := str(body["RequestId"]); id != "" {
			ans.RequestID = id
		}
		return ans, body, nil
	}
	err = c.mapError(ctx, op, callErr, st, reqTimedOut, ans, secrets)
	var ae *APIError
	if errors.As(err, &ae) {
		ans.RequestID, ans.HTTPStatus = ae.RequestID, ae.HTTPStatus
	}
	return ans, nil, err
}

// safeCall turns an SDK panic into an error whose text is not kept (it
// may hold request data).
func safeCall(f func() (map[string]interface{}, error)) (res map[string]interface{}, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, errSDKPanic
		}
	}()
	return f()
}

var errSDKPanic = errors.New("the SDK panicked during the call")

// sdkResponseError is what the SDK's *ThrottlingError, *ClientError and
// *ServerError (and *AlibabaCloudError) have in common.
type sdkResponseError interface {
	GetCode() *string
	GetStatusCode() *int
	GetRequestId() *string
	GetRetryAfter() *int64
	GetData() map[string]interface{}
	GetMessage() *string
}

func (c *Client) mapError(ctx context.Context, op string, err error, st *callState, reqTimedOut bool, ans Answer, secrets []string) error {
	// An answer arrived (the SDK parsed an error body): that is the truth,
	// even if the caller's ctx ended meanwhile.
	var re sdkResponseError
	if errors.As(err, &re) && st.gotAnswer() {
		status := dara.IntValue(re.GetStatusCode())
		if status == 0 {
			status = ans.HTTPStatus
		}
		ae := &APIError{
			Op:         op,
			Code:       dara.StringValue(re.GetCode()),
			HTTPStatus: status,
			RequestID:  dara.StringValue(re.GetRequestId()),
		}
		if ae.RequestID == "" {
			ae.RequestID = ans.RequestID
		}
		data := re.GetData()
		msg := str(data["Message"])
		if msg == "" {
			msg = str(data["message"])
		}
		if msg == "" {
			msg = dara.StringValue(re.GetMessage())
		}
		ae.Message = Scrub(msg, secrets...)
		if ms := dara.Int64Value(re.GetRetryAfter()); ms > 0 {
			ae.RetryAfter = time.Duration(ms) * time.Millisecond
		}
		if ae.RetryAfter == 0 {
			_, hdr := st.result()
			ae.RetryAfter = retryAfterHeader(hdr.Get("x-acs-retry-after"))
		}
		return ae
	}
	if cerr := ctx.Err(); cerr != nil {
		return &CanceledError{Op: op, Err: cerr}
	}
	te := &TransportError{Op: op, AnswerStatus: ans.HTTPStatus}
	var ne net.Error
	te.Timeout = reqTimedOut || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	switch {
	case st.tooLarge():
		te.Msg = fmt.Sprintf("answer (HTTP %d) larger than %d bytes", ans.HTTPStatus, MaxAnswerBytes)
	case errors.As(err, &re):
		// The SDK built an error without an answer (e.g. a missing param).
		te.Msg = Scrub(dara.StringValue(re.GetCode())+": "+dara.StringValue(re.GetMessage()), secrets...)
	case ans.HTTPStatus != 0:
		te.Msg = fmt.Sprintf("unreadable answer (HTTP %d): %s", ans.HTTPStatus, Scrub(err.Error(), secrets...))
	case te.Timeout:
		te.Msg = "no answer within " + c.timeout.String() + ": " + Scrub(err.Error(), secrets...)
	default:
		te.Msg = Scrub(err.Error(), secrets...)
	}
	return te
}

// ---- the send hook ----

type sendHookKey struct{}

// SendHook is called around the network send of one call's HTTP request, so
// that a rate limiter can count the request from the moment it may reach the
// server. For every Before that returns nil, exactly one of Wrote and
// NotWritten runs afterwards.
type SendHook struct {
	// Before runs right before the request is handed to the HTTP client —
	// after signing and building it, before any connection is set up — on
	// the calling goroutine. When it returns an error the request is not
	// sent and the call fails with a *TransportError.
	Before func() error
	// Wrote runs once the request has been written to a connection (it may
	// run on another goroutine): the server has it, or is about to.
	Wrote func()
	// NotWritten runs, on the calling goroutine once the HTTP exchange has
	// ended, when Wrote did not run. mayHaveArrived is false when no
	// connection was ever obtained for the request (the dial, TLS handshake
	// or wait for a pooled connection failed or was cancelled), so nothing
	// can have reached the server; it is true when a connection was
	// obtained or an answer came back (a write failed part way, or the
	// exchange was cut short while writing): the request may have arrived
	// at any time up to now.
	NotWritten func(mayHaveArrived bool)
}

// WithSendHook returns a context for one call whose HTTP request runs hook,
// so that a rate limiter can record the moment of sending as precisely as
// the process can know it.
func WithSendHook(ctx context.Context, hook SendHook) context.Context {
	return context.WithValue(ctx, sendHookKey{}, hook)
}

// SendHookFrom returns the hook WithSendHook put in ctx, so that an API
// implementation other than Client (a fake, a wrapper) can honour the same
// contract.
func SendHookFrom(ctx context.Context) (SendHook, bool) {
	h, ok := ctx.Value(sendHookKey{}).(SendHook)
	return h, ok
}

// ---- the shared HTTP client ----

// httpDoer implements dara.HttpClient over one shared *http.Client. The SDK
// passes a freshly built *http.Transport on every call; it is ignored, so all
// pooled SDK clients share one connection pool with our timeouts and TLS
// verification. Answer bodies are bounded by max bytes.
type httpDoer struct {
	c   *http.Client
	max int64
}

var _ dara.HttpClient = (*httpDoer)(nil)

// Call implements dara.HttpClient.
func (h *httpDoer) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	hook, hooked := SendHookFrom(req.Context())
	if !hooked {
		resp, err := h.c.Do(req)
		if err != nil {
			return nil, err
		}
		return h.wrap(req, resp), nil
	}
	if hook.Before != nil {
		if err := hook.Before(); err != nil {
			return nil, err
		}
	}
	// reported makes Wrote and NotWritten mutually exclusive: WroteRequest
	// may fire on the transport's goroutine after Do has returned (an answer
	// can come before the write is reported).
	var reported, gotConn atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			// A failed write is not reported here: the transport may retry
			// it on a new connection, and when it does not, NotWritten
			// counts the request as possibly arrived.
			if info.Err == nil && reported.CompareAndSwap(false, true) && hook.Wrote != nil {
				hook.Wrote()
			}
		},
	}))
	resp, err := h.c.Do(req)
	if reported.CompareAndSwap(false, true) && hook.NotWritten != nil {
		hook.NotWritten(gotConn.Load() || resp != nil)
	}
	if err != nil {
		return nil, err
	}
	return h.wrap(req, resp), nil
}

// wrap bounds resp's body and records the answer in the call's state.
func (h *httpDoer) wrap(req *http.Request, resp *http.Response) *http.Response {
	lb := &limitedBody{rc: resp.Body, left: h.max}
	resp.Body = lb
	if st, ok := req.Context().Value(callStateKey{}).(*callState); ok {
		st.record(resp, lb)
	}
	return resp
}

var errBodyTooLarge = errors.New("answer body too large")

// limitedBody fails reads past its limit.
type limitedBody struct {
	rc     io.ReadCloser
	left   int64
	over   bool
	mu     sync.Mutex
	closed bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		b.over = true
		b.left = 0
		return 0, errBodyTooLarge
	}
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.rc.Close()
}

func (b *limitedBody) tooLarge() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.over
}

// callState records, per call, the answer's status and headers (the SDK
// drops them on error) and the body, to close it whatever the SDK did.
type callStateKey struct{}

type callState struct {
	mu     sync.Mutex
	status int
	header http.Header
	body   *limitedBody
}

func (s *callState) record(resp *http.Response, b *limitedBody) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.header, s.body = resp.StatusCode, resp.Header, b
}

func (s *callState) result() (int, http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.header == nil {
		return s.status, http.Header{}
	}
	return s.status, s.header
}

func (s *callState) gotAnswer() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status != 0
}

func (s *callState) tooLarge() bool {
	s.mu.Lock()
	b := s.body
	s.mu.Unlock()
	return b != nil && b.tooLarge()
}

// finish closes the body: the SDK leaves it open on read errors and on empty
// bodies.
func (s *callState) finish() {
	s.mu.Lock()
	b := s.body
	s.mu.Unlock()
	if b != nil {
		_ = b.Close()
	}
}

// ---- helpers ----

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case *string:
		return dara.StringValue(x)
	case fmt.Stringer:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}
