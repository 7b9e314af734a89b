// Package livesim is an in-process simulator of the ApsaraVideo Live RPC
// endpoint for the four snapshot-callback operations
// (Add/Update/Describe/DeleteLiveSnapshotNotifyConfig), true to the protocol
// of docs/live-api.md: both signature schemes (ACS3-HMAC-SHA256 and the
// legacy HMAC-SHA1), nonce and timestamp checks, the documented validation
// rules and error bodies, per-operation throttling over a sliding 1-second
// window, and injectable latency and faults (5xx, connection reset, hang,
// lost answer) drawn from a seeded source.
//
// The simulator keeps accounts (Options.Accounts, see Account): a request
// belongs to the account of its AccessKey id (one map lookup), is signed
// with that key's secret, and is throttled, faulted and applied within
// that account only: its limit, its throttling windows and its configs
// (the same domain name in two accounts is two configs). The single-key
// fields of Options make the default account (DefaultAccount); without
// Accounts the simulator is the one-key endpoint it always was. The log
// is one log, each entry naming its account.
//
// The Server also answers STS AssumeRole (sts.go) for the accounts that
// have a RoleARN: the credentials it issues are accepted by the Live API
// as that account's.
//
// A *Server is an http.Handler: serve it with httptest.NewServer in tests or
// with http.Server for `reconcile simulate`. Every request, rejected ones
// included, is recorded in a log (Log, Stats, MaxInWindow), also served as
// JSON on the unsigned admin endpoints GET /_sim/log, /_sim/state and
// /_sim/stats.
//
// Every API request is checked in this order; the first failure answers:
//
//  1. signature (V3 ACS3-HMAC-SHA256 when an Authorization header is sent,
//     else legacy HMAC-SHA1 when a Signature parameter is): MissingSignature,
//     IncompleteSignature, InvalidAccessKeyId.NotFound (404),
//     InvalidAccessKeyId.Inactive (a disabled key or account),
//     SignatureDoesNotMatch;
//  2. timestamp within 15 minutes of Options.Now (InvalidTimeStamp.Expired),
//     then nonce not seen before (SignatureNonceUsed). A nonce is consumed
//     by every request whose signature is valid, whatever happens next;
//     nonces are remembered server-wide, not per account;
//  3. security token (InvalidSecurityToken.*), Version (MissingParam,
//     InvalidVersion), Action (InvalidAction.NotFound);
//  4. the account's ForceErrors for the DomainName;
//  5. throttling (Throttling.User) by the account's limit, counted on the
//     account's requests that passed 1-4;
//  6. the fault draw (or a matching DomainFaults rule of the account) and
//     latency delay;
//  7. parameter validation (MissingParam, MalformedParam), then the
//     operation itself (ConfigAlreadyExists, ConfigNotFound).
//
// Behaviours that no source documents are marked UNVERIFIED below; they are
// this simulator's choices, not facts about the real service: the codes of
// steps 1-3 other than those in live-api.md, the status of
// InvalidAccessKeyId.Inactive, Describe and Delete of a
// missing config (200), the retry-after headers, lower-case-only
// NotifyReqAuth, and Update's key check on the merged config.
//
// The package uses the standard library only. Per-request work is a
// signature check, two short critical sections on one mutex and a JSON
// answer; it sustains well over 5,000 requests/s on two cores.
package livesim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"hash/maphash"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Version is the only API version the simulator accepts.
const Version = "2016-11-01"

// Operation names (the Action parameter).
const (
	ActionAdd      = "AddLiveSnapshotNotifyConfig"
	ActionUpdate   = "UpdateLiveSnapshotNotifyConfig"
	ActionDescribe = "DescribeLiveSnapshotNotifyConfig"
	ActionDelete   = "DeleteLiveSnapshotNotifyConfig"
)

// Fault values recorded in Entry.Fault.
const (
	FaultNone        = ""
	FaultServerError = "server_error" // answered 500 InternalError or 503 ServiceUnavailable; nothing applied
	FaultReset       = "reset"        // connection reset without an answer; nothing applied
	FaultHang        = "hang"         // no answer until the client left or Close; nothing applied
	FaultLostAnswer  = "lost_answer"  // operation applied, connection closed without an answer
	FaultThrottled   = "throttled"    // answered Throttling.User; nothing applied
	FaultForced      = "forced"       // answered an Options.ForceErrors error; nothing applied
	// FaultClientGone: the client went away (request context done) during
	// the simulated latency. The operation was still executed, as a real
	// backend would (Applied tells), but no answer was delivered (Status 0).
	FaultClientGone = "client_gone"
)

