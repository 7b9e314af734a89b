package livesim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// The STS side of the simulator: AssumeRole (API version 2015-04-01, RPC
// style, what credentials-go's RAM role ARN provider sends: POST / with
// the signature parameters in the query and RoleArn, RoleSessionName,
// DurationSeconds, ExternalId, Policy in a form body, signed HMAC-SHA1
// with the caller's AccessKey). The Server answers it on the same handler
// as the Live API: a request whose Action is AssumeRole or whose Version is
// STSVersion goes here. credentials-go speaks HTTPS only to STS, so serve
// the Server over TLS too, with a certificate the client process trusts:
// see SelfSignedCert (and SSL_CERT_FILE).
//
// A role is an Account's RoleARN. AssumeRole checks, in order (the first
// failure answers):
//
//  1. the caller's signature, timestamp, nonce and security token, as for
//     the Live API (InvalidAccessKeyId.NotFound, InvalidAccessKeyId.Inactive,
//     SignatureDoesNotMatch, ...; an expired STS key is
//     InvalidSecurityToken.Expired);
//  2. Version and Action (InvalidVersion, InvalidAction.NotFound);
//  3. the parameters: 400 MissingRoleArn, MissingRoleSessionName,
//     InvalidParameter.RoleSessionName (2-64 of A-Z a-z 0-9 . @ - _),
//     InvalidParameter.DurationSeconds (900 s up to the role's maximum),
//     InvalidParameter.RoleArn (not acs:ram::<id>:role/<name>),
//     InvalidParameter.ExternalId (2-1224 of \w + = , . @ : / -);
//  4. 404 EntityNotExist.Role: no account has that RoleARN;
//  5. 403 NoPermission: the role's trust policy (Account.Trusted) does
//     not name the caller's AccessKey id or account, or the role requires
//     an ExternalId (Account.ExternalID) and the request's is missing or
//     another.
//
// Then it issues an AccessKey "STS.<random>" with a random secret and
// security token, valid for DurationSeconds (default 3600) from the
// arrival time (Options.Now): Live API requests signed with it and
// carrying the token belong to the role's account — its limit, configs,
// Disabled flag — until it expires (400 InvalidSecurityToken.Expired).
//
// The codes, statuses and messages of steps 3-5 are those Alibaba Cloud's
// STS documentation lists for AssumeRole (NoPermission, EntityNotExist.Role,
// InvalidParameter.RoleSessionName, InvalidParameter.DurationSeconds). What
// is UNVERIFIED: MissingRoleArn and MissingRoleSessionName (the gateway's
// usual Missing<Param> form), InvalidParameter.RoleArn and
// InvalidParameter.ExternalId, the order of the checks, and that an
// ExternalId mismatch is a trust-policy refusal (NoPermission) — the
// documentation only says the trust policy's sts:ExternalId condition
// must match.
//
// AssumeRole requests are kept out of the Live API's log, Stats,
// throttling windows, Faults and Latency (FailSTS simulates an outage):
// they are recorded in STSLog and counted by STSCallsFor, and served as
// JSON lines on GET /_sim/sts. They share the nonce memory.

// STSVersion is the STS API version; ActionAssumeRole its one action here.
const (
	STSVersion       = "2015-04-01"
	ActionAssumeRole = "AssumeRole"
)

// STSHostID is the HostId of STS's error answers.
const STSHostID = "sts.aliyuncs.com"

// STSEntry is one AssumeRole request as the simulator saw it.
type STSEntry struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"` // arrival (Options.Now)
	// Caller is the account of the caller's AccessKey ("" when the key
	// id was unknown); CallerKeyID that key's id when known.
	Caller      string `json:"caller,omitempty"`
	CallerKeyID string `json:"caller_key_id,omitempty"`
	RoleARN     string `json:"role_arn,omitempty"` // as sent
	// Account is the account whose role RoleARN names ("" when none).
	Account     string `json:"account,omitempty"`
	SessionName string `json:"session_name,omitempty"`
	Status      int    `json:"status"`
	Code        string `json:"code,omitempty"`
	// IssuedKeyID is the STS AccessKey id handed out ("" when refused).
	IssuedKeyID string `json:"issued_key_id,omitempty"`
	RequestID   string `json:"request_id"`
}

// STSCount counts AssumeRole requests.
type STSCount struct {
	Calls   int `json:"calls"`   // every AssumeRole request
	Issued  int `json:"issued"`  // answered with credentials
	Refused int `json:"refused"` // answered with an error
}

