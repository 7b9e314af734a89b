package livesim

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/reconcile/reconcile/internal/live"
)

// TestMain makes this test binary trust the certificate the simulator's
// STS is served with (stsServer): credentials-go reaches STS over HTTPS
// only and verifies it against the system roots, which crypto/x509 loads
// once, from SSL_CERT_FILE when set — so it is set before anything loads
// them. An operator pointing the job at a simulator's STS does the same
// with that simulator's certificate. httptest.NewTLSServer's certificate
// stays untrusted (other tests rely on that).
func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "livesim-tls")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		if stsCert, err = TrustLoopbackCert(dir); err != nil {
			panic(err)
		}
		return m.Run()
	}())
}

// stsCert is the certificate SSL_CERT_FILE trusts (TestMain).
var stsCert tls.Certificate

// stsServer serves h over TLS with stsCert.
func stsServer(h http.Handler) *httptest.Server { return ServeTLS(h, stsCert) }

const (
	roleBig   = "acs:ram::1234567890123456:role/reconcile-big"
	roleSmall = "acs:ram::6543210987654321:role/reconcile-small"
	roleNone  = "acs:ram::1111111111111111:role/nobody"
	extBig    = "ext-id-of-big"
)

// stsAccounts: "big" has keys and a role trusted by the default key with
// an ExternalId; "small" has a role only, trusted by account "big"; "off"
// is a disabled account whose role anyone may assume; "other" has a key
// and no role.
func stsAccounts() []Account {
	return []Account{
		{Name: "big", Keys: []AccessKey{{ID: bigID, Secret: bigSecret}}, Limit: 30,
			RoleARN: roleBig, ExternalID: extBig, Trusted: []string{testID}},
		{Name: "small", RoleARN: roleSmall, Trusted: []string{"big"}, Limit: 10, MaxSessionDuration: 2 * time.Hour},
		{Name: "off", RoleARN: "acs:ram::2222222222222222:role/off", Disabled: true},
		{Name: "other", Keys: []AccessKey{{ID: smallID, Secret: smallSecret}}},
	}
}

// stsEnv is an env whose simulator is also served over TLS (for STS).
type stsEnv struct {
	*env
	tls *httptest.Server
}

func newSTSEnv(t *testing.T, o Options) *stsEnv {
	t.Helper()
	e := newEnv(t, o)
	ts := stsServer(e.sim)
	t.Cleanup(func() { e.sim.Close(); ts.Close() })
	return &stsEnv{env: e, tls: ts}
}

func (e *stsEnv) stsHost() string { return strings.TrimPrefix(e.tls.URL, "https://") }

// assume runs credentials-go's RAM role ARN provider against the
// simulator's STS, as the caller (id, secret).
func (e *stsEnv) assume(id, secret, roleARN, externalID, session string) (*providers.Credentials, error) {
	prev, err := providers.NewStaticAKCredentialsProviderBuilder().WithAccessKeyId(id).WithAccessKeySecret(secret).Build()
	if err != nil {
		return nil, err
	}
	p, err := providers.NewRAMRoleARNCredentialsProviderBuilder().WithCredentialsProvider(prev).
		WithRoleArn(roleARN).WithExternalId(externalID).WithRoleSessionName(session).
		WithStsEndpoint(e.stsHost()).Build()
	if err != nil {
		return nil, err
	}
	return p.GetCredentials()
}

