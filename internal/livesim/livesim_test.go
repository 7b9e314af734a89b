package livesim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSignV1PublishedVector(t *testing.T) {
	t.Parallel()
	// live-api.md's vector. Its parameter list omits SignatureMethod,
	// SignatureVersion and Version, which the published signature covers.
	p := url.Values{
		"AccessKeyId":      {"testid"},
		"Action":           {"DescribeLiveSnapshotConfig"},
		"Timestamp":        {"2017-06-14T09:51:14Z"},
		"SignatureNonce":   {"c2fe8fbb-2977-4414-8d39-348d02419c1c"},
		"Format":           {"XML"},
		"RegionId":         {"cn-shanghai"},
		"ServiceCode":      {"live"},
		"DomainName":       {"test.com"},
		"AppName":          {"test"},
		"SignatureMethod":  {"HMAC-SHA1"},
		"SignatureVersion": {"1.0"},
		"Version":          {"2016-11-01"},
	}
	if got, want := SignV1("GET", p, "testsecret"), "3I5a3myPjp8FXWT4rvxX5pKb/aw="; got != want {
		t.Fatalf("SignV1 = %q, want %q", got, want)
	}
	// The Signature parameter itself is not signed.
	p.Set("Signature", "whatever")
	if got := SignV1("GET", p, "testsecret"); got != "3I5a3myPjp8FXWT4rvxX5pKb/aw=" {
		t.Fatalf("SignV1 with Signature present = %q", got)
	}
}

func TestPercentEncode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a b":     "a%20b",
		"a*b":     "a%2Ab",
		"a~b-_.":  "a~b-_.",
		"a+b/c=d": "a%2Bb%2Fc%3Dd",
		"é":       "%C3%A9",
	} {
		if got := percentEncode(in); got != want {
			t.Errorf("percentEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSignatures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name     string
		opts     Options
		client   clientOpt
		wantKind string
		wantCode string
		wantSt   int
	}{
		{name: "v3 accepted", wantKind: "ok"},
		{name: "v1 accepted", client: clientOpt{v1: true}, wantKind: "ok"},
		{name: "v3 wrong secret", client: clientOpt{id: testID, secret: "WrongSecret0000"}, wantKind: "client", wantCode: "SignatureDoesNotMatch", wantSt: 400},
		{name: "v1 wrong secret", client: clientOpt{v1: true, id: testID, secret: "WrongSecret0000"}, wantKind: "client", wantCode: "SignatureDoesNotMatch", wantSt: 400},
		{name: "v3 unknown key id", client: clientOpt{id: "LTAIunknown", secret: testSecret}, wantKind: "client", wantCode: "InvalidAccessKeyId.NotFound", wantSt: 404},
		{name: "v1 unknown key id", client: clientOpt{v1: true, id: "LTAIunknown", secret: testSecret}, wantKind: "client", wantCode: "InvalidAccessKeyId.NotFound", wantSt: 404},
		{name: "v3 sts accepted", opts: Options{SecurityToken: testToken}, client: clientOpt{token: testToken}, wantKind: "ok"},
		{name: "v1 sts accepted", opts: Options{SecurityToken: testToken}, client: clientOpt{v1: true, token: testToken}, wantKind: "ok"},
		{name: "v3 sts missing", opts: Options{SecurityToken: testToken}, wantKind: "client", wantCode: "InvalidSecurityToken.Missing", wantSt: 400},
		{name: "v3 sts wrong", opts: Options{SecurityToken: testToken}, client: clientOpt{token: "STS.other"}, wantKind: "client", wantCode: "InvalidSecurityToken.MismatchWithAccessKey", wantSt: 400},
		{name: "v1 sts wrong", opts: Options{SecurityToken: testToken}, client: clientOpt{v1: true, token: "STS.other"}, wantKind: "client", wantCode: "InvalidSecurityToken.MismatchWithAccessKey", wantSt: 400},
		{name: "v3 sts token ignored when not required", client: clientOpt{token: "STS.any"}, wantKind: "ok"},
		{name: "v3 clock 20 min ahead", opts: Options{Now: func() time.Time { return time.Now().Add(20 * time.Minute) }}, wantKind: "client", wantCode: "InvalidTimeStamp.Expired", wantSt: 400},
		{name: "v1 clock 20 min behind", opts: Options{Now: func() time.Time { return time.Now().Add(-20 * time.Minute) }}, client: clientOpt{v1: true}, wantKind: "client", wantCode: "InvalidTimeStamp.Expired", wantSt: 400},
		{name: "v3 query altered after signing", client: clientOpt{rec: &recorder{mutate: func(r *http.Request) {
			q := r.URL.Query()
			q.Set("DomainName", "other.example.com")
			r.URL.RawQuery = q.Encode()
		}}}, wantKind: "client", wantCode: "SignatureDoesNotMatch", wantSt: 400},
		{name: "v3 signed header altered", client: clientOpt{rec: &recorder{mutate: func(r *http.Request) {
			r.Header["x-acs-date"] = []string{time.Now().UTC().Add(time.Minute).Format("2006-01-02T15:04:05Z")}
		}}}, wantKind: "client", wantCode: "SignatureDoesNotMatch", wantSt: 400},
		{name: "v3 body added after signing", client: clientOpt{rec: &recorder{mutate: func(r *http.Request) {
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader("a=b")), 3
		}}}, wantKind: "client", wantCode: "SignatureDoesNotMatch", wantSt: 400},
		{name: "v3 nonce replayed", client: clientOpt{rec: &recorder{replay: true}}, wantKind: "client", wantCode: "SignatureNonceUsed", wantSt: 400},
		{name: "v1 nonce replayed", client: clientOpt{v1: true, rec: &recorder{replay: true}}, wantKind: "client", wantCode: "SignatureNonceUsed", wantSt: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			c := e.client(t, tc.client)
			// A space in a value: the SDK sends '+', the simulator must
			// decode and re-encode it as %20 to verify.
			q := addQ("sig.example.com")
			q["RegionId"] = "cn shanghai*~"
			_, err := call(ctx, c, ActionAdd, q)
			got := classify(err)
			if got.kind != tc.wantKind || got.code != tc.wantCode || (tc.wantSt != 0 && got.status != tc.wantSt) {
				t.Fatalf("got %+v, want kind %s code %s status %d", got, tc.wantKind, tc.wantCode, tc.wantSt)
			}
			for _, secret := range []string{testSecret, "WrongSecret0000", goodKey, testToken} {
				if strings.Contains(got.msg, secret) {
					t.Fatalf("error message leaks a secret: %q", got.msg)
				}
			}
			// A replayed request's first copy was applied.
			wantApplied := tc.wantKind == "ok" || tc.wantCode == "SignatureNonceUsed"
			if _, applied := e.sim.Config("sig.example.com"); applied != wantApplied {
				t.Fatalf("config applied = %v", applied)
			}
			log := e.sim.Log()
			last := log[len(log)-1]
			if last.Code != tc.wantCode || last.Action != ActionAdd || last.Domain == "" || last.RequestID == "" {
				t.Fatalf("last log entry %+v", last)
			}
		})
	}
}

func TestRawSignatureErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	fixed := url.Values{"Action": {ActionDescribe}, "DomainName": {"raw.example.com"}, "SignatureNonce": {"fixed-nonce-1"}}
	old := time.Now().Add(-16 * time.Minute).UTC().Format("2006-01-02T15:04:05Z")
	tests := []struct {
		name     string
		params   url.Values
		secret   string
		wantSt   int
		wantCode string
	}{
		{"first use of nonce", fixed, testSecret, 200, ""},
		{"nonce replay", fixed, testSecret, 400, "SignatureNonceUsed"},
		{"expired timestamp", url.Values{"Action": {ActionDescribe}, "DomainName": {"raw.example.com"}, "Timestamp": {old}}, testSecret, 400, "InvalidTimeStamp.Expired"},
		{"bad timestamp", url.Values{"Action": {ActionDescribe}, "DomainName": {"raw.example.com"}, "Timestamp": {"yesterday"}}, testSecret, 400, "InvalidTimeStamp.Format"},
		{"wrong signature method", url.Values{"Action": {ActionDescribe}, "DomainName": {"raw.example.com"}, "SignatureMethod": {"HMAC-SHA256"}}, testSecret, 400, "IncompleteSignature"},
		{"bad signature keeps key secret", url.Values{"Action": {ActionAdd}, "DomainName": {"raw.example.com"}, "NotifyUrl": {"http://a.example.com/"}, "NotifyAuthKey": {goodKey}}, "nope", 400, "SignatureDoesNotMatch"},
		{"unknown action", url.Values{"Action": {"DescribeLiveStreamsOnlineList"}, "DomainName": {"raw.example.com"}}, testSecret, 400, "InvalidAction.NotFound"},
		{"admin path as action", url.Values{"Action": {"_sim/log"}}, testSecret, 400, "InvalidAction.NotFound"},
		{"wrong version", url.Values{"Action": {ActionDescribe}, "DomainName": {"raw.example.com"}, "Version": {"2014-11-11"}}, testSecret, 400, "InvalidVersion"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _, eb := rawV1(t, e, tc.secret, tc.params)
			if st != tc.wantSt || eb.Code != tc.wantCode {
				t.Fatalf("got %d %q (%s), want %d %q", st, eb.Code, eb.Message, tc.wantSt, tc.wantCode)
			}
			if eb.RequestID == "" || (tc.wantCode != "" && (eb.HostID == "" || eb.Recommend == "")) {
				t.Fatalf("incomplete body %+v", eb)
			}
			if strings.Contains(eb.Message, goodKey) || strings.Contains(eb.Message, testSecret) {
				t.Fatalf("message leaks a secret: %q", eb.Message)
			}
		})
	}

	// Unsigned and half-signed requests.
	for _, tc := range []struct {
		name, authz string
		want        string
	}{
		{"no signature at all", "", "MissingSignature"},
		{"incomplete authorization", "ACS3-HMAC-SHA256 Credential=" + testID, "IncompleteSignature"},
		{"other algorithm", "ACS3-HMAC-SM3 Credential=" + testID + ",SignedHeaders=host,Signature=00", "IncompleteSignature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.ts.URL+"/?Action="+ActionDescribe+"&DomainName=x.example.com", nil)
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
			}
			resp, err := sharedHC.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb errorBody
			_ = json.NewDecoder(resp.Body).Decode(&eb)
			if resp.StatusCode != 400 || eb.Code != tc.want {
				t.Fatalf("got %d %q, want 400 %q", resp.StatusCode, eb.Code, tc.want)
			}
		})
	}
}

func TestOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, v1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v1=%v", v1), func(t *testing.T) {
			e := newEnv(t, Options{})
			e.sim.PutConfig("seeded.example.com", Config{NotifyURL: "http://old.example.com/cb"})
			c := e.client(t, clientOpt{v1: v1})
			const d = "ops.example.com"
			steps := []struct {
				name     string
				action   string
				q        map[string]string
				wantSt   int
				wantCode string
				wantCfg  *Config // nil: no config afterwards
			}{
				{"describe missing", ActionDescribe, map[string]string{"DomainName": d}, 200, "", nil},
				{"update missing", ActionUpdate, map[string]string{"DomainName": d, "NotifyUrl": "http://x.example.com/"}, 400, "ConfigNotFound", nil},
				{"add", ActionAdd, addQ(d), 200, "", &Config{d, "https://cb.example.com/snap", true, goodKey}},
				{"add duplicate", ActionAdd, addQ(d), 409, "ConfigAlreadyExists", &Config{d, "https://cb.example.com/snap", true, goodKey}},
				{"update url only", ActionUpdate, map[string]string{"DomainName": d, "NotifyUrl": "http://new.example.com/cb?a=1&b=2"}, 200, "", &Config{d, "http://new.example.com/cb?a=1&b=2", true, goodKey}},
				{"update auth off", ActionUpdate, map[string]string{"DomainName": d, "NotifyReqAuth": "no"}, 200, "", &Config{d, "http://new.example.com/cb?a=1&b=2", false, goodKey}},
				{"update bad key", ActionUpdate, map[string]string{"DomainName": d, "NotifyAuthKey": "short"}, 400, "MalformedParam", &Config{d, "http://new.example.com/cb?a=1&b=2", false, goodKey}},
				{"describe", ActionDescribe, map[string]string{"DomainName": d}, 200, "", &Config{d, "http://new.example.com/cb?a=1&b=2", false, goodKey}},
				{"delete", ActionDelete, map[string]string{"DomainName": d}, 200, "", nil},
				{"delete missing", ActionDelete, map[string]string{"DomainName": d}, 200, "", nil},
				{"add again", ActionAdd, map[string]string{"DomainName": d, "NotifyUrl": "http://z.example.com/"}, 200, "", &Config{d, "http://z.example.com/", false, ""}},
				{"update seeded needs key", ActionUpdate, map[string]string{"DomainName": "seeded.example.com", "NotifyReqAuth": "yes"}, 400, "MissingParam", &Config{d, "http://z.example.com/", false, ""}},
				{"add seeded", ActionAdd, addQ("seeded.example.com"), 409, "ConfigAlreadyExists", &Config{d, "http://z.example.com/", false, ""}},
				{"describe no domain", ActionDescribe, map[string]string{}, 400, "MissingParam", &Config{d, "http://z.example.com/", false, ""}},
				{"delete no domain", ActionDelete, map[string]string{"RegionId": "cn-shanghai"}, 400, "MissingParam", &Config{d, "http://z.example.com/", false, ""}},
			}
			for _, st := range steps {
				body, err := call(ctx, c, st.action, st.q)
				got := classify(err)
				if got.status != st.wantSt || got.code != st.wantCode {
					t.Fatalf("%s: got %+v, want %d %q", st.name, got, st.wantSt, st.wantCode)
				}
				if err == nil {
					if rid, _ := body["RequestId"].(string); len(rid) != 36 {
						t.Fatalf("%s: RequestId %q", st.name, rid)
					}
				}
				if st.name == "describe" {
					want := map[string]any{"DomainName": d, "NotifyUrl": "http://new.example.com/cb?a=1&b=2", "NotifyReqAuth": "no", "NotifyAuthKey": goodKey}
					for k, v := range want {
						if body[k] != v {
							t.Fatalf("describe %s = %v, want %v", k, body[k], v)
						}
					}
				}
				if st.name == "describe missing" {
					for _, k := range []string{"DomainName", "NotifyUrl", "NotifyReqAuth", "NotifyAuthKey"} {
						if body[k] != "" {
							t.Fatalf("describe missing: %s = %v, want empty", k, body[k])
						}
					}
				}
				cfg, ok := e.sim.Config(d)
				if (st.wantCfg != nil) != ok || (ok && cfg != *st.wantCfg) {
					t.Fatalf("%s: config %v %v, want %v", st.name, cfg, ok, st.wantCfg)
				}
			}
			if n := e.sim.SuccessfulAdds(d); n != 2 {
				t.Fatalf("SuccessfulAdds = %d, want 2", n)
			}
			if n := e.sim.SuccessfulAdds("seeded.example.com"); n != 0 {
				t.Fatalf("SuccessfulAdds(seeded) = %d, want 0", n)
			}
			applied := 0
			for _, en := range e.sim.Log() {
				if en.Applied {
					applied++
				}
			}
			if applied != 5 { // add, 2 updates, delete, add again
				t.Fatalf("applied entries = %d, want 5", applied)
			}
		})
	}
}