// Latency is the simulated service time of accepted requests: lognormal with
// the given median and 99th percentile. Zero Median means no delay; when P99
// <= Median every request is delayed by exactly Median.
type Latency struct {
	Median, P99 time.Duration
}

// Faults are the probabilities (0..1) of the injected faults, drawn once per
// accepted request (after signature, ForceErrors and throttling checks) from
// the seeded source. They are exclusive; when their sum exceeds 1 they take
// precedence in the order ServerError, Reset, Hang, LostAnswer.
type Faults struct {
	// ServerError: answer 500 InternalError or 503 ServiceUnavailable (even
	// odds); nothing is applied.
	ServerError float64
	// Reset: close the connection (TCP RST) without answering; nothing applied.
	Reset float64
	// Hang: never answer; the handler blocks until the client goes away
	// (request context done) or Close is called, then closes the connection.
	// Nothing is applied.
	Hang float64
	// LostAnswer: apply the operation, then close the connection without
	// answering: the client sees a transport error although the change took.
	LostAnswer float64
}

// ForcedError is an error answer forced for one domain (Options.ForceErrors).
type ForcedError struct {
	Status  int    // HTTP status, e.g. 403
	Code    string // e.g. "Forbidden.RAM"
	Message string
	Times   int // how many requests get it; 0 = every request
}

// Options configure a Server. The zero value (plus a key pair) is a
// well-behaved, unlimited, instant endpoint.
type Options struct {
	// AccessKeyID and AccessKeySecret are the key pair of the default
	// account (DefaultAccount); with no Accounts, the one accepted pair.
	// A key id that is neither this one nor one of Accounts' is answered
	// 404 InvalidAccessKeyId.NotFound.
	AccessKeyID, AccessKeySecret string
	// Accounts declares further accounts, each with its own keys, limit
	// and configs (see Account); the fields of Options that Account also
	// has (Limit, ThrottleCountsRejected, ForceErrors, DomainFaults,
	// SecurityToken) apply to the default account only, every other field
	// to the whole server. A request belongs to the account of its
	// AccessKey id. They must pass Validate.
	Accounts []Account
	// SecurityToken, when set, must be carried by every request (V3 header
	// x-acs-security-token, v1 parameter SecurityToken); a missing or wrong
	// token is answered 400 InvalidSecurityToken.Missing /
	// InvalidSecurityToken.MismatchWithAccessKey (codes UNVERIFIED; both
	// start "InvalidSecurityToken."). When empty, a token sent is ignored.
	SecurityToken string
	// Limit is the most accepted calls per second per operation (Action)
	// of the default account, measured over a sliding 1-second window of
	// accepted requests: a request arriving at t is accepted only if fewer
	// than Limit requests of its Action were accepted in (t-1s, t]. Hence
	// no half-open 1-second window ever holds more than Limit accepted
	// calls of one Action. Calls over it get 400 Throttling.User and are
	// not applied. 0 means unlimited. Only requests with a valid
	// signature, a known Action and no forced error are counted.
	Limit int
	// ThrottleCountsRejected makes the throttling window count every
	// request of the Action that reached the check, rejected ones included:
	// a request arriving at t is accepted only if fewer than Limit requests
	// (accepted or throttled) arrived in (t-1s, t], so a client that keeps
	// exceeding the limit stays throttled until it slows down below it.
	// Which of the two semantics Live uses is not documented. Accepted
	// requests still never exceed Limit in any 1-second window.
	ThrottleCountsRejected bool
	// RetryAfterHeader makes throttling answers carry `x-acs-retry-after:
	// <ms>` (time until the window frees a slot, rounded up, at least 1) and
	// the same value as `x-ratelimit-user-api: Limit:<n>,Remain:0,
	// TimeLeft:<ms>` (the header darabonba-openapi turns into
	// ThrottlingError.RetryAfter). Whether real Live sends either header is
	// UNVERIFIED.
	RetryAfterHeader bool
	// Latency delays accepted requests (see Latency).
	Latency Latency
	// Faults injects faults into accepted requests (see Faults).
	Faults Faults
	// Seed seeds the one source of randomness (latency and faults), so a
	// given seed yields the same fault and latency sequence for the same
	// order of request arrivals.
	Seed int64
	// ForceErrors maps a DomainName (of the default account) to an error
	// answered for it right after the signature, token and action checks,
	// before throttling, faults and validation. Nothing is applied.
	ForceErrors map[string]ForcedError
	// DeleteMissingNotFound answers a Delete of a domain without a config
	// 400 ConfigNotFound (as Update does) instead of 200. Which of the two
	// Live does is UNVERIFIED; the job must treat both as "deleted".
	DeleteMissingNotFound bool
	// DomainFaults maps a DomainName (of the default account) to fault
	// rules (see DomainFault) that replace the random fault draw for its
	// requests; the first rule that matches and has uses left wins.
	// Latency still applies.
	DomainFaults map[string][]DomainFault
	// ConflictStatus is the status of ConfigAlreadyExists (Add on an
	// existing config); 0 means 409 (an older error list says 400).
	ConflictStatus int
	// Now replaces time.Now for arrival times, throttling and the
	// timestamp-skew check. Requests signed by the SDK carry the real time,
	// so keep a fake clock within 15 minutes of it.
	Now func() time.Time
}

