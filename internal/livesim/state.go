package livesim

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// Config returns the stored config of domain and whether one exists.
func (s *Server) Config(domain string) (cfg Config, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, ok = s.configs[domain]
	return cfg, ok
}

// Configs returns a copy of every stored config, by domain.
func (s *Server) Configs() map[string]Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.configs)
}

// PutConfig stores cfg for domain (cfg.DomainName is set to domain) without
// a request: it pre-seeds state and is not logged nor counted in
// SuccessfulAdds.
func (s *Server) PutConfig(domain string, cfg Config) {
	cfg.DomainName = domain
	s.mu.Lock()
	s.configs[domain] = cfg
	s.mu.Unlock()
}

// DeleteConfig removes domain's config without a request (a change made
// out of band, e.g. in the console); it is not logged.
func (s *Server) DeleteConfig(domain string) {
	s.mu.Lock()
	delete(s.configs, domain)
	s.mu.Unlock()
}

// SuccessfulAdds returns how many Add requests created a config for domain,
// lost answers included (a config deleted and re-added counts twice).
func (s *Server) SuccessfulAdds(domain string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adds[domain]
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
}

// Stats returns counts over the whole log.
func (s *Server) Stats() Stats {
	st := Stats{ByAction: map[string]int{}, ByStatus: map[int]int{}, ByCode: map[string]int{}, ByFault: map[string]int{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.log {
		e := &s.log[i]
		st.Total++
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

// stateDoc is the JSON of GET /_sim/state. Auth keys are not exposed in
// clear: each config carries the hex SHA-256 of its key instead.
type stateDoc struct {
	Configs        map[string]stateConfig `json:"configs"`
	SuccessfulAdds map[string]int         `json:"successful_adds"`
}

type stateConfig struct {
	Config
	AuthKeySHA256 string `json:"auth_key_sha256,omitempty"`
}

// serveAdmin answers the unsigned admin endpoints. They are reached by path
// only, never by Action.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/_sim/log":
		entries := s.Log()
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriterSize(w, 64<<10)
		enc := json.NewEncoder(bw)
		for i := range entries {
			_ = enc.Encode(&entries[i])
		}
		_ = bw.Flush()
	case "/_sim/state":
		doc := stateDoc{Configs: map[string]stateConfig{}}
		s.mu.Lock()
		for d, c := range s.configs {
			sc := stateConfig{Config: c}
			if c.AuthKey != "" {
				sum := sha256.Sum256([]byte(c.AuthKey))
				sc.AuthKeySHA256 = hex.EncodeToString(sum[:])
			}
			doc.Configs[d] = sc
		}
		doc.SuccessfulAdds = maps.Clone(s.adds)
		s.mu.Unlock()
		writeAdminJSON(w, doc)
	case "/_sim/stats":
		writeAdminJSON(w, s.Stats())
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
