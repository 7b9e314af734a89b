package livesim

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"time"
)

// DefaultAccount is the name of the account made of Options' single-key
// fields (AccessKeyID, AccessKeySecret, SecurityToken, Limit,
// ThrottleCountsRejected, ForceErrors, DomainFaults). It always exists,
// even without a key, and is the account of Config, Configs, PutConfig,
// DeleteConfig and SuccessfulAdds. No entry of Options.Accounts may use
// the name.
const DefaultAccount = "default"

// ErrUnknownAccount is returned by the *In methods for an account name
// that was not declared.
var ErrUnknownAccount = errors.New("livesim: unknown account")

// Account is one simulated Alibaba Cloud account (Options.Accounts): its
// own AccessKeys, its own rate limit and its own configs. The real limit
// is per account, shared by every AccessKey of the account
// (live-api.md), and so is it here: every key of an Account draws on the
// same throttling windows and reads and writes the same configs, while
// two Accounts share nothing but the server's nonce memory, its random
// source (latency, Options.Faults) and its request log.
type Account struct {
	// Name identifies the account in Entry.Account, the *In and *For
	// methods and the admin endpoints. Required, unique, not
	// DefaultAccount.
	Name string
	// Keys are the AccessKey pairs that authenticate as this account; at
	// least one unless RoleARN is set. Key ids are unique across every
	// account and Options.AccessKeyID.
	Keys []AccessKey
	// Limit and ThrottleCountsRejected mean what Options.Limit and
	// Options.ThrottleCountsRejected mean, for this account's requests
	// only: its accepted calls of one Action never exceed Limit in any
	// 1-second window, whatever other accounts send. 0 = unlimited.
	Limit                  int
	ThrottleCountsRejected bool
	// Disabled refuses every key of the account: its requests are
	// answered InvalidAccessKeyId.Inactive before the signature check and
	// never reach the state or the limit.
	Disabled bool
	// ForceErrors and DomainFaults mean what Options.ForceErrors and
	// Options.DomainFaults mean, for this account's requests only (its
	// domains are its own: the same name in another account is another
	// domain).
	ForceErrors  map[string]ForcedError
	DomainFaults map[string][]DomainFault

	// RoleARN, when set, is a RAM role of the account
	// (acs:ram::<digits>:role/<name>, unique across accounts) that STS
	// AssumeRole (see sts.go) hands out credentials for: an STS AccessKey
	// that the Live API accepts as this account (its limit, configs and
	// Disabled flag), until it expires.
	RoleARN string
	// ExternalID, when set, is the ExternalId the role's trust policy
	// requires: AssumeRole without it, or with another, is refused
	// (403 NoPermission). Only with RoleARN.
	ExternalID string
	// Trusted is the role's trust policy: the AccessKey ids and account
	// names (DefaultAccount included) whose keys may assume it. Empty:
	// any known AccessKey. Each entry must name a declared key or
	// account. Only with RoleARN.
	Trusted []string
	// MaxSessionDuration is the role's longest session (DurationSeconds
	// above it is refused); 0 means one hour, RAM's default. Between one
	// and twelve hours when set. Only with RoleARN.
	MaxSessionDuration time.Duration
}

// AccessKey is one AccessKey pair of an Account.
type AccessKey struct {
	ID, Secret string
	// SecurityToken, when set, must be carried by every request signed
	// with this key, as Options.SecurityToken for the default key.
	SecurityToken string
	// Disabled refuses this key alone (InvalidAccessKeyId.Inactive), e.g.
	// a rotated-out key while the account's other key works.
	Disabled bool
}

// roleARNRE is the form of a RAM role ARN (what reconcile_accounts.role_arn
// allows too).
var roleARNRE = regexp.MustCompile(`^acs:ram::[0-9]+:role/[^/\s]+$`)

// Role session bounds (RAM): 15 minutes to the role's MaxSessionDuration,
// which is one to twelve hours (one by default).
const (
	minSessionDuration        = 15 * time.Minute
	defaultMaxSessionDuration = time.Hour
	maxMaxSessionDuration     = 12 * time.Hour
)