// rawAssume sends a hand-built, v1-signed AssumeRole: the signature
// parameters in the query, the role parameters in a form body, as
// credentials-go does. params override or add (an empty value deletes).
func (e *stsEnv) rawAssume(t *testing.T, id, secret string, params map[string]string) (int, errorBody) {
	t.Helper()
	q := url.Values{}
	for k, v := range map[string]string{
		"Action": ActionAssumeRole, "Version": STSVersion, "Format": "JSON", "AccessKeyId": id,
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
		"SignatureNonce": fmt.Sprintf("sts-nonce-%d", nonceSeq.Add(1)),
		"Timestamp":      time.Now().UTC().Format("2006-01-02T15:04:05Z"),
	} {
		q.Set(k, v)
	}
	form := url.Values{"RoleSessionName": {"reconcile-test"}, "DurationSeconds": {"3600"}}
	for k, v := range params {
		dst := form
		if q.Has(k) || k == "SecurityToken" {
			dst = q
		}
		if v == "" {
			dst.Del(k)
		} else {
			dst.Set(k, v)
		}
	}
	all := url.Values{}
	for _, src := range []url.Values{q, form} {
		for k, vs := range src {
			all[k] = vs
		}
	}
	q.Set("Signature", SignV1("POST", all, secret))
	req, _ := http.NewRequest("POST", e.tls.URL+"/?"+q.Encode(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.tls.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb errorBody
	_ = json.Unmarshal(b, &eb)
	return resp.StatusCode, eb
}

// AssumeRole through credentials-go's provider, then the Live API with
// the credentials it issued: the call lands in the role's account (its
// configs, its log entries), and only with the security token.
func TestAccountsSTSAssumeRoleThenLiveAPI(t *testing.T) {
	e := newSTSEnv(t, Options{Accounts: stsAccounts()})
	cc, err := e.assume(testID, testSecret, roleBig, extBig, "reconcile-big")
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	if !strings.HasPrefix(cc.AccessKeyId, "STS.") || cc.AccessKeySecret == "" || cc.SecurityToken == "" {
		t.Fatalf("issued %q (secret %d chars, token %d chars)", cc.AccessKeyId, len(cc.AccessKeySecret), len(cc.SecurityToken))
	}
	c := liveClient(t, e.env, cc.AccessKeyId, cc.AccessKeySecret, cc.SecurityToken, "")
	if err := liveAdd(c, "role.example.com", "https://cb.example.com/big"); err != nil {
		t.Fatalf("Add with the role's credentials: %v", err)
	}
	if _, ok := e.sim.ConfigIn("big", "role.example.com"); !ok {
		t.Fatalf("config not in account big: %v", e.sim.ConfigsIn("big"))
	}
	if _, ok := e.sim.Config("role.example.com"); ok {
		t.Fatal("config landed in the default account")
	}
	// The v1 signature too, and the token is required.
	c1 := liveClient(t, e.env, cc.AccessKeyId, cc.AccessKeySecret, cc.SecurityToken, "v2")
	if err := liveAdd(c1, "role2.example.com", "https://cb.example.com/big"); err != nil {
		t.Fatalf("v1 Add with the role's credentials: %v", err)
	}
	noToken := liveClient(t, e.env, cc.AccessKeyId, cc.AccessKeySecret, "", "")
	if err := liveAdd(noToken, "x.example.com", "https://cb.example.com/"); live.ErrorCode(err) != "InvalidSecurityToken.Missing" {
		t.Fatalf("without the token: %v", err)
	}
	if st := e.sim.StatsFor("big"); st.Total != 3 || st.Applied != 2 {
		t.Fatalf("big's stats %+v", st)
	}
	if got := e.sim.STSCallsFor("big"); got != (STSCount{Calls: 1, Issued: 1}) {
		t.Fatalf("STS calls for big %+v", got)
	}
	if st := e.sim.Stats(); st.ByAction[ActionAssumeRole] != 0 {
		t.Fatalf("AssumeRole counted in the Live log: %+v", st)
	}
	lg := e.sim.STSLog()
	if len(lg) != 1 || lg[0].Caller != DefaultAccount || lg[0].CallerKeyID != testID || lg[0].Account != "big" ||
		lg[0].IssuedKeyID != cc.AccessKeyId || lg[0].SessionName != "reconcile-big" || lg[0].Status != 200 {
		t.Fatalf("STS log %+v", lg)
	}
	// A role-only account, trusted by account name; an STS key as the
	// caller (role chaining) belongs to its role's account.
	sc, err := e.assume(bigID, bigSecret, roleSmall, "", "chain")
	if err != nil {
		t.Fatalf("AssumeRole small as big: %v", err)
	}
	if err := liveAdd(liveClient(t, e.env, sc.AccessKeyId, sc.AccessKeySecret, sc.SecurityToken, ""), "small.example.com", "https://cb.example.com/s"); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sim.ConfigIn("small", "small.example.com"); !ok {
		t.Fatal("config not in account small")
	}
}

// Every refusal: its status and code, nothing issued, counted per
// account.
func TestAccountsSTSRefusals(t *testing.T) {
	e := newSTSEnv(t, Options{Accounts: stsAccounts()})
	ok := map[string]string{"RoleArn": roleBig, "ExternalId": extBig}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range ok {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name       string
		id, secret string
		params     map[string]string
		status     int
		code       string
		account    string // STSEntry.Account
	}{
		{"ok", testID, testSecret, with(), 200, "", "big"},
		{"missing role arn", testID, testSecret, with("RoleArn", ""), 400, "MissingRoleArn", ""},
		{"missing session name", testID, testSecret, with("RoleSessionName", ""), 400, "MissingRoleSessionName", "big"},
		{"bad session name", testID, testSecret, with("RoleSessionName", "a b"), 400, "InvalidParameter.RoleSessionName", "big"},
		{"session name too long", testID, testSecret, with("RoleSessionName", strings.Repeat("s", 65)), 400, "InvalidParameter.RoleSessionName", "big"},
		{"bad role arn", testID, testSecret, with("RoleArn", "arn:aws:iam::1:role/x"), 400, "InvalidParameter.RoleArn", ""},
		{"duration too short", testID, testSecret, with("DurationSeconds", "600"), 400, "InvalidParameter.DurationSeconds", "big"},
		{"duration over the role's max", testID, testSecret, with("DurationSeconds", "7200"), 400, "InvalidParameter.DurationSeconds", "big"},
		{"bad external id", testID, testSecret, with("ExternalId", "a b"), 400, "InvalidParameter.ExternalId", "big"},
		{"unknown role", testID, testSecret, with("RoleArn", roleNone), 404, "EntityNotExist.Role", ""},
		{"untrusted caller", smallID, smallSecret, with(), 403, "NoPermission", "big"},
		{"external id missing", testID, testSecret, with("ExternalId", ""), 403, "NoPermission", "big"},
		{"external id mismatch", testID, testSecret, with("ExternalId", "another-id"), 403, "NoPermission", "big"},
		{"unknown caller key", "LTAInobody", "x", with(), 404, "InvalidAccessKeyId.NotFound", "big"},
		{"wrong caller secret", testID, "wrong", with(), 400, "SignatureDoesNotMatch", "big"},
		{"wrong version", testID, testSecret, with("Version", "2016-11-01"), 400, "InvalidVersion", "big"},
		{"role trusted by account name, other account", testID, testSecret, map[string]string{"RoleArn": roleSmall}, 403, "NoPermission", "small"},
		{"role trusted by account name", bigID, bigSecret, map[string]string{"RoleArn": roleSmall, "DurationSeconds": "7200"}, 200, "", "small"},
	}
	want := map[string]STSCount{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, eb := e.rawAssume(t, tc.id, tc.secret, tc.params)
			if status != tc.status || eb.Code != tc.code {
				t.Fatalf("answer %d %q (%s), want %d %q", status, eb.Code, eb.Message, tc.status, tc.code)
			}
			if tc.code != "" && (eb.HostID != STSHostID || eb.RequestID == "" || eb.Message == "") {
				t.Fatalf("error body %+v", eb)
			}
			c := want[tc.account]
			c.Calls++
			if tc.code == "" {
				c.Issued++
			} else {
				c.Refused++
			}
			want[tc.account] = c
		})
	}
	for acct, c := range want {
		if got := e.sim.STSCallsFor(acct); got != c {
			t.Errorf("STSCallsFor(%q) = %+v, want %+v", acct, got, c)
		}
	}
}

