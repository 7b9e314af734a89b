package live

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/livesim"
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
		dir, err := os.MkdirTemp("", "live-tls")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		if stsCert, err = livesim.TrustLoopbackCert(dir); err != nil {
			panic(err)
		}
		return m.Run()
	}())
}

// stsCert is the certificate SSL_CERT_FILE trusts (TestMain).
var stsCert tls.Certificate

// stsServer serves h over TLS with stsCert.
func stsServer(h http.Handler) *httptest.Server { return livesim.ServeTLS(h, stsCert) }

const (
	roleBig      = "acs:ram::1234567890123456:role/reconcile-big"
	roleOpen     = "acs:ram::6543210987654321:role/reconcile-open"
	roleOff      = "acs:ram::2222222222222222:role/off"
	extBig       = "ext-id-of-big-0001"
	otherID      = "LTAIother"
	otherSecret  = "other/Secret+With=Chars"
	profileID    = "LTAIprofile"
	profileSecre = "profile/Secret+0123="
)

// roleSim serves one simulator twice: plain HTTP for the Live API and TLS
// for STS (credentials-go speaks HTTPS only to STS). The default key is the
// job's own identity (testAKID, with an STS token, so AssumeRole carries a
// SecurityToken too). "big" has a role trusted by that key with an
// ExternalId; "open" a role anyone may assume; "off" is disabled; "other"
// and "prof" have keys only.
func roleSim(t *testing.T) (sim *livesim.Server, liveURL, stsURL string) {
	t.Helper()
	sim = livesim.New(livesim.Options{
		AccessKeyID: testAKID, AccessKeySecret: testAKSecret, SecurityToken: testToken,
		Accounts: []livesim.Account{
			{Name: "big", RoleARN: roleBig, ExternalID: extBig, Trusted: []string{testAKID}},
			{Name: "open", RoleARN: roleOpen, MaxSessionDuration: 2 * time.Hour},
			{Name: "off", RoleARN: roleOff, Disabled: true},
			{Name: "other", Keys: []livesim.AccessKey{{ID: otherID, Secret: otherSecret}}},
			{Name: "prof", Keys: []livesim.AccessKey{{ID: profileID, Secret: profileSecre}}},
		},
	})
	plain := httptest.NewServer(sim)
	tls := stsServer(sim)
	t.Cleanup(func() { sim.Close(); plain.Close(); tls.Close() })
	return sim, plain.URL, tls.URL
}

func jobSource() Credentials { return StaticCredentials(testAKID, testAKSecret, testToken) }

// secretsIn lists the secrets (raw and encoded) found in msg.
func secretsIn(msg string, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		pe := percentEncode(s)
		for _, v := range []string{s, url.QueryEscape(s), pe, percentEncode(pe)} {
			if strings.Contains(msg, v) {
				found = append(found, v)
			}
		}
	}
	return found
}

// assumeClient builds a Client for the account through AccountCredentials.
func assumeClient(t *testing.T, spec AccountCredentialsSpec, source Credentials, liveURL string) (*Client, error) {
	t.Helper()
	creds, err := AccountCredentials(spec, source)
	if err != nil {
		t.Fatalf("AccountCredentials: %v", err)
	}
	c, err := New(context.Background(), Options{Endpoint: liveURL, Region: "cn-shanghai", RequestTimeout: 5 * time.Second, Credentials: creds, MaxConns: 2})
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

// The real credentials-go RAM role ARN provider assumes the role at the
// simulator's STS; the Live API calls then land in that account, one
// AssumeRole serves many calls, and the session name defaults to
// reconcile-<account>.
func TestAccountAssumeRole(t *testing.T) {
	for _, tc := range []struct {
		name, sig string
		endpoint  func(stsURL string) string
		spec      AccountCredentialsSpec
		account   string
		session   string
	}{
		{"https URL, v3", "", func(u string) string { return u },
			AccountCredentialsSpec{Account: "big", RoleARN: roleBig, ExternalID: extBig}, "big", "reconcile-big"},
		{"host:port, v1, session and duration", "v2", func(u string) string { return strings.TrimPrefix(u, "https://") },
			AccountCredentialsSpec{Account: "open", RoleARN: roleOpen, SessionName: "ops@reconcile", Duration: 2 * time.Hour}, "open", "ops@reconcile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, liveURL, stsURL := roleSim(t)
			spec := tc.spec
			spec.Method, spec.STSEndpoint = MethodRAMRoleARN, tc.endpoint(stsURL)
			creds, err := AccountCredentials(spec, jobSource())
			if err != nil {
				t.Fatal(err)
			}
			if n := len(sim.STSLog()); n != 0 {
				t.Fatalf("AccountCredentials called STS %d times, want none before Get", n)
			}
			c, err := New(context.Background(), Options{Endpoint: liveURL, Credentials: creds, SignatureAlgorithm: tc.sig, RequestTimeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer c.Close()
			for _, d := range []string{"a.example.com", "b.example.com"} {
				r := testRequest()
				r.Domain = d
				if _, err := c.Add(context.Background(), r); err != nil {
					t.Fatalf("Add %s: %v", d, err)
				}
				if _, ok := sim.ConfigIn(tc.account, d); !ok {
					t.Fatalf("%s not in account %s", d, tc.account)
				}
			}
			if n := len(sim.Configs()); n != 0 {
				t.Fatalf("%d configs landed in the default account", n)
			}
			if got := sim.STSCallsFor(tc.account); got != (livesim.STSCount{Calls: 1, Issued: 1}) {
				t.Fatalf("STS calls %+v, want one", got)
			}
			lg := sim.STSLog()
			if lg[0].CallerKeyID != testAKID || lg[0].SessionName != tc.session {
				t.Fatalf("STS log %+v", lg[0])
			}
			cred, _ := creds.Get(context.Background())
			if !strings.HasPrefix(cred.AccessKeyID, "STS.") || cred.SecurityToken.IsZero() {
				t.Fatalf("credential %q has no STS token", cred.AccessKeyID)
			}
		})
	}
}

// STS refusals are ClassCredentials (a *CredentialsRefusedError wrapping
// ErrNoCredentials, with STS's code), from Get and from New, and their
// text holds the account and role but no secret.
func TestAccountAssumeRoleRefused(t *testing.T) {
	sim, liveURL, stsURL := roleSim(t)
	for _, tc := range []struct {
		name   string
		spec   AccountCredentialsSpec
		source Credentials
		code   string
	}{
		{"external id mismatch", AccountCredentialsSpec{Account: "big", RoleARN: roleBig, ExternalID: "not-the-ext-id"}, jobSource(), "NoPermission"},
		{"external id missing", AccountCredentialsSpec{Account: "big", RoleARN: roleBig}, jobSource(), "NoPermission"},
		{"untrusted caller", AccountCredentialsSpec{Account: "big", RoleARN: roleBig, ExternalID: extBig}, StaticCredentials(otherID, otherSecret, ""), "NoPermission"},
		{"unknown role", AccountCredentialsSpec{Account: "gone", RoleARN: "acs:ram::1:role/gone"}, jobSource(), "EntityNotExist.Role"},
		{"job's key unknown to STS", AccountCredentialsSpec{Account: "open", RoleARN: roleOpen}, StaticCredentials("LTAIunknown", "x/y+z", ""), "InvalidAccessKeyId.NotFound"},
		{"job's secret wrong", AccountCredentialsSpec{Account: "open", RoleARN: roleOpen}, StaticCredentials(testAKID, "wrong/secret+1=", testToken), "SignatureDoesNotMatch"},
		{"duration over the role's max", AccountCredentialsSpec{Account: "big", RoleARN: roleBig, ExternalID: extBig, Duration: 3 * time.Hour}, jobSource(), "InvalidParameter.DurationSeconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Method, spec.STSEndpoint = MethodRAMRoleARN, stsURL
			_, err := assumeClient(t, spec, tc.source, liveURL)
			var ref *CredentialsRefusedError
			if !errors.As(err, &ref) || ref.Code != tc.code || ref.RoleARN != spec.RoleARN || ref.RequestID == "" {
				t.Fatalf("New: %v, want a refusal %s", err, tc.code)
			}
			if Classify(err) != ClassCredentials || !errors.Is(err, ErrNoCredentials) || ErrorCode(err) != tc.code {
				t.Fatalf("class %v, code %q, ErrNoCredentials %v", Classify(err), ErrorCode(err), errors.Is(err, ErrNoCredentials))
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `account "`+spec.Account+`": `) || !strings.Contains(msg, spec.RoleARN) {
				t.Fatalf("%q does not name the account and role", msg)
			}
			src, _ := tc.source.Get(context.Background())
			if found := secretsIn(msg, append(SecretsOf(src), extBig, spec.ExternalID)...); len(found) > 0 {
				t.Fatalf("%q holds secrets %q", msg, found)
			}
			// Through a call: nothing is sent to the Live API.
			creds, _ := AccountCredentials(spec, tc.source)
			before := len(sim.Log())
			if _, err := creds.Get(context.Background()); Classify(err) != ClassCredentials {
				t.Fatalf("Get: %v", err)
			}
			if len(sim.Log()) != before {
				t.Fatal("a refused role sent a Live API request")
			}
		})
	}
	// The role of a disabled account can be assumed; the Live API then
	// refuses its key.
	c, err := assumeClient(t, AccountCredentialsSpec{Account: "off", Method: MethodRAMRoleARN, RoleARN: roleOff, STSEndpoint: stsURL}, jobSource(), liveURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(context.Background(), testRequest()); ErrorCode(err) != "InvalidAccessKeyId.Inactive" || Classify(err) != ClassCredentials {
		t.Fatalf("disabled account: %v", err)
	}
}

// STS unreachable or failing is ClassCredentialsUnavailable (a
// *CredentialsError): no request is sent, nothing secret is said, and
// the next Get after STS recovers succeeds.
func TestAccountAssumeRoleSTSDown(t *testing.T) {
	sim, liveURL, stsURL := roleSim(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused

	check := func(t *testing.T, err error, want string) {
		t.Helper()
		var cre *CredentialsError
		if !errors.As(err, &cre) || Classify(err) != ClassCredentialsUnavailable || errors.Is(err, ErrNoCredentials) || ErrorCode(err) != "CredentialsUnavailable" {
			t.Fatalf("err = %v (class %v), want a *CredentialsError", err, Classify(err))
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, `account "open": `) || !strings.Contains(msg, roleOpen) || !strings.Contains(msg, want) {
			t.Fatalf("%q: want the account, the role and %q", msg, want)
		}
		if found := secretsIn(msg, testAKSecret, testToken); len(found) > 0 || strings.Contains(msg, "Signature=") || strings.Contains(msg, "SecurityToken=S") {
			t.Fatalf("%q holds secrets %q", msg, found)
		}
	}
	spec := AccountCredentialsSpec{Account: "open", Method: MethodRAMRoleARN, RoleARN: roleOpen, STSEndpoint: closed}
	_, err = assumeClient(t, spec, jobSource(), liveURL)
	check(t, err, "connection refused")

	spec.STSEndpoint = stsURL
	sim.FailSTS(1)
	creds, err := AccountCredentials(spec, jobSource())
	if err != nil {
		t.Fatal(err)
	}
	_, err = creds.Get(context.Background())
	check(t, err, "ServiceUnavailable")
	if c, err := creds.Get(context.Background()); err != nil || !strings.HasPrefix(c.AccessKeyID, "STS.") {
		t.Fatalf("after STS recovered: %v", err)
	}
	if n := len(sim.Log()); n != 0 {
		t.Fatalf("%d Live API requests", n)
	}
}

// The source (the job's own identity) failing keeps its class.
func TestAccountAssumeRoleSourceFails(t *testing.T) {
	_, _, stsURL := roleSim(t)
	spec := AccountCredentialsSpec{Account: "open", Method: MethodRAMRoleARN, RoleARN: roleOpen, STSEndpoint: stsURL}
	for _, tc := range []struct {
		name string
		err  error
		want Class
	}{
		{"refresh failed", &CredentialsError{Provider: "default/ecs_ram_role", Err: errors.New("metadata: 503")}, ClassCredentialsUnavailable},
		{"none configured", ErrNoCredentials, ClassCredentials},
		{"other", errors.New(`Post "https://sts.example.com/?SecurityToken=` + url.QueryEscape(testToken) + `": reset`), ClassCredentialsUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := AccountCredentials(spec, failingCreds{tc.err})
			if err != nil {
				t.Fatal(err)
			}
			_, err = creds.Get(context.Background())
			if Classify(err) != tc.want || !strings.Contains(err.Error(), `account "open"`) || len(secretsIn(err.Error(), testToken)) > 0 {
				t.Fatalf("err = %v (class %v), want class %v", err, Classify(err), tc.want)
			}
		})
	}
}

type failingCreds struct{ err error }

func (f failingCreds) Get(context.Context) (Credential, error) { return Credential{}, f.err }

// Specs that cannot work fail at once, naming the account and the field.
func TestAccountCredentialsSpecErrors(t *testing.T) {
	const ext = "marker-external-id"
	for _, tc := range []struct {
		name   string
		spec   AccountCredentialsSpec
		source Credentials
		field  string
	}{
		{"no method", AccountCredentialsSpec{Account: "a"}, jobSource(), "credentials: no method"},
		{"unknown method", AccountCredentialsSpec{Account: "a", Method: "magic"}, jobSource(), `unknown method "magic"`},
		{"role without arn", AccountCredentialsSpec{Account: "a", Method: MethodRAMRoleARN}, jobSource(), "role_arn"},
		{"malformed arn", AccountCredentialsSpec{Account: "a", Method: MethodRAMRoleARN, RoleARN: "arn:aws:iam::1:role/x"}, jobSource(), "role_arn"},
		{"bad external id", AccountCredentialsSpec{Account: "a", Method: MethodRAMRoleARN, RoleARN: roleBig, ExternalID: ext + " with spaces"}, jobSource(), "external_id"},
		{"bad session name", AccountCredentialsSpec{Account: "a", Method: MethodRAMRoleARN, RoleARN: roleBig, SessionName: "a b"}, jobSource(), "session_name"},
		{"duration too short", AccountCredentialsSpec{Account: "a", Method: MethodRAMRoleARN, RoleARN: roleBig, Duration: time.Minute}, jobSource(), "duration"},
		{"duration not whole seconds", AccountCredentialsSpec{Account: "a", Method: MethodRAMRoleARN, RoleARN: roleBig, Duration: time.Hour + time.Millisecond}, jobSource(), "duration"},
		{"http sts endpoint", AccountCredentialsSpec{Account: "a", Method: MethodRAMRoleARN, RoleARN: roleBig, STSEndpoint: "http://127.0.0.1:1"}, jobSource(), "sts_endpoint"},
		{"sts endpoint with a path", AccountCredentialsSpec{Account: "a", Method: MethodRAMRoleARN, RoleARN: roleBig, STSEndpoint: "https://sts.example.com/x"}, jobSource(), "sts_endpoint"},
		{"role without source", AccountCredentialsSpec{Account: "a", Method: MethodRAMRoleARN, RoleARN: roleBig}, nil, "credentials"},
		{"default without source", AccountCredentialsSpec{Account: "a", Method: MethodDefault}, nil, "credentials"},
		{"profile without name", AccountCredentialsSpec{Account: "a", Method: MethodProfile}, nil, "profile"},
		{"profile with a role", AccountCredentialsSpec{Account: "a", Method: MethodProfile, Profile: "p", RoleARN: roleBig}, nil, "role_arn"},
		{"default with external id", AccountCredentialsSpec{Account: "a", Method: MethodDefault, ExternalID: ext}, jobSource(), "external_id"},
		{"role with a profile", AccountCredentialsSpec{Account: "a", Method: MethodRAMRoleARN, RoleARN: roleBig, Profile: "p"}, jobSource(), "profile"},
		{"default account", AccountCredentialsSpec{Method: MethodRAMRoleARN}, jobSource(), `account "default": role_arn`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := AccountCredentials(tc.spec, tc.source)
			if err == nil || c != nil {
				t.Fatalf("AccountCredentials = %v, %v; want an error", c, err)
			}
			if !errors.Is(err, ErrNoCredentials) || Classify(err) != ClassCredentials {
				t.Fatalf("err %v: class %v", err, Classify(err))
			}
			msg := err.Error()
			if !strings.Contains(msg, `account "`) || !strings.Contains(msg, tc.field) {
				t.Fatalf("%q: want the account and %q", msg, tc.field)
			}
			if found := secretsIn(msg, testAKSecret, testToken, ext); len(found) > 0 {
				t.Fatalf("%q holds %q", msg, found)
			}
		})
	}
	// default returns the source itself.
	src := jobSource()
	if c, err := AccountCredentials(AccountCredentialsSpec{Account: "a", Method: MethodDefault}, src); err != nil || c != src {
		t.Fatalf("default: %v %v", c, err)
	}
	// A session name made from a long account name is cut to 64.
	long := strings.Repeat("a", 63)
	if _, err := AccountCredentials(AccountCredentialsSpec{Account: long, Method: MethodRAMRoleARN, RoleARN: roleBig}, src); err != nil {
		t.Fatalf("long account name: %v", err)
	}
}

// The profile method reads the named profile of the shared credentials
// file (ALIBABA_CLOUD_CREDENTIALS_FILE): its key reaches its account. A
// missing profile or file, or a line of the file it cannot parse, fails
// at once without quoting the file. Not parallel: t.Setenv.
func TestAccountProfile(t *testing.T) {
	sim, liveURL, _ := roleSim(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "credentials")
	if err := os.WriteFile(good, []byte("[default]\ntype = access_key\naccess_key_id = "+otherID+"\naccess_key_secret = "+otherSecret+
		"\n\n[prof]\ntype = access_key\naccess_key_id = "+profileID+"\naccess_key_secret = "+profileSecre+
		"\n\n[broken]\ntype = access_key\naccess_key_id = "+profileID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	const lineSecret = "NoDelimiterSecret0123" // a line without '=' is a parse error that quotes it
	if err := os.WriteFile(bad, []byte("[prof]\ntype = access_key\naccess_key_secret "+lineSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", good)
	t.Setenv("ALIBABA_CLOUD_PROFILE", "default") // must not override the name given

	c, err := assumeClient(t, AccountCredentialsSpec{Account: "prof", Method: MethodProfile, Profile: "prof"}, nil, liveURL)
	if err != nil {
		t.Fatalf("profile prof: %v", err)
	}
	if _, err := c.Add(context.Background(), testRequest()); err != nil {
		t.Fatal(err)
	}
	if _, ok := sim.ConfigIn("prof", testRequest().Domain); !ok {
		t.Fatal("not in account prof")
	}

	for _, tc := range []struct {
		name, file, profile, want string
	}{
		{"missing profile", good, "nope", "nope"},
		{"profile without a secret", good, "broken", "broken"},
		{"missing file", filepath.Join(dir, "absent"), "prof", "absent"},
		{"unparsable line", bad, "prof", "the line is not shown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", tc.file)
			_, err := AccountCredentials(AccountCredentialsSpec{Account: "prof", Method: MethodProfile, Profile: tc.profile}, nil)
			if !errors.Is(err, ErrNoCredentials) || Classify(err) != ClassCredentials {
				t.Fatalf("err = %v, want ErrNoCredentials", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `account "prof": profile: `) || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "ALIBABA_CLOUD_CREDENTIALS_FILE") {
				t.Fatalf("%q: want the account, the field and %q", msg, tc.want)
			}
			if found := secretsIn(msg, profileSecre, otherSecret, lineSecret); len(found) > 0 {
				t.Fatalf("%q holds %q", msg, found)
			}
		})
	}
}

// STS answers the simulator does not give: a refusal echoing its string
// to sign (which holds the job's token, encoded twice), throttling, a
// gateway's page. Refusals are ClassCredentials, the rest unavailable, and
// no text holds a secret.
func TestAccountAssumeRoleCannedAnswers(t *testing.T) {
	twice := percentEncode(percentEncode(testToken))
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   Class
		says   string
	}{
		{"signature refused, string to sign echoed", 400,
			`{"RequestId":"R1","HostId":"sts.aliyuncs.com","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3D` + testAKID + `%26SecurityToken%3D` + twice + `"}`,
			ClassCredentials, "SignatureDoesNotMatch (RequestId R1): Specified signature is not matched with our calculation."},
		{"throttled", 400, `{"RequestId":"R2","Code":"Throttling.User","Message":"Request was denied due to user flow control."}`,
			ClassCredentialsUnavailable, "Throttling.User"},
		{"internal error", 500, `{"RequestId":"R3","Code":"InternalError","Message":"oops"}`, ClassCredentialsUnavailable, "InternalError"},
		{"gateway page", 502, `<html>502 Bad Gateway SecurityToken=` + testToken + `</html>`, ClassCredentialsUnavailable, "without an error code"},
		{"unreadable 200", 200, `{"RequestId":"R4"`, ClassCredentialsUnavailable, "json.Unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := stsServer(answer(tc.status, tc.body, nil))
			defer ts.Close()
			creds, err := AccountCredentials(AccountCredentialsSpec{Account: "big", Method: MethodRAMRoleARN, RoleARN: roleBig, STSEndpoint: ts.URL}, jobSource())
			if err != nil {
				t.Fatal(err)
			}
			_, err = creds.Get(context.Background())
			if Classify(err) != tc.want || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v (class %v), want class %v saying %q", err, Classify(err), tc.want, tc.says)
			}
			if found := secretsIn(err.Error(), testAKSecret, testToken); len(found) > 0 || strings.Contains(err.Error(), "string to sign") {
				t.Fatalf("%q holds %q", err, found)
			}
		})
	}
}
