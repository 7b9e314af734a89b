package livesim

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"
)

// Log returns a copy of the request log in arrival order. Entries of
// requests still in flight have Status 0 and no Fault yet.
func (s *Server) Log() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Config returns the stored config of domain in the default account and
// whether one exists.
func (s *Server) Config(domain string) (cfg Config, ok bool) {
	return s.ConfigIn(DefaultAccount, domain)
}

// Configs returns a copy of every stored config of the default account,
// by domain.
func (s *Server) Configs() map[string]Config {
	return s.ConfigsIn(DefaultAccount)
}

// PutConfig stores cfg for domain in the default account (cfg.DomainName
// is set to domain) without a request: it pre-seeds state and is not
// logged nor counted in SuccessfulAdds.
func (s *Server) PutConfig(domain string, cfg Config) {
	_ = s.PutConfigIn(DefaultAccount, domain, cfg)
}

// DeleteConfig removes domain's config from the default account without a
// request (a change made out of band, e.g. in the console); it is not
// logged.
func (s *Server) DeleteConfig(domain string) {
	_ = s.DeleteConfigIn(DefaultAccount, domain)
}

// SuccessfulAdds returns how many Add requests created a config for domain
// in the default account, lost answers included (a config deleted and
// re-added counts twice).
func (s *Server) SuccessfulAdds(domain string) int {
	return s.SuccessfulAddsIn(DefaultAccount, domain)
}

// Accounts returns the names of every account: DefaultAccount first, then
// Options.Accounts in declaration order.
func (s *Server) Accounts() []string {
	return slices.Clone(s.accountNames)
}