// Validate reports what New cannot use in o.Accounts: an empty, repeated
// or reserved (DefaultAccount) name, an account with neither keys nor a
// role, a key without id or secret, a key id used twice
// (Options.AccessKeyID included), a malformed or repeated RoleARN, role
// settings (ExternalID, Trusted, MaxSessionDuration) without a RoleARN, a
// MaxSessionDuration out of range, or a Trusted entry that names no
// declared key or account. Options without Accounts are always valid.
// Messages never quote a secret.
func (o Options) Validate() error {
	names := map[string]bool{}
	ids := map[string]string{}
	if o.AccessKeyID != "" {
		ids[o.AccessKeyID] = DefaultAccount
	}
	for i, a := range o.Accounts {
		switch {
		case a.Name == "":
			return fmt.Errorf("livesim: account %d has no name", i+1)
		case a.Name == DefaultAccount:
			return fmt.Errorf("livesim: account name %q is reserved for the single-key options", DefaultAccount)
		case names[a.Name]:
			return fmt.Errorf("livesim: account %q declared twice", a.Name)
		case len(a.Keys) == 0 && a.RoleARN == "":
			return fmt.Errorf("livesim: account %q has no AccessKey and no role_arn", a.Name)
		}
		names[a.Name] = true
		for j, k := range a.Keys {
			if k.ID == "" || k.Secret == "" {
				return fmt.Errorf("livesim: account %q: key %d needs an id and a secret", a.Name, j+1)
			}
			if other, dup := ids[k.ID]; dup {
				return fmt.Errorf("livesim: AccessKey id %q used by accounts %q and %q", k.ID, other, a.Name)
			}
			ids[k.ID] = a.Name
		}
	}
	roles := map[string]string{}
	for _, a := range o.Accounts {
		if a.RoleARN == "" {
			switch {
			case a.ExternalID != "":
				return fmt.Errorf("livesim: account %q: external_id needs a role_arn", a.Name)
			case len(a.Trusted) > 0:
				return fmt.Errorf("livesim: account %q: trusted needs a role_arn", a.Name)
			case a.MaxSessionDuration != 0:
				return fmt.Errorf("livesim: account %q: max session duration needs a role_arn", a.Name)
			}
			continue
		}
		if !roleARNRE.MatchString(a.RoleARN) {
			return fmt.Errorf("livesim: account %q: role_arn %q is not acs:ram::<account id>:role/<name>", a.Name, a.RoleARN)
		}
		if other, dup := roles[a.RoleARN]; dup {
			return fmt.Errorf("livesim: role_arn %q used by accounts %q and %q", a.RoleARN, other, a.Name)
		}
		roles[a.RoleARN] = a.Name
		if d := a.MaxSessionDuration; d != 0 && (d < defaultMaxSessionDuration || d > maxMaxSessionDuration) {
			return fmt.Errorf("livesim: account %q: max session duration %v is not between 1h and 12h", a.Name, d)
		}
		for _, t := range a.Trusted {
			if _, isKey := ids[t]; !isKey && !names[t] && t != DefaultAccount {
				return fmt.Errorf("livesim: account %q: trusted entry %q names no declared AccessKey id or account", a.Name, t)
			}
		}
	}
	return nil
}

// account is the server side of an Account (or of the default account).
// The settings are fixed by New; the maps below them are guarded by
// Server.mu.
type account struct {
	name          string
	limit         int
	countRejected bool
	disabled      bool
	forced        map[string]ForcedError
	domainFaults  map[string][]DomainFault
	keyIDs        []string
	roleARN       string

	configs         map[string]Config
	adds            map[string]int
	forcedUsed      map[string]int
	windows         map[string]*window
	domainFaultUsed map[string][]int // uses of each domainFaults rule
}

func newAccount(a Account) *account {
	return &account{
		name:          a.Name,
		limit:         a.Limit,
		countRejected: a.ThrottleCountsRejected,
		disabled:      a.Disabled,
		forced:        maps.Clone(a.ForceErrors),
		domainFaults:  maps.Clone(a.DomainFaults),
		configs:       make(map[string]Config),
		adds:          make(map[string]int),
		forcedUsed:    make(map[string]int),
		windows:       make(map[string]*window),
	}
}

// accessKey is one accepted key; fixed once made (by New, or by
// AssumeRole for an STS key), read without a lock.
type accessKey struct {
	id            string
	secret, token string
	disabled      bool // the key's own Disabled, or its account's
	acct          *account
	// expires is when an STS key (issued by AssumeRole) stops working;
	// zero for the declared keys.
	expires time.Time
}

// setupAccounts builds the default account and those of o.Accounts (o
// valid) and indexes every key by id.
func (s *Server) setupAccounts(o Options) {
	s.accounts = make(map[string]*account, 1+len(o.Accounts))
	s.roles = make(map[string]*role)
	s.keys = make(map[string]*accessKey, 1+len(o.Accounts))
	def := newAccount(Account{Name: DefaultAccount, Limit: o.Limit, ThrottleCountsRejected: o.ThrottleCountsRejected,
		ForceErrors: o.ForceErrors, DomainFaults: o.DomainFaults})
	if o.AccessKeyID != "" {
		s.keys[o.AccessKeyID] = &accessKey{id: o.AccessKeyID, secret: o.AccessKeySecret, token: o.SecurityToken, acct: def}
		def.keyIDs = []string{o.AccessKeyID}
	}
	s.def = def
	s.accounts[DefaultAccount] = def
	s.accountNames = append(s.accountNames, DefaultAccount)
	for _, a := range o.Accounts {
		acct := newAccount(a)
		for _, k := range a.Keys {
			s.keys[k.ID] = &accessKey{id: k.ID, secret: k.Secret, token: k.SecurityToken, disabled: k.Disabled || a.Disabled, acct: acct}
			acct.keyIDs = append(acct.keyIDs, k.ID)
		}
		if a.RoleARN != "" {
			r := &role{arn: a.RoleARN, acct: acct, externalID: a.ExternalID, maxDuration: a.MaxSessionDuration}
			if r.maxDuration == 0 {
				r.maxDuration = defaultMaxSessionDuration
			}
			if len(a.Trusted) > 0 {
				r.trusted = make(map[string]bool, len(a.Trusted))
				for _, t := range a.Trusted {
					r.trusted[t] = true
				}
			}
			acct.roleARN = a.RoleARN
			s.roles[a.RoleARN] = r
		}
		s.accounts[a.Name] = acct
		s.accountNames = append(s.accountNames, a.Name)
	}
}