// An issued key belongs to its account: a disabled account's is refused
// InvalidAccessKeyId.Inactive, and every key stops at its expiration.
func TestAccountsSTSKeysDisabledAndExpiry(t *testing.T) {
	clock := &fakeClock{t: time.Now().Add(-10 * time.Minute)}
	e := newSTSEnv(t, Options{Accounts: stsAccounts(), Now: clock.Now})
	off, err := e.assume(testID, testSecret, "acs:ram::2222222222222222:role/off", "", "reconcile-off")
	if err != nil {
		t.Fatalf("AssumeRole of a disabled account's role: %v", err)
	}
	if err := liveAdd(liveClient(t, e.env, off.AccessKeyId, off.AccessKeySecret, off.SecurityToken, ""), "off.example.com", "https://cb.example.com/"); live.ErrorCode(err) != "InvalidAccessKeyId.Inactive" {
		t.Fatalf("disabled account's STS key: %v", err)
	}

	// A 15-minute session issued at now-10min expires at now+5min.
	status, _ := e.rawAssume(t, testID, testSecret, map[string]string{"RoleArn": roleBig, "ExternalId": extBig, "DurationSeconds": "900"})
	if status != 200 {
		t.Fatal(status)
	}
	lg := e.sim.STSLog()
	v, _ := e.sim.stsKeys.Load(lg[len(lg)-1].IssuedKeyID)
	k := v.(*accessKey)
	c := liveClient(t, e.env, k.id, k.secret, k.token, "")
	if err := liveAdd(c, "a.example.com", "https://cb.example.com/"); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	clock.Advance(15 * time.Minute)
	if err := liveAdd(c, "b.example.com", "https://cb.example.com/"); live.ErrorCode(err) != "InvalidSecurityToken.Expired" || live.Classify(err) != live.ClassCredentials {
		t.Fatalf("after expiry: %v", err)
	}
}

