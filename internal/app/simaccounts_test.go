package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
	"github.com/reconcile/reconcile/internal/logging"
)

const simAccountsJSON = `[
  {"name": "a", "access_key_id": "LTAIa", "access_key_secret": "secret-of-a-0001", "limit": 30},
  {"name": "b", "access_key_id": "LTAIb", "access_key_secret": "secret-of-b-0001", "limit": 10, "throttle_counts_rejected": true,
   "keys": [{"access_key_id": "LTAIb2", "access_key_secret": "secret-of-b-0002", "security_token": "STS.b2token", "disabled": true}]},
  {"name": "c", "keys": [{"access_key_id": "LTAIc", "access_key_secret": "secret-of-c-0001"}], "disabled": true}
]`

func writeAccountsFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "accounts.json")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadSimAccounts(t *testing.T) {
	got, err := ReadSimAccounts(writeAccountsFile(t, simAccountsJSON), 25, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []livesim.Account{
		{Name: "a", Limit: 30, Keys: []livesim.AccessKey{{ID: "LTAIa", Secret: "secret-of-a-0001"}}},
		{Name: "b", Limit: 10, ThrottleCountsRejected: true, Keys: []livesim.AccessKey{
			{ID: "LTAIb", Secret: "secret-of-b-0001"},
			{ID: "LTAIb2", Secret: "secret-of-b-0002", SecurityToken: "STS.b2token", Disabled: true}}},
		{Name: "c", Limit: 25, Disabled: true, Keys: []livesim.AccessKey{{ID: "LTAIc", Secret: "secret-of-c-0001"}}},
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("got  %s\nwant %s", gj, wj)
	}
	if s := strings.Join(SimAccountSecrets(got), ","); s != "secret-of-a-0001,secret-of-b-0001,secret-of-b-0002,STS.b2token,secret-of-c-0001" {
		t.Fatalf("secrets %s", s)
	}

	for name, tc := range map[string]struct{ text, want string }{
		"not an array":    {`{"name": "a"}`, "JSON array"},
		"bad JSON":        {`[{"name": "a", "access_key_secret": "hunter2hunter2`, "JSON array"},
		"unknown field":   {`[{"name": "a", "access_key_id": "k", "access_key_secret": "hunter2hunter2", "limt": 3}]`, `unknown field "limt"`},
		"trailing data":   {`[] []`, "data after"},
		"negative limit":  {`[{"name": "a", "access_key_id": "k", "access_key_secret": "hunter2hunter2", "limit": -1}]`, `"a": limit must be 0`},
		"no key":          {`[{"name": "a", "limit": 3}]`, "no AccessKey"},
		"reserved name":   {`[{"name": "default", "access_key_id": "k", "access_key_secret": "hunter2hunter2"}]`, "reserved"},
		"key id twice":    {`[{"name": "a", "access_key_id": "k", "access_key_secret": "hunter2hunter2"}, {"name": "b", "access_key_id": "k", "access_key_secret": "hunter2hunter2"}]`, "used by accounts"},
		"secret, no id":   {`[{"name": "a", "access_key_secret": "hunter2hunter2"}]`, "needs an id and a secret"},
		"name twice":      {`[{"name": "a", "access_key_id": "k", "access_key_secret": "hunter2hunter2"}, {"name": "a", "access_key_id": "j", "access_key_secret": "hunter2hunter2"}]`, "twice"},
		"type of a field": {`[{"name": "a", "access_key_id": "k", "access_key_secret": "hunter2hunter2", "limit": "30"}]`, "limit"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadSimAccounts(writeAccountsFile(t, tc.text), 30, false)
			if !errors.Is(err, config.ErrUsage) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--accounts-file") {
				t.Fatalf("err = %v, want ErrUsage mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error quotes a secret: %v", err)
			}
		})
	}
	if _, err := ReadSimAccounts(filepath.Join(t.TempDir(), "missing.json"), 30, false); !errors.Is(err, config.ErrUsage) {
		t.Fatalf("missing file: %v", err)
	}
}

