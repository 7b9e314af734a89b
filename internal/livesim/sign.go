package livesim

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Signature schemes (live-api.md, "Signatures").
const (
	schemeV3 = "ACS3-HMAC-SHA256"
	schemeV1 = "HMAC-SHA1"
)

// maxSkew is how far a request's timestamp may be from the server clock.
const maxSkew = 15 * time.Minute

// apiErr is an error answer.
type apiErr struct {
	status int
	code   string
	msg    string
}

// authInfo is the result of verifying a request's signature. It is computed
// without touching server state; the time-dependent checks (timestamp,
// nonce) are made later under the server lock.
type authInfo struct {
	err    *apiErr
	nonce  string
	ts     time.Time
	token  string // security token carried by the request ("" when none)
	scheme string
	// key is the AccessKey the request named, when known (also when the
	// signature then failed); nil otherwise.
	key *accessKey
}

// percentEncode is RFC 3986 percent-encoding: unreserved characters
// (A-Z a-z 0-9 - _ . ~) are kept, every other byte becomes %XX (upper case).
// So a space is %20, '*' is %2A, '~' is kept.
func percentEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexUpper = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexUpper[c>>4], hexUpper[c&15])
		}
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// canonicalQuery returns params sorted by key (values of a repeated key
// sorted too), each key and value RFC 3986-encoded, joined by '&'. Keys in
// skip are left out.
func canonicalQuery(params url.Values, skip string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != skip {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var sb strings.Builder
	for _, k := range keys {
		vs := params[k]
		if len(vs) > 1 {
			vs = slices.Clone(vs)
			slices.Sort(vs)
		}
		ek := percentEncode(k)
		for _, v := range vs {
			if sb.Len() > 0 {
				sb.WriteByte('&')
			}
			sb.WriteString(ek)
			sb.WriteByte('=')
			sb.WriteString(percentEncode(v))
		}
	}
	return sb.String()
}

// StringToSignV1 returns the legacy RPC (HMAC-SHA1, SignatureVersion 1.0)
// string to sign: METHOD + "&%2F&" + percentEncode(canonical query), where
// the canonical query is every parameter except Signature, sorted and
// RFC 3986-encoded. It contains every parameter value, so it must never be
// logged or echoed when the parameters carry a secret (NotifyAuthKey).
func StringToSignV1(method string, params url.Values) string {
	return strings.ToUpper(method) + "&" + percentEncode("/") + "&" + percentEncode(canonicalQuery(params, "Signature"))
}

// SignV1 returns the legacy RPC signature of params (the Signature parameter
// itself, if present, is ignored): base64 of HMAC-SHA1 over
// StringToSignV1(method, params) with key secret+"&". It reproduces the
// published vector of live-api.md and what darabonba-openapi sends with
// SignatureAlgorithm "v2".
func SignV1(method string, params url.Values, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(StringToSignV1(method, params)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// verify checks the request's signature (V3 when an Authorization header is
// present, v1 when a Signature parameter is), but not its timestamp skew
// or nonce reuse.
func (s *Server) verify(r *http.Request, params url.Values, body []byte) authInfo {
	if a := r.Header.Get("Authorization"); a != "" {
		return s.verifyV3(r, a, body)
	}
	if params.Has("Signature") {
		return s.verifyV1(r.Method, params)
	}
	return authInfo{err: &apiErr{400, "MissingSignature", "The request must be signed: neither an Authorization header nor a Signature parameter was found."}}
}

func incomplete(msg string) *apiErr {
	return &apiErr{400, "IncompleteSignature", msg}
}

var errKeyNotFound = &apiErr{404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."}

// errKeyInactive answers a disabled key (Account.Disabled,
// AccessKey.Disabled). UNVERIFIED: the status (400) and that the gateway
// refuses a disabled key before checking its signature; the code is in
// live-api.md's credentials class.
var errKeyInactive = &apiErr{400, "InvalidAccessKeyId.Inactive", "Specified access key is disabled."}

// lookupKey finds the key of id: one map read, no lock (s.keys is fixed
// by New), then, for an id not declared, the STS keys AssumeRole issued
// (a sync.Map). The key id is not a secret, so the lookup need not be
// constant-time; the secret's comparison (hmac.Equal) is.
func (s *Server) lookupKey(ai *authInfo, id string) bool {
	k := s.keys[id]
	if k == nil {
		if v, ok := s.stsKeys.Load(id); ok {
			k = v.(*accessKey)
		}
	}
	switch {
	case k == nil:
		ai.err = errKeyNotFound
		return false
	case k.disabled:
		ai.key, ai.err = k, errKeyInactive
		return false
	}
	ai.key = k
	return true
}

func (s *Server) verifyV1(method string, params url.Values) authInfo {
	ai := authInfo{scheme: schemeV1}
	id := params.Get("AccessKeyId")
	switch {
	case id == "":
		ai.err = incomplete("AccessKeyId is mandatory for a signed request.")
		return ai
	case !s.lookupKey(&ai, id):
		return ai
	case params.Get("SignatureMethod") != schemeV1:
		ai.err = incomplete("SignatureMethod must be HMAC-SHA1.")
		return ai
	case params.Get("SignatureVersion") != "1.0":
		ai.err = incomplete("SignatureVersion must be 1.0.")
		return ai
	}
	want := SignV1(method, params, ai.key.secret)
	if !hmac.Equal([]byte(want), []byte(params.Get("Signature"))) {
		// The real API echoes its string to sign; for v1 it holds every
		// parameter, NotifyAuthKey included, so it is NOT echoed here.
		ai.err = &apiErr{400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."}
		return ai
	}
	ai.nonce = params.Get("SignatureNonce")
	ai.token = params.Get("SecurityToken")
	ai.err = checkStamp(&ai, params.Get("Timestamp"), "Timestamp")
	return ai
}

// checkStamp parses a request timestamp and checks the nonce is present.
func checkStamp(ai *authInfo, stamp, name string) *apiErr {
	if stamp == "" {
		return incomplete(name + " is mandatory for a signed request.")
	}
	t, err := time.Parse(time.RFC3339, stamp)
	if err != nil {
		// UNVERIFIED code for an unparsable timestamp.
		return &apiErr{400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."}
	}
	ai.ts = t
	if ai.nonce == "" {
		return incomplete("The signature nonce is mandatory for a signed request.")
	}
	return nil
}

// v3Required are the headers a V3 signature must cover.
var v3Required = []string{"host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"}

func (s *Server) verifyV3(r *http.Request, authz string, body []byte) authInfo {
	ai := authInfo{scheme: schemeV3}
	alg, rest, _ := strings.Cut(authz, " ")
	if alg != schemeV3 {
		ai.err = incomplete("Unsupported signature algorithm; only ACS3-HMAC-SHA256 is accepted.")
		return ai
	}
	var cred, signedList, sig string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signedList = v
		case "Signature":
			sig = v
		}
	}
	if cred == "" || signedList == "" || sig == "" {
		ai.err = incomplete("The Authorization header must carry Credential, SignedHeaders and Signature.")
		return ai
	}
	if !s.lookupKey(&ai, cred) {
		return ai
	}
	signed := strings.Split(strings.ToLower(signedList), ";")
	slices.Sort(signed)
	for _, h := range v3Required {
		if _, ok := slices.BinarySearch(signed, h); !ok {
			ai.err = incomplete("SignedHeaders must include " + h + ".")
			return ai
		}
	}
	if r.Header.Get("x-acs-security-token") != "" {
		if _, ok := slices.BinarySearch(signed, "x-acs-security-token"); !ok {
			ai.err = incomplete("SignedHeaders must include x-acs-security-token.")
			return ai
		}
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if r.Header.Get("x-acs-content-sha256") != payload {
		// UNVERIFIED code: the real gateway's answer to a body that does not
		// match x-acs-content-sha256 is not documented.
		ai.err = &apiErr{400, "SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the request body."}
		return ai
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		ai.err = &apiErr{400, "SignatureDoesNotMatch", "The query string could not be decoded."}
		return ai
	}
	var sb strings.Builder
	sb.Grow(512)
	sb.WriteString(r.Method)
	sb.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	sb.WriteString(path)
	sb.WriteByte('\n')
	sb.WriteString(canonicalQuery(query, ""))
	sb.WriteByte('\n')
	for _, h := range signed {
		sb.WriteString(h)
		sb.WriteByte(':')
		if h == "host" {
			sb.WriteString(strings.TrimSpace(r.Host))
		} else {
			vs := r.Header.Values(h)
			if len(vs) > 1 {
				vs = slices.Clone(vs)
				for i := range vs {
					vs[i] = strings.TrimSpace(vs[i])
				}
				slices.Sort(vs)
				sb.WriteString(strings.Join(vs, ","))
			} else if len(vs) == 1 {
				sb.WriteString(strings.TrimSpace(vs[0]))
			}
		}
		sb.WriteByte('\n')
	}
	sb.WriteByte('\n')
	sb.WriteString(strings.Join(signed, ";"))
	sb.WriteByte('\n')
	sb.WriteString(payload)
	crHash := sha256.Sum256([]byte(sb.String()))
	stringToSign := schemeV3 + "\n" + hex.EncodeToString(crHash[:])
	mac := hmac.New(sha256.New, []byte(ai.key.secret))
	mac.Write([]byte(stringToSign))
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(sig))) {
		// The V3 string to sign is the algorithm and a hash: it holds no
		// secret, so it is echoed as the real API does.
		ai.err = &apiErr{400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation. server string to sign is:" + stringToSign}
		return ai
	}
	ai.nonce = r.Header.Get("x-acs-signature-nonce")
	ai.token = r.Header.Get("x-acs-security-token")
	ai.err = checkStamp(&ai, r.Header.Get("x-acs-date"), "x-acs-date")
	return ai
}
