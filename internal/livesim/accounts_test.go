package livesim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/model"
)

// Keys of the accounts of these tests (the default account uses
// testID/testSecret).
const (
	bigID, bigSecret     = "LTAIbig0001", "BigSecret0123456789"
	smallID, smallSecret = "LTAIsmall0001", "SmallSecret0123456789"
)

// stepClock is a clock for Options.Now that moves forward by step on every
// reading (step 0: a frozen clock moved by Advance only).
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

func (c *stepClock) Set(step, advance time.Duration) {
	c.mu.Lock()
	c.step = step
	c.t = c.t.Add(advance)
	c.mu.Unlock()
}

// liveClient returns the job's own client (internal/live), signing with
// the given key, for the env's server.
func liveClient(t *testing.T, e *env, id, secret, token, sigAlg string) *live.Client {
	t.Helper()
	c, err := live.New(context.Background(), live.Options{
		Endpoint:           e.ts.URL,
		Region:             "cn-shanghai",
		RequestTimeout:     5 * time.Second,
		Credentials:        live.StaticCredentials(id, secret, token),
		SignatureAlgorithm: sigAlg,
		MaxConns:           4,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func liveAdd(c *live.Client, domain, notifyURL string) error {
	_, err := c.Add(context.Background(), live.Request{Domain: domain, NotifyURL: notifyURL, ReqAuth: true, AuthKey: model.Secret(goodKey)})
	return err
}

func twoAccounts(bigLimit, smallLimit int) []Account {
	return []Account{
		{Name: "big", Keys: []AccessKey{{ID: bigID, Secret: bigSecret}}, Limit: bigLimit},
		{Name: "small", Keys: []AccessKey{{ID: smallID, Secret: smallSecret}}, Limit: smallLimit},
	}
}

// accepted returns the entries that passed throttling and were answered
// 200.
func accepted(es []Entry) []Entry {
	var out []Entry
	for _, e := range es {
		if e.Status == http.StatusOK && e.Fault == FaultNone {
			out = append(out, e)
		}
	}
	return out
}

// TestAccountsLimitsAreSeparate drives two accounts (limits 30 and 10)
// concurrently over HTTP with real signatures: each account's accepted
// requests stay within its own limit, and one account being throttled
// does not throttle the other.
func TestAccountsLimitsAreSeparate(t *testing.T) {
	// Every arrival is 1ms after the previous one: the 240 requests of the
	// concurrent phase span 240ms, inside one 1s window whatever their
	// interleaving, so each account accepts exactly its limit.
	clock := &stepClock{t: time.Now(), step: time.Millisecond}
	e := newEnv(t, Options{Accounts: twoAccounts(30, 10), Now: clock.Now, RetryAfterHeader: true})
	type tally struct {
		mu            sync.Mutex
		ok, throttled int
		other         []error
	}
	tallies := map[string]*tally{"big": {}, "small": {}}
	keys := map[string][2]string{"big": {bigID, bigSecret}, "small": {smallID, smallSecret}}
	const workers, per = 3, 40
	var wg sync.WaitGroup
	for name, k := range keys {
		for w := range workers {
			c := liveClient(t, e, k[0], k[1], "", []string{"", "v2"}[w%2])
			wg.Add(1)
			go func() {
				defer wg.Done()
				tl := tallies[name]
				for i := range per {
					// The same domain names in both accounts.
					err := liveAdd(c, fmt.Sprintf("d%d-%d.example.com", w, i), "https://cb.example.com/"+name)
					tl.mu.Lock()
					switch {
					case err == nil:
						tl.ok++
					case live.Classify(err) == live.ClassThrottled && live.ErrorCode(err) == "Throttling.User":
						tl.throttled++
					default:
						tl.other = append(tl.other, err)
					}
					tl.mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	limits := map[string]int{"big": 30, "small": 10}
	for name, limit := range limits {
		tl := tallies[name]
		if tl.ok != limit || tl.throttled != workers*per-limit || len(tl.other) != 0 {
			t.Fatalf("%s: %d ok, %d throttled, other errors %v; want %d ok", name, tl.ok, tl.throttled, tl.other, limit)
		}
		st := e.sim.StatsFor(name)
		if st.Total != workers*per || st.Applied != limit || st.Throttled != workers*per-limit || st.ByAccount[name] != workers*per {
			t.Fatalf("%s: stats %+v", name, st)
		}
		if n := len(e.sim.ConfigsIn(name)); n != limit {
			t.Fatalf("%s holds %d configs, want %d", name, n, limit)
		}
		if m := MaxInWindow(accepted(e.sim.LogFor(name)), time.Second); m != limit {
			t.Fatalf("%s: %d accepted in a 1s window, want its limit %d", name, m, limit)
		}
	}
	// One shared budget would have accepted 30 in all.
	if m := MaxInWindow(accepted(e.sim.Log()), time.Second); m != 40 {
		t.Fatalf("both accounts: %d accepted in a 1s window, want 30+10", m)
	}
	if st := e.sim.Stats(); st.ByAccount["big"] != workers*per || st.ByAccount["small"] != workers*per || st.Total != 2*workers*per {
		t.Fatalf("stats %+v", st)
	}

	// Sequentially at one frozen instant, every earlier request out of
	// the window: the small account is throttled after 10, the big one
	// still gets its 30 at the same instant, and the small one's next
	// second is its own again.
	clock.Set(0, 2*time.Second)
	small := liveClient(t, e, smallID, smallSecret, "", "")
	big := liveClient(t, e, bigID, bigSecret, "", "")
	for i := range 10 {
		if err := liveAdd(small, fmt.Sprintf("s%d.example.com", i), "https://cb.example.com/small"); err != nil {
			t.Fatalf("small %d: %v", i, err)
		}
	}
	err := liveAdd(small, "s10.example.com", "https://cb.example.com/small")
	var ae *live.APIError
	if !errors.As(err, &ae) || ae.Code != "Throttling.User" || ae.RetryAfter != time.Second {
		t.Fatalf("small's 11th: %v", err)
	}
	for i := range 30 {
		if err := liveAdd(big, fmt.Sprintf("b%d.example.com", i), "https://cb.example.com/big"); err != nil {
			t.Fatalf("big %d while small is throttled: %v", i, err)
		}
	}
	if err := liveAdd(big, "b30.example.com", "https://cb.example.com/big"); live.Classify(err) != live.ClassThrottled {
		t.Fatalf("big's 31st: %v", err)
	}
	clock.Set(0, time.Second)
	if err := liveAdd(small, "s10.example.com", "https://cb.example.com/small"); err != nil {
		t.Fatalf("small a second later: %v", err)
	}
	// The concurrent phase put one arrival in each millisecond; the frozen
	// instant holds 11 of small's and 31 of big's.
	for name, want := range map[string]int{"small": 11, "big": 31} {
		if m := e.sim.MaxInWindowFor(name, time.Millisecond); m != want {
			t.Fatalf("MaxInWindowFor(%s, 1ms) = %d, want %d", name, m, want)
		}
	}
	if m := e.sim.MaxInWindow(time.Millisecond); m != 42 {
		t.Fatalf("MaxInWindow(1ms) = %d, want 42", m)
	}
	if m := e.sim.MaxInWindowFor(DefaultAccount, time.Second); m != 0 {
		t.Fatalf("MaxInWindowFor(default) = %d, want 0", m)
	}
}

// TestAccountsKeysShareTheLimit: the keys of one account draw on one
// limit (live-api.md: shared by every AccessKey of the account), each key
// signs with its own secret, and a key's security token is its own.
func TestAccountsKeysShareTheLimit(t *testing.T) {
	clock := &stepClock{t: time.Now()}
	e := newEnv(t, Options{Now: clock.Now, RetryAfterHeader: true, Limit: 1, Accounts: []Account{{
		Name: "two-keys", Limit: 2, Keys: []AccessKey{
			{ID: "LTAIk1", Secret: "secret-one"},
			{ID: "LTAIk2", Secret: "secret-two", SecurityToken: testToken},
		},
	}}})
	k1 := liveClient(t, e, "LTAIk1", "secret-one", "", "")
	k2 := liveClient(t, e, "LTAIk2", "secret-two", testToken, "v2")
	if err := liveAdd(k1, "a.example.com", "https://cb.example.com/"); err != nil {
		t.Fatal(err)
	}
	if err := liveAdd(k2, "b.example.com", "https://cb.example.com/"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*live.Client{k1, k2} {
		if err := liveAdd(c, "c.example.com", "https://cb.example.com/"); live.ErrorCode(err) != "Throttling.User" {
			t.Fatalf("third Add of the account: %v", err)
		}
	}
	// The throttling hint names the account's limit, not Options.Limit.
	resp, body := rawV1Key(t, e, "LTAIk1", "secret-one", "d.example.com")
	if got := resp.Header.Get("x-ratelimit-user-api"); !strings.HasPrefix(got, "Limit:2,") || !strings.Contains(body, "Throttling.User") {
		t.Fatalf("x-ratelimit-user-api %q, body %s", got, body)
	}
	// Both keys wrote the same account's configs.
	for _, d := range []string{"a.example.com", "b.example.com"} {
		if _, ok := e.sim.ConfigIn("two-keys", d); !ok {
			t.Fatalf("%s missing from two-keys", d)
		}
	}
	clock.Set(0, time.Second)
	wrongSecret := liveClient(t, e, "LTAIk2", "secret-one", testToken, "")
	noToken := liveClient(t, e, "LTAIk2", "secret-two", "", "")
	tokenOnK1 := liveClient(t, e, "LTAIk1", "secret-one", "STS.other", "")
	for name, tc := range map[string]struct {
		c    *live.Client
		code string
	}{
		"another key's secret": {wrongSecret, "SignatureDoesNotMatch"},
		"missing token":        {noToken, "InvalidSecurityToken.Missing"},
		"token on a plain key": {tokenOnK1, ""}, // ignored, as with Options.SecurityToken empty
	} {
		if err := liveAdd(tc.c, "e-"+strings.ReplaceAll(name, " ", "-")+".example.com", "https://cb.example.com/"); live.ErrorCode(err) != tc.code {
			t.Fatalf("%s: %v, want code %q", name, err, tc.code)
		}
	}
	for _, en := range e.sim.Log() {
		if en.Account != "two-keys" {
			t.Fatalf("entry %+v not attributed to two-keys", en)
		}
	}
}

// rawV1Key sends a v1-signed Add with the given key and returns the answer.
func rawV1Key(t *testing.T, e *env, id, secret, domain string) (*http.Response, string) {
	t.Helper()
	q := url.Values{
		"Action": {ActionAdd}, "Version": {Version}, "Format": {"JSON"}, "AccessKeyId": {id},
		"SignatureMethod": {"HMAC-SHA1"}, "SignatureVersion": {"1.0"},
		"SignatureNonce": {fmt.Sprintf("raw-%d", nonceSeq.Add(1))},
		"Timestamp":      {time.Now().UTC().Format("2006-01-02T15:04:05Z")},
		"DomainName":     {domain}, "NotifyUrl": {"https://cb.example.com/"},
	}
	q.Set("Signature", SignV1("POST", q, secret))
	resp, err := sharedHC.Post(e.ts.URL+"/?"+q.Encode(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestAccountsStateIsSeparate: the same domain name in two accounts is two
// configs, each account's requests and the *In methods see its own, and
// the default account is Config's.
func TestAccountsStateIsSeparate(t *testing.T) {
	e := newEnv(t, Options{Accounts: twoAccounts(0, 0)})
	const d = "same.example.com"
	big := liveClient(t, e, bigID, bigSecret, "", "")
	small := liveClient(t, e, smallID, smallSecret, "", "v2")
	def := liveClient(t, e, testID, testSecret, "", "")
	if err := liveAdd(big, d, "https://cb.example.com/big"); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sim.Config(d); ok {
		t.Fatal("big's config is visible as the default account's")
	}
	if err := liveAdd(small, d, "https://cb.example.com/small"); err != nil {
		t.Fatalf("Add of the same domain in another account: %v", err)
	}
	if err := liveAdd(big, d, "https://cb.example.com/again"); live.Classify(err) != live.ClassDuplicate {
		t.Fatalf("second Add in big: %v", err)
	}
	for c, want := range map[*live.Client]string{big: "https://cb.example.com/big", small: "https://cb.example.com/small"} {
		cfg, _, err := c.Describe(context.Background(), d, "")
		if err != nil || !cfg.Exists || cfg.NotifyURL != want {
			t.Fatalf("Describe: %+v %v, want %s", cfg, err, want)
		}
	}
	if _, err := small.Delete(context.Background(), d, ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sim.ConfigIn("small", d); ok {
		t.Fatal("small's config survived its Delete")
	}
	if cfg, ok := e.sim.ConfigIn("big", d); !ok || cfg.NotifyURL != "https://cb.example.com/big" {
		t.Fatalf("small's Delete touched big's config: %v %v", cfg, ok)
	}
	if e.sim.SuccessfulAddsIn("big", d) != 1 || e.sim.SuccessfulAddsIn("small", d) != 1 || e.sim.SuccessfulAdds(d) != 0 {
		t.Fatal("successful adds not counted per account")
	}

	// Out-of-band changes per account; the default account is Config's.
	if err := e.sim.PutConfigIn("small", d, Config{NotifyURL: "https://cb.example.com/seeded"}); err != nil {
		t.Fatal(err)
	}
	if cfg, _, err := small.Describe(context.Background(), d, ""); err != nil || cfg.NotifyURL != "https://cb.example.com/seeded" {
		t.Fatalf("seeded config: %+v %v", cfg, err)
	}
	if err := liveAdd(def, d, "https://cb.example.com/default"); err != nil {
		t.Fatal(err)
	}
	if cfg, ok := e.sim.Config(d); !ok || cfg.NotifyURL != "https://cb.example.com/default" || len(e.sim.Configs()) != 1 {
		t.Fatalf("default account: %v %v", cfg, ok)
	}
	if err := e.sim.DeleteConfigIn("big", d); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sim.ConfigIn("big", d); ok {
		t.Fatal("DeleteConfigIn left the config")
	}
	if _, ok := e.sim.Config(d); !ok {
		t.Fatal("DeleteConfigIn(big) deleted the default account's config")
	}
	if err := e.sim.PutConfigIn("nope", d, Config{}); !errors.Is(err, ErrUnknownAccount) {
		t.Fatalf("PutConfigIn(unknown) = %v", err)
	}
	if err := e.sim.DeleteConfigIn("nope", d); !errors.Is(err, ErrUnknownAccount) {
		t.Fatalf("DeleteConfigIn(unknown) = %v", err)
	}
	if _, ok := e.sim.ConfigIn("nope", d); ok || e.sim.ConfigsIn("nope") != nil || e.sim.SuccessfulAddsIn("nope", d) != 0 {
		t.Fatal("an unknown account has state")
	}
	if got := strings.Join(e.sim.Accounts(), ","); got != "default,big,small" {
		t.Fatalf("Accounts() = %s", got)
	}
}

// TestAccountsAdminEndpoints: the log, state and stats endpoints name the
// account, filter by ?account=, and never show a secret.
func TestAccountsAdminEndpoints(t *testing.T) {
	e := newEnv(t, Options{Accounts: twoAccounts(0, 7)})
	const d = "same.example.com"
	if err := liveAdd(liveClient(t, e, bigID, bigSecret, "", ""), d, "https://cb.example.com/big"); err != nil {
		t.Fatal(err)
	}
	small := liveClient(t, e, smallID, smallSecret, "", "")
	if err := liveAdd(small, d, "https://cb.example.com/small"); err != nil {
		t.Fatal(err)
	}
	_ = liveAdd(small, d, "https://cb.example.com/small") // ConfigAlreadyExists
	_ = liveAdd(liveClient(t, e, "LTAIunknown", "x", "", ""), d, "https://cb.example.com/")

	get := func(path string) (int, string) {
		resp, err := sharedHC.Get(e.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, secret := range []string{bigSecret, smallSecret, testSecret, goodKey} {
			if strings.Contains(string(b), secret) {
				t.Fatalf("%s shows a secret: %s", path, b)
			}
		}
		return resp.StatusCode, string(b)
	}
	entries := func(path string) []Entry {
		_, text := get(path)
		var es []Entry
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			if line == "" {
				continue
			}
			var en Entry
			if err := json.Unmarshal([]byte(line), &en); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			es = append(es, en)
		}
		return es
	}
	all := entries("/_sim/log")
	if len(all) != 4 || all[0].Account != "big" || all[1].Account != "small" || all[2].Account != "small" || all[3].Account != "" {
		t.Fatalf("log %+v", all)
	}
	if es := entries("/_sim/log?account=small"); len(es) != 2 || es[1].Code != "ConfigAlreadyExists" {
		t.Fatalf("small's log %+v", es)
	}
	if es := entries("/_sim/log?account="); len(es) != 1 || es[0].Code != "InvalidAccessKeyId.NotFound" {
		t.Fatalf("unattributed log %+v", es)
	}

	var state struct {
		Account string `json:"account"`
		Configs map[string]struct {
			NotifyURL string `json:"notify_url"`
		} `json:"configs"`
		Accounts map[string]struct {
			Configs map[string]struct {
				NotifyURL string `json:"notify_url"`
			} `json:"configs"`
			SuccessfulAdds map[string]int `json:"successful_adds"`
			AccessKeyIDs   []string       `json:"access_key_ids"`
			Limit          int            `json:"limit"`
		} `json:"accounts"`
	}
	_, text := get("/_sim/state")
	if err := json.Unmarshal([]byte(text), &state); err != nil {
		t.Fatal(err)
	}
	if state.Account != DefaultAccount || len(state.Configs) != 0 || len(state.Accounts) != 3 ||
		state.Accounts["big"].Configs[d].NotifyURL != "https://cb.example.com/big" ||
		state.Accounts["small"].Configs[d].NotifyURL != "https://cb.example.com/small" ||
		state.Accounts["small"].SuccessfulAdds[d] != 1 || state.Accounts["small"].Limit != 7 ||
		strings.Join(state.Accounts["small"].AccessKeyIDs, ",") != smallID ||
		strings.Join(state.Accounts[DefaultAccount].AccessKeyIDs, ",") != testID {
		t.Fatalf("state %s", text)
	}
	_, text = get("/_sim/state?account=big")
	state.Configs = nil
	if err := json.Unmarshal([]byte(text), &state); err != nil || state.Account != "big" || state.Configs[d].NotifyURL != "https://cb.example.com/big" {
		t.Fatalf("big's state %s %v", text, err)
	}
	if code, _ := get("/_sim/state?account=nope"); code != http.StatusNotFound {
		t.Fatalf("state of an unknown account: %d", code)
	}

	var st Stats
	_, text = get("/_sim/stats")
	if err := json.Unmarshal([]byte(text), &st); err != nil || st.Total != 4 || st.ByAccount["big"] != 1 || st.ByAccount["small"] != 2 || st.ByAccount[""] != 1 {
		t.Fatalf("stats %s %v", text, err)
	}
	st = Stats{}
	_, text = get("/_sim/stats?account=small")
	if err := json.Unmarshal([]byte(text), &st); err != nil || st.Total != 2 || st.Applied != 1 || st.ByCode["ConfigAlreadyExists"] != 1 {
		t.Fatalf("small's stats %s %v", text, err)
	}
}

// TestAccountsDisabled: a disabled account's keys, and a disabled key of
// an enabled account, are refused with InvalidAccessKeyId.Inactive (a
// credentials error for the job) and change nothing, while the other keys
// work.
func TestAccountsDisabled(t *testing.T) {
	accounts := twoAccounts(0, 0)
	accounts[1].Disabled = true
	accounts[0].Keys = append(accounts[0].Keys, AccessKey{ID: "LTAIbigOld", Secret: "old-secret", Disabled: true})
	e := newEnv(t, Options{Accounts: accounts})
	const d = "same.example.com"
	for _, sig := range []string{"", "v2"} {
		for _, k := range [][2]string{{smallID, smallSecret}, {"LTAIbigOld", "old-secret"}} {
			err := liveAdd(liveClient(t, e, k[0], k[1], "", sig), d, "https://cb.example.com/")
			var ae *live.APIError
			if !errors.As(err, &ae) || ae.Code != "InvalidAccessKeyId.Inactive" || live.Classify(err) != live.ClassCredentials {
				t.Fatalf("%s (sig %q): %v (class %v)", k[0], sig, err, live.Classify(err))
			}
		}
	}
	// Refused before the signature: a wrong secret gets the same answer.
	if err := liveAdd(liveClient(t, e, smallID, "wrong", "", ""), d, "https://cb.example.com/"); live.ErrorCode(err) != "InvalidAccessKeyId.Inactive" {
		t.Fatalf("wrong secret of a disabled account: %v", err)
	}
	if err := liveAdd(liveClient(t, e, bigID, bigSecret, "", ""), d, "https://cb.example.com/"); err != nil {
		t.Fatalf("the enabled key: %v", err)
	}
	if len(e.sim.ConfigsIn("small")) != 0 || e.sim.StatsFor("small").ByCode["InvalidAccessKeyId.Inactive"] != 3 ||
		e.sim.StatsFor("big").ByCode["InvalidAccessKeyId.Inactive"] != 2 || e.sim.StatsFor("big").Applied != 1 {
		t.Fatalf("small %+v, big %+v", e.sim.StatsFor("small"), e.sim.StatsFor("big"))
	}
}

// TestAccountsForcedErrorsAndFaults: ForceErrors and DomainFaults of an
// account apply to its requests only.
func TestAccountsForcedErrorsAndFaults(t *testing.T) {
	accounts := twoAccounts(0, 0)
	accounts[0].ForceErrors = map[string]ForcedError{"x.example.com": {Status: 403, Code: "Forbidden.RAM", Message: "no"}}
	accounts[0].DomainFaults = map[string][]DomainFault{"y.example.com": {{Fault: FaultServerError}}}
	e := newEnv(t, Options{Accounts: accounts})
	big := liveClient(t, e, bigID, bigSecret, "", "")
	small := liveClient(t, e, smallID, smallSecret, "", "")
	def := liveClient(t, e, testID, testSecret, "", "")
	if err := liveAdd(big, "x.example.com", "https://cb.example.com/"); live.ErrorCode(err) != "Forbidden.RAM" {
		t.Fatalf("big x: %v", err)
	}
	if err := liveAdd(big, "y.example.com", "https://cb.example.com/"); live.Classify(err) != live.ClassTransient {
		t.Fatalf("big y: %v", err)
	}
	for _, c := range []*live.Client{small, def} {
		for _, d := range []string{"x.example.com", "y.example.com"} {
			if err := liveAdd(c, d, "https://cb.example.com/"); err != nil {
				t.Fatalf("%s outside big: %v", d, err)
			}
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	key := func(id string) []AccessKey { return []AccessKey{{ID: id, Secret: "s"}} }
	tests := []struct {
		name string
		o    Options
		want string // "" = valid
	}{
		{"no accounts", Options{}, ""},
		{"default key and two accounts", Options{AccessKeyID: "d", Accounts: []Account{{Name: "a", Keys: key("a1")}, {Name: "b", Keys: key("b1")}}}, ""},
		{"no name", Options{Accounts: []Account{{Keys: key("a1")}}}, "no name"},
		{"reserved name", Options{Accounts: []Account{{Name: DefaultAccount, Keys: key("a1")}}}, "reserved"},
		{"name twice", Options{Accounts: []Account{{Name: "a", Keys: key("a1")}, {Name: "a", Keys: key("a2")}}}, "twice"},
		{"no keys", Options{Accounts: []Account{{Name: "a"}}}, "no AccessKey"},
		{"key without secret", Options{Accounts: []Account{{Name: "a", Keys: []AccessKey{{ID: "a1"}}}}}, "needs an id and a secret"},
		{"key id twice", Options{Accounts: []Account{{Name: "a", Keys: key("k")}, {Name: "b", Keys: key("k")}}}, "used by accounts"},
		{"default key id reused", Options{AccessKeyID: "k", Accounts: []Account{{Name: "a", Keys: key("k")}}}, "used by accounts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
			defer func() {
				if r := recover(); (r != nil) != (tc.want != "") {
					t.Fatalf("New panicked: %v", r)
				}
			}()
			New(tc.o)
		})
	}
}