// signalWriter collects what is written and closes ready at the first
// write that contains mark.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	mark  string
	once  sync.Once
	ready chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.mark) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// runningSim is a `reconcile simulate` started by startSim.
type runningSim struct {
	endpoint string // as written to the address file
	out      *signalWriter
	stop     func() error // cancels Simulate and returns its error
}

// startSim runs Simulate with c (Listen and AddrFile set here) until stop,
// and returns once it listens.
func startSim(t *testing.T, c SimConfig) runningSim {
	t.Helper()
	c.Listen, c.AddrFile = "127.0.0.1:0", filepath.Join(t.TempDir(), "addr")
	out := &signalWriter{mark: "simulator listening", ready: make(chan struct{})}
	env := Env{Stdout: out, Stderr: out, Redactor: logging.NewRedactor(),
		Logger: logging.New(out, logging.Options{Format: "json", Level: "info"})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Simulate(ctx, c, env) }()
	select {
	case <-out.ready:
	case err := <-done:
		cancel()
		t.Fatalf("Simulate returned before listening: %v", err)
	}
	b, err := os.ReadFile(c.AddrFile)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return runningSim{endpoint: strings.TrimSpace(string(b)), out: out, stop: func() error { cancel(); return <-done }}
}

// TestSimulateServesAccounts: `reconcile simulate` with accounts from a
// file serves each account with its own keys and configs next to the
// default key, refuses a disabled account, and logs the accounts without
// their secrets.
func TestSimulateServesAccounts(t *testing.T) {
	accounts, err := ReadSimAccounts(writeAccountsFile(t, simAccountsJSON), 30, false)
	if err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, SimConfig{Options: livesim.Options{AccessKeyID: "LTAIdefault", AccessKeySecret: "secret-of-default",
		Limit: 30, Accounts: accounts}})
	endpoint, out := sim.endpoint, sim.out
	client := func(id, secret string) *live.Client {
		c, err := live.New(context.Background(), live.Options{Endpoint: endpoint, Region: "cn-shanghai", RequestTimeout: 5 * time.Second,
			Credentials: live.StaticCredentials(id, secret, "")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	add := func(c *live.Client, url string) error {
		_, err := c.Add(context.Background(), live.Request{Domain: "same.example.com", NotifyURL: url})
		return err
	}
	for _, k := range [][3]string{{"LTAIdefault", "secret-of-default", "d"}, {"LTAIa", "secret-of-a-0001", "a"}, {"LTAIb", "secret-of-b-0001", "b"}} {
		if err := add(client(k[0], k[1]), "https://cb.example.com/"+k[2]); err != nil {
			t.Fatalf("%s: %v", k[0], err)
		}
	}
	if err := add(client("LTAIc", "secret-of-c-0001"), "https://cb.example.com/c"); live.ErrorCode(err) != "InvalidAccessKeyId.Inactive" {
		t.Fatalf("disabled account: %v", err)
	}
	resp, err := http.Get(endpoint + "/_sim/state")
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Accounts map[string]struct {
			Configs map[string]struct {
				NotifyURL string `json:"notify_url"`
			} `json:"configs"`
		} `json:"accounts"`
	}
	err = json.NewDecoder(resp.Body).Decode(&state)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"default": "d", "a": "a", "b": "b"} {
		if got := state.Accounts[name].Configs["same.example.com"].NotifyURL; got != "https://cb.example.com/"+want {
			t.Fatalf("account %s holds %q", name, got)
		}
	}
	if n := len(state.Accounts["c"].Configs); n != 0 {
		t.Fatalf("the disabled account holds %d configs", n)
	}
	if err := sim.stop(); err != nil {
		t.Fatal(err)
	}
	logText := out.String()
	if !strings.Contains(logText, "a limit=30 keys=LTAIa; b limit=10 keys=LTAIb,LTAIb2(disabled) throttle_counts_rejected; c limit=30 keys=LTAIc disabled") {
		t.Fatalf("listening line does not describe the accounts: %s", logText)
	}
	for _, s := range append(SimAccountSecrets(accounts), "secret-of-default") {
		if strings.Contains(logText, s) {
			t.Fatalf("log shows secret %q: %s", s, logText)
		}
	}
}

