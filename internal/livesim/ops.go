package livesim

import (
	"net/http"
	"net/url"
	"unicode/utf8"
)

// result is the outcome of executing an operation.
type result struct {
	err      *apiErr
	applied  bool
	describe *Config // Describe's answer; nil = no config (empty fields)
}

func (r result) code() string {
	if r.err != nil {
		return r.err.code
	}
	return ""
}

func missing(name string) *apiErr {
	return &apiErr{400, "MissingParam", name + " is mandatory for this action."}
}

func malformed(name, rule string) *apiErr {
	return &apiErr{400, "MalformedParam", "Specified parameter " + name + " is not valid: " + rule}
}

// fields are the optional parameters of Add and Update; empty values count
// as absent (the SDK sends "Name=" for an empty string).
type fields struct {
	url, reqAuth, key string
}

// checkFields applies the format rules of live-api.md to the fields sent.
// Messages name the field and the rule, never the value (the key is a
// secret).
func checkFields(f fields) *apiErr {
	if f.url != "" {
		if utf8.RuneCountInString(f.url) > 500 {
			return malformed("NotifyUrl", "it must be at most 500 characters.")
		}
		u, err := url.Parse(f.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
			return malformed("NotifyUrl", "it must be a valid http or https URL.")
		}
	}
	// UNVERIFIED: whether "YES"/"No" are accepted; only lower case is.
	if f.reqAuth != "" && f.reqAuth != "yes" && f.reqAuth != "no" {
		return malformed("NotifyReqAuth", "it must be yes or no.")
	}
	if f.key != "" {
		if len(f.key) < 16 || len(f.key) > 32 {
			return malformed("NotifyAuthKey", "it must be 16 to 32 characters.")
		}
		for i := 0; i < len(f.key); i++ {
			c := f.key[i]
			if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
				return malformed("NotifyAuthKey", "it must hold letters and digits only.")
			}
		}
	}
	return nil
}

// execute validates and applies one operation of a known Action to the
// configs of account a.
func (s *Server) execute(a *account, action string, p url.Values) result {
	domain := p.Get("DomainName")
	if domain == "" {
		return result{err: missing("DomainName")}
	}
	f := fields{url: p.Get("NotifyUrl"), reqAuth: p.Get("NotifyReqAuth"), key: p.Get("NotifyAuthKey")}
	switch action {
	case ActionAdd:
		if f.url == "" {
			return result{err: missing("NotifyUrl")}
		}
		if e := checkFields(f); e != nil {
			return result{err: e}
		}
		if f.reqAuth == "yes" && f.key == "" {
			return result{err: missing("NotifyAuthKey")}
		}
		cfg := Config{DomainName: domain, NotifyURL: f.url, ReqAuth: f.reqAuth == "yes", AuthKey: f.key}
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := a.configs[domain]; ok {
			return result{err: &apiErr{s.conflictStatus, "ConfigAlreadyExists", "The snapshot callback config already exists for this domain."}}
		}
		a.configs[domain] = cfg
		a.adds[domain]++
		return result{applied: true}

	case ActionUpdate:
		if e := checkFields(f); e != nil {
			return result{err: e}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		old, ok := a.configs[domain]
		if !ok {
			return result{err: &apiErr{400, "ConfigNotFound", "The snapshot callback config does not exist for this domain."}}
		}
		cfg := old
		if f.url != "" {
			cfg.NotifyURL = f.url
		}
		if f.reqAuth != "" {
			cfg.ReqAuth = f.reqAuth == "yes"
		}
		if f.key != "" {
			cfg.AuthKey = f.key
		}
		// UNVERIFIED: the key requirement is checked on the merged config
		// (NotifyReqAuth=yes may rely on a stored key).
		if cfg.ReqAuth && cfg.AuthKey == "" {
			return result{err: missing("NotifyAuthKey")}
		}
		a.configs[domain] = cfg
		return result{applied: cfg != old}

	case ActionDescribe:
		s.mu.Lock()
		cfg, ok := a.configs[domain]
		s.mu.Unlock()
		if !ok {
			// UNVERIFIED: a domain without config is answered 200 with empty
			// fields (DomainName, NotifyUrl, NotifyReqAuth, NotifyAuthKey all "").
			return result{}
		}
		return result{describe: &cfg}

	case ActionDelete:
		s.mu.Lock()
		_, ok := a.configs[domain]
		delete(a.configs, domain)
		s.mu.Unlock()
		// UNVERIFIED: deleting a missing config is answered 200, or
		// ConfigNotFound with Options.DeleteMissingNotFound.
		if !ok && s.opts.DeleteMissingNotFound {
			return result{err: &apiErr{400, "ConfigNotFound", "The snapshot callback config does not exist for this domain."}}
		}
		return result{applied: ok}
	}
	return result{err: &apiErr{http.StatusBadRequest, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."}}
}