// FailSTS answers 503 ServiceUnavailable for the next n calls, then STS
// works again.
func TestAccountsSTSFail(t *testing.T) {
	e := newSTSEnv(t, Options{Accounts: stsAccounts()})
	e.sim.FailSTS(2)
	for i := range 2 {
		if status, eb := e.rawAssume(t, testID, testSecret, map[string]string{"RoleArn": roleBig, "ExternalId": extBig}); status != 503 || eb.Code != "ServiceUnavailable" {
			t.Fatalf("call %d: %d %q", i, status, eb.Code)
		}
	}
	if _, err := e.assume(testID, testSecret, roleBig, extBig, "reconcile-big"); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if got := e.sim.STSCallsFor("big"); got != (STSCount{Calls: 3, Issued: 1, Refused: 2}) {
		t.Fatalf("%+v", got)
	}
	resp, err := http.Get(e.ts.URL + "/_sim/sts?account=big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if n := strings.Count(string(b), "\n"); n != 3 || !strings.Contains(string(b), `"code":"ServiceUnavailable"`) {
		t.Fatalf("/_sim/sts: %s", b)
	}
	for _, s := range []string{testSecret, extBig} {
		if strings.Contains(string(b), s) {
			t.Fatalf("/_sim/sts shows %q", s)
		}
	}
}

func TestAccountsValidateRoles(t *testing.T) {
	key := func(id string) []AccessKey { return []AccessKey{{ID: id, Secret: "s"}} }
	tests := []struct {
		name string
		a    []Account
		want string
	}{
		{"role only", []Account{{Name: "a", RoleARN: roleBig}}, ""},
		{"trusted key, account and default", []Account{{Name: "a", Keys: key("a1")}, {Name: "b", RoleARN: roleBig, Trusted: []string{"a1", "a", DefaultAccount}}}, ""},
		{"no key, no role", []Account{{Name: "a"}}, "no AccessKey and no role_arn"},
		{"bad role arn", []Account{{Name: "a", RoleARN: "acs:ram::x:role/r"}}, "is not acs:ram::"},
		{"role arn twice", []Account{{Name: "a", RoleARN: roleBig}, {Name: "b", RoleARN: roleBig}}, "used by accounts"},
		{"external id without role", []Account{{Name: "a", Keys: key("a1"), ExternalID: "x"}}, "external_id needs a role_arn"},
		{"trusted without role", []Account{{Name: "a", Keys: key("a1"), Trusted: []string{"a1"}}}, "trusted needs a role_arn"},
		{"unknown trusted", []Account{{Name: "a", RoleARN: roleBig, Trusted: []string{"nobody"}}}, `trusted entry "nobody"`},
		{"max session too long", []Account{{Name: "a", RoleARN: roleBig, MaxSessionDuration: 13 * time.Hour}}, "not between 1h and 12h"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{AccessKeyID: "d", Accounts: tc.a}
			err := o.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// The credentials-go provider classifies nothing itself: its refusal
// error carries STS's JSON answer, which internal/live parses. Here: the
// answer's shape is what that parser reads.
func TestAccountsSTSRefusalAsCredentialsGoSeesIt(t *testing.T) {
	e := newSTSEnv(t, Options{Accounts: stsAccounts()})
	_, err := e.assume(smallID, smallSecret, roleBig, extBig, "reconcile-big")
	if err == nil {
		t.Fatal("untrusted caller got credentials")
	}
	body, found := strings.CutPrefix(err.Error(), "refresh session token failed: ")
	var eb errorBody
	if !found || json.Unmarshal([]byte(body), &eb) != nil || eb.Code != "NoPermission" {
		t.Fatalf("credentials-go error %q", err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		t.Fatalf("a refusal is not a transport error: %v", err)
	}
}