func TestParamsInFormBody(t *testing.T) {
	t.Parallel()
	for _, v1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v1=%v", v1), func(t *testing.T) {
			e := newEnv(t, Options{})
			c := e.client(t, clientOpt{v1: v1})
			q := addQ("body.example.com")
			q["RegionId"] = "cn shanghai"
			if _, err := callWith(context.Background(), c, ActionAdd, q, true); err != nil {
				t.Fatal(err)
			}
			if cfg, ok := e.sim.Config("body.example.com"); !ok || cfg.AuthKey != goodKey {
				t.Fatalf("config %v %v", cfg, ok)
			}
		})
	}
}

func TestConflictStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ConflictStatus: 400})
	e.sim.PutConfig("c.example.com", Config{NotifyURL: "http://a.example.com/"})
	_, err := call(context.Background(), e.client(t, clientOpt{}), ActionAdd, addQ("c.example.com"))
	if got := classify(err); got.status != 400 || got.code != "ConfigAlreadyExists" {
		t.Fatalf("got %+v", got)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	long := "https://cb.example.com/" + strings.Repeat("a", 501-len("https://cb.example.com/"))
	max := long[:500]
	tests := []struct {
		name     string
		mod      func(map[string]string)
		wantCode string
	}{
		{"valid", func(map[string]string) {}, ""},
		{"url 500 chars", func(q map[string]string) { q["NotifyUrl"] = max }, ""},
		{"url 501 chars", func(q map[string]string) { q["NotifyUrl"] = long }, "MalformedParam"},
		{"url missing", func(q map[string]string) { delete(q, "NotifyUrl") }, "MissingParam"},
		{"url empty", func(q map[string]string) { q["NotifyUrl"] = "" }, "MissingParam"},
		{"url ftp", func(q map[string]string) { q["NotifyUrl"] = "ftp://cb.example.com/x" }, "MalformedParam"},
		{"url not a url", func(q map[string]string) { q["NotifyUrl"] = "cb.example.com/x" }, "MalformedParam"},
		{"domain missing", func(q map[string]string) { delete(q, "DomainName") }, "MissingParam"},
		{"key 15 chars", func(q map[string]string) { q["NotifyAuthKey"] = strings.Repeat("k", 15) }, "MalformedParam"},
		{"key 16 chars", func(q map[string]string) { q["NotifyAuthKey"] = strings.Repeat("k", 16) }, ""},
		{"key 32 chars", func(q map[string]string) { q["NotifyAuthKey"] = strings.Repeat("K9", 16) }, ""},
		{"key 33 chars", func(q map[string]string) { q["NotifyAuthKey"] = strings.Repeat("k", 33) }, "MalformedParam"},
		{"key not alnum", func(q map[string]string) { q["NotifyAuthKey"] = "abcdEFGH1234567-" }, "MalformedParam"},
		{"key with space", func(q map[string]string) { q["NotifyAuthKey"] = "abcdEFGH 1234567" }, "MalformedParam"},
		{"req auth without key", func(q map[string]string) { delete(q, "NotifyAuthKey") }, "MissingParam"},
		{"req auth no without key", func(q map[string]string) { q["NotifyReqAuth"] = "no"; delete(q, "NotifyAuthKey") }, ""},
		{"req auth maybe", func(q map[string]string) { q["NotifyReqAuth"] = "maybe" }, "MalformedParam"},
	}
	e := newEnv(t, Options{})
	c := e.client(t, clientOpt{})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := fmt.Sprintf("v%d.example.com", i)
			q := addQ(d)
			tc.mod(q)
			_, err := call(context.Background(), c, ActionAdd, q)
			got := classify(err)
			wantSt := 200
			if tc.wantCode != "" {
				wantSt = 400
			}
			if got.code != tc.wantCode || got.status != wantSt {
				t.Fatalf("got %+v, want %d %q", got, wantSt, tc.wantCode)
			}
			if strings.Contains(got.msg, q["NotifyAuthKey"]) && q["NotifyAuthKey"] != "" {
				t.Fatalf("message echoes the key: %q", got.msg)
			}
			if _, ok := e.sim.Config(d); ok != (tc.wantCode == "") {
				t.Fatalf("applied = %v", ok)
			}
		})
	}
}