// Config is one domain's snapshot-callback config as the simulator stores
// it. AuthKey is test data but treated as a secret: String redacts it and
// it is not part of its JSON form.
type Config struct {
	DomainName string `json:"domain_name"`
	NotifyURL  string `json:"notify_url"`
	ReqAuth    bool   `json:"req_auth"`
	AuthKey    string `json:"-"`
}

// String formats the config with the auth key redacted (also used by %v).
func (c Config) String() string {
	key := ""
	if c.AuthKey != "" {
		key = "[REDACTED]"
	}
	return "{DomainName:" + c.DomainName + " NotifyURL:" + c.NotifyURL +
		" ReqAuth:" + strconv.FormatBool(c.ReqAuth) + " AuthKey:" + key + "}"
}

// GoString formats the config for %#v with the auth key redacted.
func (c Config) GoString() string { return "livesim.Config" + c.String() }

// Entry is one request as the simulator saw it. Entries are recorded for
// every API request, rejected ones included (not for admin requests).
type Entry struct {
	Seq    int64     `json:"seq"`    // 1, 2, … in the order requests were admitted
	Time   time.Time `json:"time"`   // arrival (Options.Now)
	Action string    `json:"action"` // as sent (may be unknown or empty)
	// Account is the name of the account the request's AccessKey id
	// belongs to (DefaultAccount for Options.AccessKeyID), set whenever
	// the id is known, even if the signature then failed; "" when the
	// request named no known key.
	Account string `json:"account,omitempty"`
	Domain  string `json:"domain"` // DomainName as sent ("" when absent)
	// Status is the HTTP status answered; 0 when no answer was sent
	// (reset, hang, lost_answer, client_gone) or the request is still in
	// flight.
	Status int `json:"status"`
	// Code is the error code answered ("" for success). For lost_answer it
	// is the code that would have been answered.
	Code string `json:"code,omitempty"`
	// Applied is true when the request changed the state (created, changed
	// or deleted a config).
	Applied bool `json:"applied"`
	// Fault is one of the Fault* constants.
	Fault     string `json:"fault,omitempty"`
	RequestID string `json:"request_id"`
}

// Server is the simulated endpoint. It is safe for concurrent use.
type Server struct {
	lastAdmit      time.Time // latest time admit used (guarded by mu)
	opts           Options
	now            func() time.Time
	conflictStatus int
	// keys, accounts, accountNames and def are fixed by New (read without
	// the lock); the state inside each account is guarded by mu.
	keys          map[string]*accessKey
	roles         map[string]*role // by RoleARN
	accounts      map[string]*account
	accountNames  []string // DefaultAccount, then Options.Accounts in order
	def           *account
	closed        chan struct{}
	closeOnce     sync.Once
	idPrefix      [16]byte // hex
	idSeq         atomic.Uint64
	nonceSeed     maphash.Seed
	lnSigma, lnMu float64 // lognormal latency parameters

	mu        sync.Mutex
	rng       *mrand.Rand
	seq       int64
	log       []Entry
	nonces    map[uint64]struct{}
	nonceQ    []nonceRec
	nonceHead int

	// STS (sts.go). stsKeys holds the issued keys (id → *accessKey),
	// read without mu; stsIssued (guarded by mu) remembers them in issue
	// order, to forget them a while after they expired.
	stsKeys   sync.Map
	stsIssued []issuedKey
	stsLog    []STSEntry
	stsFail   int // next AssumeRole requests answered 503; < 0: all
}