// Accounts with a role: role_arn, external_id and trusted reach
// livesim.Account; an account may have a role and no key; the role
// settings are validated.
func TestReadSimAccountsRoles(t *testing.T) {
	got, err := ReadSimAccounts(writeAccountsFile(t, `[
  {"name": "a", "access_key_id": "LTAIa", "access_key_secret": "secret-of-a-0001"},
  {"name": "r", "role_arn": "acs:ram::1234567890:role/reconcile", "external_id": "ext-1", "trusted": ["LTAIa", "default"], "limit": 5}
]`), 30, false)
	if err != nil {
		t.Fatal(err)
	}
	r := got[1]
	if r.RoleARN != "acs:ram::1234567890:role/reconcile" || r.ExternalID != "ext-1" || strings.Join(r.Trusted, ",") != "LTAIa,default" || len(r.Keys) != 0 || r.Limit != 5 {
		t.Fatalf("role account %+v", r)
	}
	if d := describeSimAccounts(got); !strings.Contains(d, "r limit=5 keys= role=acs:ram::1234567890:role/reconcile external_id=required trusted=LTAIa,default") {
		t.Fatalf("describe: %s", d)
	}
	for name, tc := range map[string]struct{ text, want string }{
		"bad role arn":        {`[{"name": "r", "role_arn": "arn:aws:iam::1:role/x"}]`, "role_arn"},
		"unknown trusted":     {`[{"name": "r", "role_arn": "acs:ram::1:role/x", "trusted": ["LTAInobody"]}]`, `trusted entry "LTAInobody"`},
		"external id, no arn": {`[{"name": "r", "access_key_id": "k", "access_key_secret": "hunter2hunter2", "external_id": "e"}]`, "external_id needs a role_arn"},
		"role arn twice":      {`[{"name": "r", "role_arn": "acs:ram::1:role/x"}, {"name": "s", "role_arn": "acs:ram::1:role/x"}]`, "used by accounts"},
		"no key, no role":     {`[{"name": "r"}]`, "no AccessKey and no role_arn"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadSimAccounts(writeAccountsFile(t, tc.text), 30, false)
			if !errors.Is(err, config.ErrUsage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("err = %v, want ErrUsage mentioning %q", err, tc.want)
			}
		})
	}
}

// TestSimulateServesTLS: with TLSCAFile, `reconcile simulate` serves HTTPS
// with a certificate it writes to that file: a client that trusts the file
// (as SSL_CERT_FILE makes a job do) reaches it at the https:// address it
// writes to the address file, and one that does not is refused.
func TestSimulateServesTLS(t *testing.T) {
	t.Parallel()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	sim := startSim(t, SimConfig{TLSCAFile: caFile,
		Options: livesim.Options{AccessKeyID: "LTAIdefault", AccessKeySecret: "secret-of-default", Limit: 30}})
	endpoint := sim.endpoint
	if !strings.HasPrefix(endpoint, "https://127.0.0.1:") {
		t.Fatalf("address %q, want https://127.0.0.1:port", endpoint)
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("the CA file holds no certificate")
	}
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := trusting.Get(endpoint + HealthPath)
	if err != nil {
		t.Fatalf("a client trusting the CA file: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %d", resp.StatusCode)
	}
	untrusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	if _, err := untrusting.Get(endpoint + HealthPath); err == nil {
		t.Fatal("a client that does not trust the CA file was served")
	}
	if err := sim.stop(); err != nil {
		t.Fatal(err)
	}
}