// ConfigIn returns the stored config of domain in account and whether one
// exists (false for an unknown account).
func (s *Server) ConfigIn(account, domain string) (cfg Config, ok bool) {
	a := s.accounts[account]
	if a == nil {
		return Config{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, ok = a.configs[domain]
	return cfg, ok
}

// ConfigsIn returns a copy of every stored config of account, by domain;
// nil for an unknown account.
func (s *Server) ConfigsIn(account string) map[string]Config {
	a := s.accounts[account]
	if a == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(a.configs)
}

// PutConfigIn is PutConfig for account; it returns ErrUnknownAccount (and
// stores nothing) for an undeclared account.
func (s *Server) PutConfigIn(account, domain string, cfg Config) error {
	a := s.accounts[account]
	if a == nil {
		return fmt.Errorf("%w %q", ErrUnknownAccount, account)
	}
	cfg.DomainName = domain
	s.mu.Lock()
	a.configs[domain] = cfg
	s.mu.Unlock()
	return nil
}

// DeleteConfigIn is DeleteConfig for account; it returns
// ErrUnknownAccount for an undeclared account.
func (s *Server) DeleteConfigIn(account, domain string) error {
	a := s.accounts[account]
	if a == nil {
		return fmt.Errorf("%w %q", ErrUnknownAccount, account)
	}
	s.mu.Lock()
	delete(a.configs, domain)
	s.mu.Unlock()
	return nil
}

// SuccessfulAddsIn is SuccessfulAdds for account (0 for an unknown one).
func (s *Server) SuccessfulAddsIn(account, domain string) int {
	a := s.accounts[account]
	if a == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return a.adds[domain]
}

// LogFor returns a copy of the log entries whose Account is account, in
// arrival order; LogFor("") returns those that named no known key.
func (s *Server) LogFor(account string) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	for i := range s.log {
		if s.log[i].Account == account {
			out = append(out, s.log[i])
		}
	}
	return out
}

// Stats are counts over the request log.
type Stats struct {
	// Total is the number of API requests received.
	Total int `json:"total"`
	// ByAction counts requests per Action as sent.
	ByAction map[string]int `json:"by_action"`
	// ByStatus counts answers per HTTP status (0: no answer / in flight).
	ByStatus map[int]int `json:"by_status"`
	// ByCode counts error answers per code.
	ByCode map[string]int `json:"by_code"`
	// ByFault counts requests per non-empty Fault value.
	ByFault map[string]int `json:"by_fault"`
	// Throttled is ByFault["throttled"].
	Throttled int `json:"throttled"`
	// Applied counts requests that changed the state.
	Applied int `json:"applied"`
	// ByAccount counts requests per Entry.Account ("" for those that
	// named no known key).
	ByAccount map[string]int `json:"by_account"`
}

// Stats returns counts over the whole log.
func (s *Server) Stats() Stats {
	return s.stats(func(*Entry) bool { return true })
}

// StatsFor returns counts over the log entries of account (Entry.Account
// == account; "" for the requests that named no known key).
func (s *Server) StatsFor(account string) Stats {
	return s.stats(func(e *Entry) bool { return e.Account == account })
}

func (s *Server) stats(keep func(*Entry) bool) Stats {
	st := Stats{ByAction: map[string]int{}, ByStatus: map[int]int{}, ByCode: map[string]int{}, ByFault: map[string]int{}, ByAccount: map[string]int{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.log {
		e := &s.log[i]
		if !keep(e) {
			continue
		}
		st.Total++
		st.ByAccount[e.Account]++
		st.ByAction[e.Action]++
		st.ByStatus[e.Status]++
		if e.Code != "" {
			st.ByCode[e.Code]++
		}
		if e.Fault != "" {
			st.ByFault[e.Fault]++
		}
		if e.Applied {
			st.Applied++
		}
	}
	st.Throttled = st.ByFault[FaultThrottled]
	return st
}

// MaxInWindow returns the largest number of requests (all of them, rejected
// ones included) that arrived within any half-open window [t, t+window).
func (s *Server) MaxInWindow(window time.Duration) int {
	return MaxInWindow(s.Log(), window)
}

// MaxInWindowFor is MaxInWindow over the requests of account only (its
// rejected ones included): the most that arrived for it within any
// half-open window [t, t+window).
func (s *Server) MaxInWindowFor(account string, window time.Duration) int {
	return MaxInWindow(s.LogFor(account), window)
}

// MaxInWindow returns the largest number of entries whose Time lies within
// any half-open window [t, t+window), in any order of entries. Filter the
// entries first to count e.g. one Action or accepted requests only; it
// also serves logs read from GET /_sim/log.
func MaxInWindow(entries []Entry, window time.Duration) int {
	ts := make([]int64, len(entries))
	for i := range entries {
		ts[i] = entries[i].Time.UnixNano()
	}
	slices.Sort(ts)
	best, j := 0, 0
	for i := range ts {
		// The best window starts at an arrival: [ts[i], ts[i]+window).
		if j < i {
			j = i
		}
		for j < len(ts) && ts[j] < ts[i]+int64(window) {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// stateDoc is the JSON of GET /_sim/state: configs and successful_adds
// are the default account's (or, with ?account=NAME, that account's), and
// accounts holds every account's. Auth keys are not exposed in clear:
// each config carries the hex SHA-256 of its key instead; AccessKey
// secrets and security tokens never appear.
type stateDoc struct {
	Account        string                  `json:"account"`
	Configs        map[string]stateConfig  `json:"configs"`
	SuccessfulAdds map[string]int          `json:"successful_adds"`
	Accounts       map[string]accountState `json:"accounts"`
}

// accountState is one account in GET /_sim/state.
type accountState struct {
	Configs        map[string]stateConfig `json:"configs"`
	SuccessfulAdds map[string]int         `json:"successful_adds"`
	AccessKeyIDs   []string               `json:"access_key_ids"`
	Limit          int                    `json:"limit"`
	// ThrottleCountsRejected and Disabled are the account's settings;
	// keys disabled one by one are not listed.
	ThrottleCountsRejected bool `json:"throttle_counts_rejected"`
	Disabled               bool `json:"disabled"`
	// RoleARN is the account's role (Account.RoleARN), if any.
	RoleARN string `json:"role_arn,omitempty"`
}

// stateOf returns a's state for GET /_sim/state. Called with s.mu held.
func stateOf(a *account) accountState {
	st := accountState{
		Configs:                make(map[string]stateConfig, len(a.configs)),
		SuccessfulAdds:         maps.Clone(a.adds),
		AccessKeyIDs:           a.keyIDs,
		Limit:                  max(a.limit, 0),
		ThrottleCountsRejected: a.countRejected,
		Disabled:               a.disabled,
		RoleARN:                a.roleARN,
	}
	if st.AccessKeyIDs == nil {
		st.AccessKeyIDs = []string{}
	}
	for d, c := range a.configs {
		sc := stateConfig{Config: c}
		if c.AuthKey != "" {
			sum := sha256.Sum256([]byte(c.AuthKey))
			sc.AuthKeySHA256 = hex.EncodeToString(sum[:])
		}
		st.Configs[d] = sc
	}
	return st
}

type stateConfig struct {
	Config
	AuthKeySHA256 string `json:"auth_key_sha256,omitempty"`
}

// serveAdmin answers the unsigned admin endpoints. They are reached by path
// only, never by Action. Each takes an optional ?account=NAME: /_sim/log
// and /_sim/stats then cover that account's requests only (NAME may be
// empty: the requests that named no known key), /_sim/state puts that
// account's configs at the top level (404 for an unknown account), and
// /_sim/sts (the AssumeRole requests, STSLog) covers the requests that
// named that account's role.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	account, byAccount := q.Get("account"), q.Has("account")
	switch r.URL.Path {
	case "/_sim/log":
		var entries []Entry
		if byAccount {
			entries = s.LogFor(account)
		} else {
			entries = s.Log()
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriterSize(w, 64<<10)
		enc := json.NewEncoder(bw)
		for i := range entries {
			_ = enc.Encode(&entries[i])
		}
		_ = bw.Flush()
	case "/_sim/state":
		if !byAccount {
			account = DefaultAccount
		}
		if s.accounts[account] == nil {
			http.Error(w, "unknown account", http.StatusNotFound)
			return
		}
		doc := stateDoc{Account: account, Accounts: make(map[string]accountState, len(s.accounts))}
		s.mu.Lock()
		for name, a := range s.accounts {
			doc.Accounts[name] = stateOf(a)
		}
		s.mu.Unlock()
		doc.Configs, doc.SuccessfulAdds = doc.Accounts[account].Configs, doc.Accounts[account].SuccessfulAdds
		writeAdminJSON(w, doc)
	case "/_sim/sts":
		entries := s.STSLog()
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriterSize(w, 64<<10)
		enc := json.NewEncoder(bw)
		for i := range entries {
			if !byAccount || entries[i].Account == account {
				_ = enc.Encode(&entries[i])
			}
		}
		_ = bw.Flush()
	case "/_sim/stats":
		if byAccount {
			writeAdminJSON(w, s.StatsFor(account))
		} else {
			writeAdminJSON(w, s.Stats())
		}
	default:
		http.NotFound(w, r)
	}
}

func writeAdminJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