type nonceRec struct {
	h uint64
	t int64
}

// maxNonces bounds the nonce memory: a nonce is remembered for 15 minutes
// or until 1<<20 newer nonces were seen, whichever comes first.
const maxNonces = 1 << 20

// maxBody bounds the request body read.
const maxBody = 1 << 20

// z99 is the 0.99 quantile of the standard normal distribution.
const z99 = 2.3263478740408408

// New returns a Server for opts. Options it cannot use are treated as zero
// (negative Limit or probabilities act as 0); it panics only when
// opts.Validate reports an error, which Options without Accounts never do.
// It copies the ForceErrors and DomainFaults maps (not the rule slices).
func New(opts Options) *Server {
	if err := opts.Validate(); err != nil {
		panic(err.Error())
	}
	s := &Server{
		opts:           opts,
		now:            opts.Now,
		conflictStatus: opts.ConflictStatus,
		closed:         make(chan struct{}),
		nonceSeed:      maphash.MakeSeed(),
		rng:            mrand.New(mrand.NewPCG(uint64(opts.Seed), uint64(opts.Seed)^0x9e3779b97f4a7c15)),
		log:            make([]Entry, 0, 4096),
		nonces:         make(map[uint64]struct{}, 1024),
	}
	s.setupAccounts(opts)
	if s.now == nil {
		s.now = time.Now
	}
	if s.conflictStatus == 0 {
		s.conflictStatus = http.StatusConflict
	}
	if m, p := opts.Latency.Median, opts.Latency.P99; m > 0 && p > m {
		s.lnMu = math.Log(float64(m))
		s.lnSigma = (math.Log(float64(p)) - s.lnMu) / z99
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	hex.Encode(s.idPrefix[:], b[:])
	copy(s.idPrefix[:], strings.ToUpper(string(s.idPrefix[:])))
	return s
}

// Close releases every hung request (Faults.Hang) and cuts short pending
// latency delays; later hangs return at once. Call it before closing the
// http server (httptest.Server.Close waits for running handlers). It is
// safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// newRequestID returns a unique UUID-shaped upper-case hex id: a random
// per-server prefix and a counter.
func (s *Server) newRequestID() string {
	n := s.idSeq.Add(1)
	var h [16]byte
	const hexUpper = "0123456789ABCDEF"
	for i := 15; i >= 0; i-- {
		h[i] = hexUpper[n&15]
		n >>= 4
	}
	var b [36]byte
	p := s.idPrefix
	copy(b[0:8], p[0:8])
	b[8] = '-'
	copy(b[9:13], p[8:12])
	b[13] = '-'
	copy(b[14:18], p[12:16])
	b[18] = '-'
	copy(b[19:23], h[0:4])
	b[23] = '-'
	copy(b[24:36], h[4:16])
	return string(b[:])
}

// fault kinds drawn for an accepted request.
type faultKind uint8

const (
	kindNone faultKind = iota
	kindServerError
	kindReset
	kindHang
	kindLost
)

// admission is what the locked part of request handling decided.
type admission struct {
	idx        int
	err        *apiErr
	fault      string // for err: FaultThrottled, FaultForced or ""
	retryAfter int64  // ms, for throttling
	limit      int    // the account's Limit, for throttling
	acct       *account
	kind       faultKind
	unavail    bool // server error is 503 rather than 500
	delay      time.Duration
}

// ServeHTTP answers one request: admin endpoints under /_sim/, every other
// path as the RPC API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveAdmin(w, r)
		return
	}
	// Arrival is taken before the body is read and the signature checked,
	// so that the log's times (and MaxInWindow) measure when requests came
	// in, not how long this process took to get to them.
	arrived := s.now()
	rid := s.newRequestID()
	var body []byte
	var rerr error
	if r.Body != nil {
		body, rerr = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	}
	params, perr := parseParams(r, body)
	action := params.Get("Action")
	if action == "" {
		action = r.Header.Get("x-acs-action")
	}
	version := params.Get("Version")
	if version == "" {
		version = r.Header.Get("x-acs-version")
	}
	domain := params.Get("DomainName")
	if len(action) > 128 {
		action = action[:128]
	}
	if len(domain) > 512 {
		domain = domain[:512]
	}

	var ai authInfo
	switch {
	case rerr != nil || len(body) > maxBody:
		ai.err = &apiErr{400, "MalformedParam", "The request body could not be read or is too large."}
	case perr != nil:
		ai.err = &apiErr{400, "MalformedParam", "The request parameters could not be decoded."}
	default:
		ai = s.verify(r, params, body)
	}
	if action == ActionAssumeRole || version == STSVersion {
		s.serveSTS(w, ai, params, action, version, rid, arrived)
		return
	}

	d := s.admit(ai, action, version, domain, rid, arrived)
	if d.err != nil {
		h := w.Header()
		if d.fault == FaultThrottled && s.opts.RetryAfterHeader {
			ms := strconv.FormatInt(d.retryAfter, 10)
			h.Set("x-acs-retry-after", ms)
			h.Set("x-ratelimit-user-api", "Limit:"+strconv.Itoa(d.limit)+",Remain:0,TimeLeft:"+ms)
		}
		s.finish(d.idx, d.err.status, d.err.code, false, d.fault)
		writeError(w, rid, d.err)
		return
	}

	if d.kind == kindHang {
		s.finish(d.idx, 0, "", false, FaultHang)
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		abort(w, false)
		return
	}

	gone := false
	if d.delay > 0 {
		t := time.NewTimer(d.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			gone = true
		case <-s.closed:
		}
		t.Stop()
	}

	switch d.kind {
	case kindServerError:
		e := &apiErr{500, "InternalError", "The request processing has failed due to some unknown error, exception or failure."}
		if d.unavail {
			e = &apiErr{503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."}
		}
		if gone {
			s.finish(d.idx, 0, e.code, false, FaultServerError)
			return
		}
		s.finish(d.idx, e.status, e.code, false, FaultServerError)
		writeError(w, rid, e)
		return
	case kindReset:
		s.finish(d.idx, 0, "", false, FaultReset)
		abort(w, true)
		return
	}

	res := s.execute(d.acct, action, params)
	switch {
	case d.kind == kindLost:
		s.finish(d.idx, 0, res.code(), res.applied, FaultLostAnswer)
		abort(w, false)
		return
	case gone:
		s.finish(d.idx, 0, res.code(), res.applied, FaultClientGone)
		return
	}
	if res.err != nil {
		s.finish(d.idx, res.err.status, res.err.code, false, FaultNone)
		writeError(w, rid, res.err)
		return
	}
	s.finish(d.idx, http.StatusOK, "", res.applied, FaultNone)
	writeOK(w, rid, action, res.describe)
}

// parseParams merges the URL query and, for form bodies, the body's
// parameters (query values first).
func parseParams(r *http.Request, body []byte) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return q, err
	}
	if len(body) > 0 && strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		f, err := url.ParseQuery(string(body))
		if err != nil {
			return q, err
		}
		for k, vs := range f {
			q[k] = append(q[k], vs...)
		}
	}
	return q, nil
}

// admit records the arrival and makes every state-dependent decision in
// arrival order under one lock: timestamp skew, nonce reuse, security
// token, action and version, forced errors, throttling, then the fault and
// latency draws.
func (s *Server) admit(ai authInfo, action, version, domain, rid string, arrived time.Time) admission {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Requests reach this lock in a slightly different order than they
	// arrived; the throttling window needs times in lock order, so t never
	// goes back. The log keeps the true arrival time.
	t := arrived
	if t.Before(s.lastAdmit) {
		t = s.lastAdmit
	}
	s.lastAdmit = t
	s.seq++
	// Without a key (only in-package callers, e.g. tests of admit, pass
	// a valid authInfo without one) the default account decides.
	d := admission{idx: len(s.log), acct: s.def}
	en := Entry{Seq: s.seq, Time: arrived, Action: action, Domain: domain, RequestID: rid}
	if ai.key != nil {
		d.acct = ai.key.acct
		en.Account = d.acct.name
	}
	s.log = append(s.log, en)

	if ai.err != nil {
		d.err = ai.err
		return d
	}
	if skew := t.Sub(ai.ts); skew > maxSkew || skew < -maxSkew {
		d.err = &apiErr{400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."}
		return d
	}
	if s.nonceUsedLocked(ai.nonce, t) {
		d.err = &apiErr{400, "SignatureNonceUsed", "Specified signature nonce was used already."}
		return d
	}
	a := d.acct
	if e := checkToken(ai, t); e != nil {
		d.err = e
		return d
	}
	switch {
	case version == "":
		d.err = &apiErr{400, "MissingParam", "Version is mandatory for this action."}
		return d
	case version != Version:
		// UNVERIFIED code for a wrong version.
		d.err = &apiErr{400, "InvalidVersion", "Specified parameter Version is not valid."}
		return d
	}
	switch action {
	case ActionAdd, ActionUpdate, ActionDescribe, ActionDelete:
	default:
		// UNVERIFIED: the gateway's exact code for an unknown action on the
		// Live product (InvalidAction.NotFound is what other RPC products use).
		d.err = &apiErr{400, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."}
		return d
	}
	if f, ok := a.forced[domain]; ok && domain != "" {
		if f.Times == 0 || a.forcedUsed[domain] < f.Times {
			a.forcedUsed[domain]++
			st := f.Status
			if st == 0 {
				st = 400
			}
			d.err, d.fault = &apiErr{st, f.Code, f.Message}, FaultForced
			return d
		}
	}
	if a.limit > 0 {
		w := a.windows[action]
		if w == nil {
			w = &window{}
			a.windows[action] = w
		}
		if wait, ok := w.admit(t.UnixNano(), a.limit, a.countRejected); !ok {
			ms := (wait + int64(time.Millisecond) - 1) / int64(time.Millisecond)
			d.retryAfter = max(ms, 1)
			d.limit = a.limit
			d.err, d.fault = &apiErr{400, "Throttling.User", "Request was denied due to user flow control."}, FaultThrottled
			return d
		}
	}
	f := s.opts.Faults
	if k, ok := s.domainFaultKind(a, domain, action); ok {
		d.kind = k
		d.unavail = s.rng.IntN(2) == 1
	} else if f.ServerError > 0 || f.Reset > 0 || f.Hang > 0 || f.LostAnswer > 0 {
		u := s.rng.Float64()
		switch c := f.ServerError; {
		case u < c:
			d.kind = kindServerError
		case u < c+f.Reset:
			d.kind = kindReset
		case u < c+f.Reset+f.Hang:
			d.kind = kindHang
		case u < c+f.Reset+f.Hang+f.LostAnswer:
			d.kind = kindLost
		}
		d.unavail = s.rng.IntN(2) == 1
	}
	if m := s.opts.Latency.Median; m > 0 {
		if s.lnSigma > 0 {
			d.delay = time.Duration(math.Exp(s.lnMu + s.lnSigma*s.rng.NormFloat64()))
		} else {
			d.delay = m
		}
	}
	return d
}

// checkToken checks the security token the request carried against its
// key's (when the key has one), and that an STS key has not expired.
func checkToken(ai authInfo, t time.Time) *apiErr {
	if ai.key == nil {
		return nil
	}
	if want := ai.key.token; want != "" {
		switch {
		case ai.token == "":
			// UNVERIFIED code.
			return &apiErr{400, "InvalidSecurityToken.Missing", "The security token is mandatory for this AccessKey."}
		case !constEq(ai.token, want):
			// UNVERIFIED which of the InvalidSecurityToken.* codes applies.
			return &apiErr{400, "InvalidSecurityToken.MismatchWithAccessKey", "The security token does not match the AccessKey."}
		}
	}
	if exp := ai.key.expires; !exp.IsZero() && !t.Before(exp) {
		return &apiErr{400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired."}
	}
	return nil
}

func constEq(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// nonceUsedLocked reports whether nonce was seen in the last 15 minutes
// (bounded by maxNonces), and remembers it.
func (s *Server) nonceUsedLocked(nonce string, t time.Time) bool {
	now := t.UnixNano()
	cut := now - int64(maxSkew)
	for s.nonceHead < len(s.nonceQ) && (s.nonceQ[s.nonceHead].t < cut || len(s.nonceQ)-s.nonceHead >= maxNonces) {
		delete(s.nonces, s.nonceQ[s.nonceHead].h)
		s.nonceHead++
	}
	if s.nonceHead > 1024 && s.nonceHead*2 > len(s.nonceQ) {
		n := copy(s.nonceQ, s.nonceQ[s.nonceHead:])
		s.nonceQ = s.nonceQ[:n]
		s.nonceHead = 0
	}
	h := maphash.String(s.nonceSeed, nonce)
	if _, ok := s.nonces[h]; ok {
		return true
	}
	s.nonces[h] = struct{}{}
	s.nonceQ = append(s.nonceQ, nonceRec{h, now})
	return false
}

// window holds the arrival times (ns) of the requests of one Action in the
// last second that count against the limit (the accepted ones, and with
// ThrottleCountsRejected the rejected ones too), oldest first.
type window struct {
	t    []int64
	head int
}

// admit accepts a request at now if fewer than limit counted requests
// arrived in (now-1s, now]; otherwise it reports how long until the one
// that must leave for it to fit leaves (a rejected request is then counted
// too when countRejected).
func (w *window) admit(now int64, limit int, countRejected bool) (wait int64, ok bool) {
	cut := now - int64(time.Second)
	for w.head < len(w.t) && w.t[w.head] <= cut {
		w.head++
	}
	if w.head > 256 && w.head*2 > len(w.t) {
		n := copy(w.t, w.t[w.head:])
		w.t = w.t[:n]
		w.head = 0
	}
	if len(w.t)-w.head >= limit {
		// The request that must leave for this one to fit is the one
		// limit places before the end.
		oldest := w.t[len(w.t)-limit]
		if countRejected {
			w.t = append(w.t, now)
		}
		return oldest + int64(time.Second) - now, false
	}
	w.t = append(w.t, now)
	return 0, true
}

// finish completes the log entry at idx.
func (s *Server) finish(idx, status int, code string, applied bool, fault string) {
	s.mu.Lock()
	e := &s.log[idx]
	e.Status, e.Code, e.Applied, e.Fault = status, code, applied, fault
	s.mu.Unlock()
}

// abort closes the connection without an answer: hijack and close (with
// SO_LINGER 0, i.e. a TCP RST, when rst), or abort the handler when the
// connection cannot be hijacked (HTTP/2).
func abort(w http.ResponseWriter, rst bool) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			if rst {
				c := conn
				if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
					c = nc.NetConn()
				}
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
			}
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	RequestID string `json:"RequestId"`
	HostID    string `json:"HostId"`
	Code      string `json:"Code"`
	Message   string `json:"Message"`
	Recommend string `json:"Recommend"`
}

// HostID is the HostId of every error answer.
const HostID = "live.aliyuncs.com"

func writeError(w http.ResponseWriter, rid string, e *apiErr) {
	writeErrorFrom(w, rid, HostID, "live", e)
}

// writeErrorFrom writes an error answer of the product at host.
func writeErrorFrom(w http.ResponseWriter, rid, host, product string, e *apiErr) {
	b, _ := json.Marshal(errorBody{
		RequestID: rid,
		HostID:    host,
		Code:      e.code,
		Message:   e.msg,
		Recommend: "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(e.code) + "&product=" + product + "&requestId=" + rid,
	})
	writeJSON(w, rid, e.status, b)
}

func writeJSON(w http.ResponseWriter, rid string, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=utf-8")
	h.Set("x-acs-request-id", rid)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// describeBody is Describe's flat answer.
type describeBody struct {
	RequestID     string `json:"RequestId"`
	DomainName    string `json:"DomainName"`
	NotifyURL     string `json:"NotifyUrl"`
	NotifyReqAuth string `json:"NotifyReqAuth"`
	NotifyAuthKey string `json:"NotifyAuthKey"`
}

func writeOK(w http.ResponseWriter, rid, action string, d *Config) {
	if action != ActionDescribe {
		writeJSON(w, rid, http.StatusOK, []byte(`{"RequestId":"`+rid+`"}`))
		return
	}
	body := describeBody{RequestID: rid}
	if d != nil {
		body.DomainName, body.NotifyURL, body.NotifyAuthKey = d.DomainName, d.NotifyURL, d.AuthKey
		body.NotifyReqAuth = "no"
		if d.ReqAuth {
			body.NotifyReqAuth = "yes"
		}
	}
	b, _ := json.Marshal(body)
	writeJSON(w, rid, http.StatusOK, b)
}