func TestThrottling(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, Options{Limit: 3, RetryAfterHeader: true, Now: clock.Now})
	rec := &recorder{}
	c := e.client(t, clientOpt{rec: rec})
	ctx := context.Background()
	n := 0
	add := func() outcome {
		n++
		_, err := call(ctx, c, ActionAdd, addQ(fmt.Sprintf("t%d.example.com", n)))
		return classify(err)
	}
	steps := []struct {
		advance    time.Duration
		action     string
		wantKind   string
		retryAfter int64
	}{
		{0, ActionAdd, "ok", 0},
		{100 * time.Millisecond, ActionAdd, "ok", 0},
		{100 * time.Millisecond, ActionAdd, "ok", 0},
		{0, ActionAdd, "throttling", 1000 - 200},
		{0, ActionDescribe, "ok", 0}, // the limit is per operation
		{400 * time.Millisecond, ActionAdd, "throttling", 400},
		{399*time.Millisecond + 500*time.Microsecond, ActionAdd, "throttling", 1}, // 0.5 ms rounds up to 1
		{500 * time.Microsecond, ActionAdd, "ok", 0},                              // t0+1s: the first left the window
		{0, ActionAdd, "throttling", 100},
		{100 * time.Millisecond, ActionAdd, "ok", 0},
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		var got outcome
		if st.action == ActionAdd {
			got = add()
		} else {
			_, err := call(ctx, c, st.action, map[string]string{"DomainName": "t1.example.com"})
			got = classify(err)
		}
		if got.kind != st.wantKind {
			t.Fatalf("step %d: got %+v, want %s", i, got, st.wantKind)
		}
		if st.wantKind == "throttling" {
			if got.code != "Throttling.User" || got.status != 400 || got.retryAfter != st.retryAfter {
				t.Fatalf("step %d: got %+v, want Throttling.User retryAfter %d", i, got, st.retryAfter)
			}
			if h := rec.lastHeaders().Get("x-acs-retry-after"); h != fmt.Sprint(st.retryAfter) {
				t.Fatalf("step %d: x-acs-retry-after %q", i, h)
			}
		}
	}
	s := e.sim.Stats()
	if s.Throttled != 4 || s.ByFault[FaultThrottled] != 4 || s.Total != len(steps) {
		t.Fatalf("stats %+v", s)
	}
	var adds []Entry
	for _, en := range e.sim.Log() {
		if en.Action == ActionAdd && en.Fault == "" {
			adds = append(adds, en)
		}
	}
	if m := MaxInWindow(adds, time.Second); m != 3 {
		t.Fatalf("accepted adds in a 1s window = %d, want 3", m)
	}
	// [200ms, 1200ms) holds 8 arrivals, throttled ones included.
	if m := e.sim.MaxInWindow(time.Second); m != 8 {
		t.Fatalf("all requests in a 1s window = %d, want 8", m)
	}

	// Without RetryAfterHeader there is no hint.
	e2 := newEnv(t, Options{Limit: 1, Now: clock.Now})
	rec2 := &recorder{}
	c2 := e2.client(t, clientOpt{rec: rec2})
	_, _ = call(ctx, c2, ActionDelete, map[string]string{"DomainName": "a.example.com"})
	_, err := call(ctx, c2, ActionDelete, map[string]string{"DomainName": "a.example.com"})
	if got := classify(err); got.kind != "throttling" || got.retryAfter != 0 || rec2.lastHeaders().Get("x-acs-retry-after") != "" {
		t.Fatalf("got %+v, headers %v", got, rec2.lastHeaders())
	}
}