// role is the server side of an Account's RoleARN; fixed by New.
type role struct {
	arn         string
	acct        *account
	externalID  string
	trusted     map[string]bool // key ids and account names; nil: any known key
	maxDuration time.Duration
}

// issuedKey is an STS key AssumeRole handed out (Server.stsIssued).
type issuedKey struct {
	id      string
	expires time.Time
}

// stsForget is how long after it expired an STS key is still recognised
// (answered InvalidSecurityToken.Expired rather than
// InvalidAccessKeyId.NotFound).
const stsForget = time.Hour

var (
	sessionNameRE = regexp.MustCompile(`^[A-Za-z0-9._@-]{2,64}$`)
	externalIDRE  = regexp.MustCompile(`^[A-Za-z0-9_+=,.@:/-]+$`) // and 2-1224 long
)

// STSLog returns a copy of the AssumeRole requests in arrival order.
func (s *Server) STSLog() []STSEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stsLog)
}

// STSCallsFor counts the AssumeRole requests that named account's role
// (STSEntry.Account == account; "" for those that named no known role).
func (s *Server) STSCallsFor(account string) STSCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c STSCount
	for i := range s.stsLog {
		e := &s.stsLog[i]
		if e.Account != account {
			continue
		}
		c.Calls++
		if e.IssuedKeyID != "" {
			c.Issued++
		} else {
			c.Refused++
		}
	}
	return c
}

// FailSTS makes the next n AssumeRole requests (whoever sends them) answer
// 503 ServiceUnavailable before any check, as an STS outage would; n < 0
// fails every one until FailSTS(0). They are logged with that code.
func (s *Server) FailSTS(n int) {
	s.mu.Lock()
	s.stsFail = n
	s.mu.Unlock()
}

// assumeRoleBody is AssumeRole's answer.
type assumeRoleBody struct {
	RequestID       string `json:"RequestId"`
	AssumedRoleUser struct {
		AssumedRoleID string `json:"AssumedRoleId"`
		Arn           string `json:"Arn"`
	} `json:"AssumedRoleUser"`
	Credentials struct {
		SecurityToken   string `json:"SecurityToken"`
		AccessKeyID     string `json:"AccessKeyId"`
		AccessKeySecret string `json:"AccessKeySecret"`
		Expiration      string `json:"Expiration"`
	} `json:"Credentials"`
}

// serveSTS answers one STS request (ai: its verified signature).
func (s *Server) serveSTS(w http.ResponseWriter, ai authInfo, p url.Values, action, version, rid string, arrived time.Time) {
	body, e := s.assumeRole(ai, p, action, version, rid, arrived)
	if e != nil {
		writeErrorFrom(w, rid, STSHostID, "Sts", e)
		return
	}
	b, _ := json.Marshal(body)
	writeJSON(w, rid, http.StatusOK, b)
}

// assumeRole makes every decision of one STS request under the lock and
// logs it.
func (s *Server) assumeRole(ai authInfo, p url.Values, action, version, rid string, arrived time.Time) (_ *assumeRoleBody, e *apiErr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := arrived
	if t.Before(s.lastAdmit) {
		t = s.lastAdmit
	}
	s.lastAdmit = t
	s.seq++
	en := STSEntry{Seq: s.seq, Time: arrived, RoleARN: trunc(p.Get("RoleArn"), 512),
		SessionName: trunc(p.Get("RoleSessionName"), 128), RequestID: rid}
	if ai.key != nil {
		en.Caller, en.CallerKeyID = ai.key.acct.name, ai.key.id
	}
	if r := s.roles[en.RoleARN]; r != nil {
		en.Account = r.acct.name
	}
	defer func() {
		en.Status = http.StatusOK
		if e != nil {
			en.Status, en.Code, en.IssuedKeyID = e.status, e.code, ""
		}
		s.stsLog = append(s.stsLog, en)
	}()

	if s.stsFail != 0 {
		if s.stsFail > 0 {
			s.stsFail--
		}
		return nil, &apiErr{503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."}
	}
	if ai.err != nil {
		return nil, ai.err
	}
	if skew := t.Sub(ai.ts); skew > maxSkew || skew < -maxSkew {
		return nil, &apiErr{400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."}
	}
	if s.nonceUsedLocked(ai.nonce, t) {
		return nil, &apiErr{400, "SignatureNonceUsed", "Specified signature nonce was used already."}
	}
	if e := checkToken(ai, t); e != nil {
		return nil, e
	}
	switch {
	case version == "":
		return nil, &apiErr{400, "MissingParam", "Version is mandatory for this action."}
	case version != STSVersion:
		return nil, &apiErr{400, "InvalidVersion", "Specified parameter Version is not valid."}
	case action != ActionAssumeRole:
		return nil, &apiErr{400, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."}
	}
	arn, session, ext := p.Get("RoleArn"), p.Get("RoleSessionName"), p.Get("ExternalId")
	dur := defaultMaxSessionDuration
	switch {
	case arn == "":
		return nil, &apiErr{400, "MissingRoleArn", "RoleArn is mandatory for this action."}
	case session == "":
		return nil, &apiErr{400, "MissingRoleSessionName", "RoleSessionName is mandatory for this action."}
	case !sessionNameRE.MatchString(session):
		return nil, &apiErr{400, "InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed."}
	case !roleARNRE.MatchString(arn):
		return nil, &apiErr{400, "InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed."}
	case ext != "" && (len(ext) < 2 || len(ext) > 1224 || !externalIDRE.MatchString(ext)):
		return nil, &apiErr{400, "InvalidParameter.ExternalId", "The parameter ExternalId is wrongly formed."}
	}
	if v := p.Get("DurationSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < int64(minSessionDuration/time.Second) || n > int64(maxMaxSessionDuration/time.Second) {
			return nil, errDuration
		}
		dur = time.Duration(n) * time.Second
	}
	r := s.roles[arn]
	if r == nil {
		return nil, &apiErr{404, "EntityNotExist.Role", "The role not exists: " + arn + "."}
	}
	if r.trusted != nil && !r.trusted[ai.key.id] && !r.trusted[ai.key.acct.name] {
		return nil, &apiErr{403, "NoPermission", "You are not authorized to do this action. The trust policy of the role does not allow the caller to assume it."}
	}
	if r.externalID != "" && !constEq(ext, r.externalID) {
		return nil, &apiErr{403, "NoPermission", "You are not authorized to do this action. The ExternalId does not match the condition sts:ExternalId of the role's trust policy."}
	}
	if dur > r.maxDuration {
		return nil, errDuration
	}

	exp := t.Add(dur).UTC().Truncate(time.Second)
	k := &accessKey{id: "STS." + randomString(alnum, 28), secret: randomString(alnum, 44),
		token: "CAIS" + randomToken(), disabled: r.acct.disabled, acct: r.acct, expires: exp}
	s.rememberSTSKeyLocked(k, t)
	en.IssuedKeyID = k.id

	out := &assumeRoleBody{RequestID: rid}
	out.AssumedRoleUser.Arn = arn + "/" + session
	out.AssumedRoleUser.AssumedRoleID = roleID(arn) + ":" + session
	out.Credentials.AccessKeyID, out.Credentials.AccessKeySecret = k.id, k.secret
	out.Credentials.SecurityToken = k.token
	out.Credentials.Expiration = exp.Format("2006-01-02T15:04:05Z")
	return out, nil
}

var errDuration = &apiErr{400, "InvalidParameter.DurationSeconds", "The Min/Max value of DurationSeconds is 15min/the role's MaxSessionDuration."}

// rememberSTSKeyLocked makes k usable and forgets the keys that expired
// more than stsForget before t.
func (s *Server) rememberSTSKeyLocked(k *accessKey, t time.Time) {
	if len(s.stsIssued) >= 256 {
		keep := s.stsIssued[:0]
		for _, ik := range s.stsIssued {
			if t.Sub(ik.expires) > stsForget {
				s.stsKeys.Delete(ik.id)
				continue
			}
			keep = append(keep, ik)
		}
		s.stsIssued = keep
	}
	s.stsKeys.Store(k.id, k)
	s.stsIssued = append(s.stsIssued, issuedKey{id: k.id, expires: k.expires})
}

// roleID is a stable, made-up numeric role id for AssumedRoleId.
func roleID(arn string) string {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(arn); i++ {
		h ^= uint64(arn[i])
		h *= 1099511628211
	}
	return strconv.FormatUint(h%1e18, 10)
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n characters of alphabet from crypto/rand.
func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// randomToken returns a long base64 token (with '+', '/' and '='
// likely), shaped like real STS tokens, to exercise encodings.
func randomToken() string {
	b := make([]byte, 190)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