// TestThrottlingCountsRejected: with ThrottleCountsRejected a throttled
// request counts in the window too, so a client that keeps sending over
// the limit stays throttled until it slows down.
func TestThrottlingCountsRejected(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, Options{Limit: 2, RetryAfterHeader: true, ThrottleCountsRejected: true, Now: clock.Now})
	c := e.client(t, clientOpt{})
	ctx := context.Background()
	n := 0
	type step struct {
		advance    time.Duration
		wantKind   string
		retryAfter int64
	}
	for i, st := range []step{
		{0, "ok", 0},
		{300 * time.Millisecond, "ok", 0},
		{300 * time.Millisecond, "throttling", 400}, // t0+600: t0, t0+300 in the window
		{500 * time.Millisecond, "throttling", 200}, // t0+1100: t0+300 and the rejected t0+600 count
		{300 * time.Millisecond, "throttling", 200}, // t0+1400: the rejected t0+600 and t0+1100 count
		{1100 * time.Millisecond, "ok", 0},          // t0+2500: every counted request left the window
	} {
		clock.Advance(st.advance)
		n++
		_, err := call(ctx, c, ActionAdd, addQ(fmt.Sprintf("r%d.example.com", n)))
		got := classify(err)
		if got.kind != st.wantKind || st.wantKind == "throttling" && got.retryAfter != st.retryAfter {
			t.Fatalf("step %d: got %+v, want %s retryAfter %d", i, got, st.wantKind, st.retryAfter)
		}
	}
	// Without it, the rejected requests leave the window free: the same
	// arrivals at t0+1100 and t0+1400 are accepted.
	clock2 := &fakeClock{t: time.Now()}
	e2 := newEnv(t, Options{Limit: 2, Now: clock2.Now})
	c2 := e2.client(t, clientOpt{})
	for i, st := range []struct {
		advance  time.Duration
		wantKind string
	}{{0, "ok"}, {300 * time.Millisecond, "ok"}, {300 * time.Millisecond, "throttling"},
		{500 * time.Millisecond, "ok"}, {300 * time.Millisecond, "ok"}} {
		clock2.Advance(st.advance)
		n++
		_, err := call(ctx, c2, ActionAdd, addQ(fmt.Sprintf("r%d.example.com", n)))
		if got := classify(err); got.kind != st.wantKind {
			t.Fatalf("accepted-only step %d: got %+v, want %s", i, got, st.wantKind)
		}
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name        string
		faults      Faults
		ctxTimeout  time.Duration
		wantKind    string
		wantFault   string
		wantApplied bool
	}{
		{"server error", Faults{ServerError: 1}, 0, "server", FaultServerError, false},
		{"reset", Faults{Reset: 1}, 0, "transport", FaultReset, false},
		{"hang until client gives up", Faults{Hang: 1}, 50 * time.Millisecond, "transport", FaultHang, false},
		{"lost answer", Faults{LostAnswer: 1}, 0, "transport", FaultLostAnswer, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{Faults: tc.faults, Seed: 1})
			c := e.client(t, clientOpt{})
			ctx := context.Background()
			if tc.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxTimeout)
				defer cancel()
			}
			_, err := call(ctx, c, ActionAdd, addQ("f.example.com"))
			got := classify(err)
			if got.kind != tc.wantKind {
				t.Fatalf("got %+v, want %s", got, tc.wantKind)
			}
			if got.kind == "server" && !(got.code == "InternalError" && got.status == 500 || got.code == "ServiceUnavailable" && got.status == 503) {
				t.Fatalf("server error %+v", got)
			}
			e.stop() // barrier: every handler returned
			log := e.sim.Log()
			if len(log) != 1 {
				t.Fatalf("log %+v", log)
			}
			en := log[0]
			wantSt := 0
			if got.kind == "server" {
				wantSt = got.status
			}
			if en.Fault != tc.wantFault || en.Applied != tc.wantApplied || en.Status != wantSt {
				t.Fatalf("entry %+v", en)
			}
			_, ok := e.sim.Config("f.example.com")
			if ok != tc.wantApplied || e.sim.SuccessfulAdds("f.example.com") != map[bool]int{true: 1}[tc.wantApplied] {
				t.Fatalf("config present %v, adds %d", ok, e.sim.SuccessfulAdds("f.example.com"))
			}
		})
	}
}

func TestHangReleasedByClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Faults: Faults{Hang: 1}})
	c := e.client(t, clientOpt{})
	done := make(chan error, 1)
	go func() {
		_, err := call(context.Background(), c, ActionAdd, addQ("h.example.com"))
		done <- err
	}()
	e.sim.Close() // releases the hang whether it started already or not
	if got := classify(<-done); got.kind != "transport" {
		t.Fatalf("got %+v", got)
	}
	e.stop()
	if l := e.sim.Log(); len(l) != 1 || l[0].Fault != FaultHang || l[0].Status != 0 || l[0].Applied {
		t.Fatalf("log %+v", l)
	}
}

func TestLatencyClientGone(t *testing.T) {
	// The client gives up during a long simulated latency: the backend still
	// applies the Add, as a real one would.
	e := newEnv(t, Options{Latency: Latency{Median: time.Hour}})
	c := e.client(t, clientOpt{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := call(ctx, c, ActionAdd, addQ("slow.example.com"))
	if got := classify(err); got.kind != "transport" {
		t.Fatalf("got %+v", got)
	}
	// Wait for the handler (which returns once it sees the client gone)
	// without Close, which would cut the latency short.
	e.ts.Close()
	l := e.sim.Log()
	if len(l) != 1 || l[0].Fault != FaultClientGone || !l[0].Applied || l[0].Status != 0 {
		t.Fatalf("log %+v", l)
	}
	if e.sim.SuccessfulAdds("slow.example.com") != 1 {
		t.Fatal("add not counted")
	}
}

func TestLatencyDistribution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		lat              Latency
		wantMed, wantP99 time.Duration
	}{
		{"lognormal", Latency{Median: 20 * time.Millisecond, P99: 200 * time.Millisecond}, 20 * time.Millisecond, 200 * time.Millisecond},
		{"fixed", Latency{Median: 5 * time.Millisecond, P99: 5 * time.Millisecond}, 5 * time.Millisecond, 5 * time.Millisecond},
		{"fixed when p99 below", Latency{Median: 5 * time.Millisecond, P99: time.Millisecond}, 5 * time.Millisecond, 5 * time.Millisecond},
		{"none", Latency{}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{AccessKeyID: "a", AccessKeySecret: "b", Latency: tc.lat, Seed: 42})
			const n = 20000
			ds := make([]time.Duration, n)
			for i := range ds {
				d := s.admit(authInfo{ts: time.Now(), nonce: fmt.Sprint(i)}, ActionDescribe, Version, "x", "id", s.now())
				if d.err != nil {
					t.Fatal(d.err)
				}
				ds[i] = d.delay
			}
			slices.Sort(ds)
			med, p99 := ds[n/2], ds[n*99/100]
			within := func(got, want time.Duration) bool {
				return float64(got) >= 0.9*float64(want) && float64(got) <= 1.1*float64(want)
			}
			if !within(med, tc.wantMed) || !within(p99, tc.wantP99) {
				t.Fatalf("median %v p99 %v, want %v %v", med, p99, tc.wantMed, tc.wantP99)
			}
		})
	}
}

func TestForceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		forced   ForcedError
		wantKind string
		calls    int // how many forced answers before success
	}{
		{"forbidden ram always", ForcedError{Status: 403, Code: "Forbidden.RAM", Message: "User not authorized to operate on the specified resource."}, "client", -1},
		{"malformed once", ForcedError{Status: 400, Code: "MalformedParam", Message: "bad"}, "client", 1},
		{"internal error twice", ForcedError{Status: 500, Code: "InternalError", Message: "boom"}, "server", 2},
		{"throttling twice", ForcedError{Status: 400, Code: "Throttling", Message: "slow down"}, "throttling", 2},
		{"invalid domain", ForcedError{Status: 400, Code: "InvalidDomain.NotFound", Message: "The domain does not exist."}, "client", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.forced
			if tc.calls > 0 {
				f.Times = tc.calls
			}
			e := newEnv(t, Options{ForceErrors: map[string]ForcedError{"x.example.com": f}, Faults: Faults{}, Limit: 100})
			c := e.client(t, clientOpt{})
			// Other domains are unaffected.
			if _, err := call(context.Background(), c, ActionAdd, addQ("y.example.com")); err != nil {
				t.Fatal(err)
			}
			rounds := tc.calls
			if rounds < 0 {
				rounds = 3
			}
			for i := 0; i < rounds; i++ {
				_, err := call(context.Background(), c, ActionAdd, addQ("x.example.com"))
				got := classify(err)
				if got.kind != tc.wantKind || got.code != f.Code || got.status != f.Status {
					t.Fatalf("call %d: got %+v", i, got)
				}
			}
			_, err := call(context.Background(), c, ActionAdd, addQ("x.example.com"))
			if (err == nil) != (tc.calls > 0) {
				t.Fatalf("after forced answers: %v", err)
			}
			st := e.sim.Stats()
			if tc.calls < 0 {
				rounds++ // the last call was forced too
			}
			if st.ByFault[FaultForced] != rounds {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestMaxInWindow(t *testing.T) {
	t.Parallel()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms ...int) []Entry {
		var es []Entry
		for _, m := range ms {
			es = append(es, Entry{Time: base.Add(time.Duration(m) * time.Millisecond)})
		}
		return es
	}
	tests := []struct {
		name    string
		entries []Entry
		window  time.Duration
		want    int
	}{
		{"empty", nil, time.Second, 0},
		{"one", at(0), time.Second, 1},
		{"half-open excludes end", at(0, 1000), time.Second, 1},
		{"just inside", at(0, 999), time.Second, 2},
		{"burst later", at(0, 500, 1200, 1300, 1400, 2199), time.Second, 4},
		{"unsorted input", at(1400, 0, 1300, 500, 2199, 1200), time.Second, 4},
		{"same instant", at(5, 5, 5, 5), time.Millisecond, 4},
		{"sliding not fixed buckets", at(900, 950, 1000, 1050, 1100), 300 * time.Millisecond, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := MaxInWindow(tc.entries, tc.window); got != tc.want {
				t.Fatalf("MaxInWindow = %d, want %d", got, tc.want)
			}
			s := New(Options{})
			s.log = append(s.log, tc.entries...)
			if got := s.MaxInWindow(tc.window); got != tc.want {
				t.Fatalf("(*Server).MaxInWindow = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestFaultSequenceDeterministic(t *testing.T) {
	t.Parallel()
	run := func(seed int64) []string {
		e := newEnv(t, Options{Seed: seed, Faults: Faults{ServerError: 0.25, Reset: 0.15, LostAnswer: 0.15}})
		c := e.client(t, clientOpt{})
		for i := 0; i < 40; i++ {
			_, _ = call(context.Background(), c, ActionAdd, addQ(fmt.Sprintf("d%d.example.com", i)))
		}
		e.stop()
		var seq []string
		for _, en := range e.sim.Log() {
			seq = append(seq, fmt.Sprintf("%s/%d/%s/%v", en.Fault, en.Status, en.Code, en.Applied))
		}
		return seq
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different sequences:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("different seeds gave the same sequence %v", a)
	}
	kinds := map[string]bool{}
	for _, s := range a {
		kinds[strings.SplitN(s, "/", 2)[0]] = true
	}
	if len(kinds) != 4 {
		t.Fatalf("expected all of none/server_error/reset/lost_answer in 40 draws, got %v", kinds)
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	const limit = 40
	e := newEnv(t, Options{Limit: limit, RetryAfterHeader: true, Seed: 3, Faults: Faults{ServerError: 0.1, Reset: 0.05, LostAnswer: 0.1}})
	const workers, per = 8, 60
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.client(t, clientOpt{v1: w%2 == 1})
			for i := 0; i < per; i++ {
				d := fmt.Sprintf("c%d.example.com", (w*per+i)%100) // overlapping domains
				action := []string{ActionAdd, ActionAdd, ActionDescribe, ActionUpdate}[i%4]
				_, _ = call(context.Background(), c, action, addQ(d))
			}
		}()
	}
	wg.Add(1)
	go func() { // admin reads race with the API
		defer wg.Done()
		for i := 0; i < 20; i++ {
			_ = e.sim.Stats()
			_ = e.sim.Configs()
			resp, err := sharedHC.Get(e.ts.URL + "/_sim/stats")
			if err == nil {
				resp.Body.Close()
			}
		}
	}()
	wg.Wait()
	e.stop()
	log := e.sim.Log()
	if len(log) != workers*per {
		t.Fatalf("log has %d entries, want %d", len(log), workers*per)
	}
	seen := map[string]bool{}
	for i, en := range log {
		if en.Seq != int64(i+1) || seen[en.RequestID] {
			t.Fatalf("entry %d: %+v", i, en)
		}
		seen[en.RequestID] = true
	}
	for _, action := range []string{ActionAdd, ActionDescribe, ActionUpdate} {
		var accepted []Entry
		for _, en := range log {
			if en.Action == action && en.Fault != FaultThrottled {
				accepted = append(accepted, en)
			}
		}
		if m := MaxInWindow(accepted, time.Second); m > limit {
			t.Fatalf("%s: %d accepted in a 1s window, limit %d", action, m, limit)
		}
	}
	for d := range e.sim.Configs() {
		if n := e.sim.SuccessfulAdds(d); n != 1 {
			t.Fatalf("%s added %d times", d, n)
		}
	}
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	c := e.client(t, clientOpt{})
	if _, err := call(context.Background(), c, ActionAdd, addQ("a.example.com")); err != nil {
		t.Fatal(err)
	}
	_, _ = call(context.Background(), c, ActionAdd, addQ("a.example.com"))

	get := func(path string) (*http.Response, string) {
		resp, err := sharedHC.Get(e.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			sb.WriteString(sc.Text())
			sb.WriteByte('\n')
		}
		return resp, sb.String()
	}
	_, logText := get("/_sim/log")
	var entries []Entry
	for _, line := range strings.Split(strings.TrimSpace(logText), "\n") {
		var en Entry
		if err := json.Unmarshal([]byte(line), &en); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		entries = append(entries, en)
	}
	if len(entries) != 2 || entries[1].Code != "ConfigAlreadyExists" || !entries[0].Applied {
		t.Fatalf("log %+v", entries)
	}
	_, stateText := get("/_sim/state")
	var state struct {
		Configs map[string]struct {
			NotifyURL     string `json:"notify_url"`
			AuthKeySHA256 string `json:"auth_key_sha256"`
		} `json:"configs"`
		SuccessfulAdds map[string]int `json:"successful_adds"`
	}
	if err := json.Unmarshal([]byte(stateText), &state); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stateText, goodKey) || state.SuccessfulAdds["a.example.com"] != 1 ||
		state.Configs["a.example.com"].NotifyURL == "" || len(state.Configs["a.example.com"].AuthKeySHA256) != 64 {
		t.Fatalf("state %s", stateText)
	}
	_, statsText := get("/_sim/stats")
	var st Stats
	if err := json.Unmarshal([]byte(statsText), &st); err != nil || st.Total != 2 || st.ByCode["ConfigAlreadyExists"] != 1 {
		t.Fatalf("stats %s %v", statsText, err)
	}
	resp, err := sharedHC.Post(e.ts.URL+"/_sim/log", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /_sim/log: %d", resp.StatusCode)
	}
	if len(e.sim.Log()) != 2 {
		t.Fatal("admin requests were logged")
	}
	cfg, _ := e.sim.Config("a.example.com")
	if s := fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg); strings.Contains(s, goodKey) {
		t.Fatalf("Config formatting leaks the key: %s", s)
	}
}

func BenchmarkAdd(b *testing.B) {
	e := newEnv(b, Options{Limit: 0})
	var mu sync.Mutex
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := e.client(b, clientOpt{})
		for pb.Next() {
			mu.Lock()
			n++
			d := fmt.Sprintf("bench%d.example.com", n)
			mu.Unlock()
			if _, err := call(context.Background(), c, ActionAdd, addQ(d)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkServeHTTP measures the simulator's own cost per request (v1
// signing by the benchmark included), without network or SDK.
func BenchmarkServeHTTP(b *testing.B) {
	s := New(Options{AccessKeyID: testID, AccessKeySecret: testSecret})
	ts := time.Now().UTC().Format("2006-01-02T15:04:05Z")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p := url.Values{
			"Action": {ActionAdd}, "Version": {Version}, "AccessKeyId": {testID},
			"SignatureMethod": {"HMAC-SHA1"}, "SignatureVersion": {"1.0"},
			"SignatureNonce": {fmt.Sprint(i)}, "Timestamp": {ts},
			"DomainName": {fmt.Sprintf("b%d.example.com", i)}, "NotifyUrl": {"https://cb.example.com/x"},
		}
		p.Set("Signature", SignV1("POST", p, testSecret))
		req, _ := http.NewRequest("POST", "/?"+p.Encode(), nil)
		w := &discardWriter{h: http.Header{}}
		s.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }
