package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/reconcile/reconcile/internal/config"
	"github.com/reconcile/reconcile/internal/livesim"
)

// SimAccount is one account of `reconcile simulate --accounts-file`: a
// JSON array of these. An account has one key (access_key_id,
// access_key_secret, optional security_token) or several (keys), or both,
// or none when it has a role_arn (reached through STS AssumeRole only).
// Limit and ThrottleCountsRejected default to the --limit and
// --throttle-counts-rejected values when absent (null); limit 0 means
// unlimited.
type SimAccount struct {
	Name                   string   `json:"name"`
	AccessKeyID            string   `json:"access_key_id"`
	AccessKeySecret        string   `json:"access_key_secret"`
	SecurityToken          string   `json:"security_token"`
	Keys                   []SimKey `json:"keys"`
	Limit                  *int     `json:"limit"`
	ThrottleCountsRejected *bool    `json:"throttle_counts_rejected"`
	// Disabled refuses every key of the account with
	// InvalidAccessKeyId.Inactive.
	Disabled bool `json:"disabled"`
	// RoleARN (acs:ram::<digits>:role/<name>) is a RAM role of the account
	// that the simulator's STS AssumeRole hands credentials out for
	// (livesim.Account.RoleARN); ExternalID is the ExternalId its trust
	// policy requires (not a secret); Trusted lists the AccessKey ids and
	// account names allowed to assume it (empty: any known AccessKey).
	RoleARN    string   `json:"role_arn"`
	ExternalID string   `json:"external_id"`
	Trusted    []string `json:"trusted"`
}

// SimKey is one further AccessKey of a SimAccount.
type SimKey struct {
	AccessKeyID     string `json:"access_key_id"`
	AccessKeySecret string `json:"access_key_secret"`
	SecurityToken   string `json:"security_token"`
	Disabled        bool   `json:"disabled"`
}

// maxAccountsFile bounds what ReadSimAccounts reads.
const maxAccountsFile = 1 << 20

// ReadSimAccounts reads an accounts file (see SimAccount) into
// livesim.Accounts, with defLimit and defCountsRejected for the accounts
// that set no limit or throttle_counts_rejected. Unknown fields, a
// negative limit and trailing data are refused. Every error wraps
// config.ErrUsage, names the file and never quotes a secret. The result
// is not checked against the other accounts' key ids: use
// livesim.Options.Validate.
func ReadSimAccounts(path string, defLimit int, defCountsRejected bool) ([]livesim.Account, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, config.Usagef("--accounts-file: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAccountsFile+1))
	if err != nil {
		return nil, config.Usagef("--accounts-file: %v", err)
	}
	if len(b) > maxAccountsFile {
		return nil, config.Usagef("--accounts-file %s: larger than %d bytes", path, maxAccountsFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var in []SimAccount
	if err := dec.Decode(&in); err != nil {
		// A json error names a position or a field, never a value.
		return nil, config.Usagef("--accounts-file %s: want a JSON array of accounts: %v", path, jsonErr(err))
	}
	if dec.More() {
		return nil, config.Usagef("--accounts-file %s: data after the JSON array", path)
	}
	out := make([]livesim.Account, 0, len(in))
	for i, a := range in {
		where := "account " + strconv.Itoa(i+1)
		if a.Name != "" {
			where = strconv.Quote(a.Name)
		}
		acct := livesim.Account{Name: a.Name, Limit: defLimit, ThrottleCountsRejected: defCountsRejected, Disabled: a.Disabled,
			RoleARN: a.RoleARN, ExternalID: a.ExternalID, Trusted: a.Trusted}
		if a.Limit != nil {
			if *a.Limit < 0 {
				return nil, config.Usagef("--accounts-file %s: %s: limit must be 0 (unlimited) or more", path, where)
			}
			acct.Limit = *a.Limit
		}
		if a.ThrottleCountsRejected != nil {
			acct.ThrottleCountsRejected = *a.ThrottleCountsRejected
		}
		if a.AccessKeyID != "" || a.AccessKeySecret != "" || a.SecurityToken != "" {
			acct.Keys = append(acct.Keys, livesim.AccessKey{ID: a.AccessKeyID, Secret: a.AccessKeySecret, SecurityToken: a.SecurityToken})
		}
		for _, k := range a.Keys {
			acct.Keys = append(acct.Keys, livesim.AccessKey{ID: k.AccessKeyID, Secret: k.AccessKeySecret, SecurityToken: k.SecurityToken, Disabled: k.Disabled})
		}
		out = append(out, acct)
	}
	probe := livesim.Options{Accounts: out}
	if err := probe.Validate(); err != nil {
		return nil, config.Usagef("--accounts-file %s: %s", path, strings.TrimPrefix(err.Error(), "livesim: "))
	}
	return out, nil
}

// jsonErr keeps a decoding error's position or field and drops anything
// else (a syntax error's text holds no input, a type error names the
// field and the JSON type only).
func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	}
	return err
}

// SimAccountSecrets returns every secret and security token of accounts,
// for a Redactor.
func SimAccountSecrets(accounts []livesim.Account) []string {
	var s []string
	for _, a := range accounts {
		for _, k := range a.Keys {
			s = append(s, k.Secret)
			if k.SecurityToken != "" {
				s = append(s, k.SecurityToken)
			}
		}
	}
	return s
}

// describeSimAccounts summarises accounts for the "simulator listening"
// log line: names, limits, key ids and refusals, no secret.
func describeSimAccounts(accounts []livesim.Account) string {
	var sb strings.Builder
	for i, a := range accounts {
		if i > 0 {
			sb.WriteString("; ")
		}
		fmt.Fprintf(&sb, "%s limit=%d keys=", a.Name, a.Limit)
		for j, k := range a.Keys {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(k.ID)
			if k.Disabled {
				sb.WriteString("(disabled)")
			}
		}
		if a.ThrottleCountsRejected {
			sb.WriteString(" throttle_counts_rejected")
		}
		if a.Disabled {
			sb.WriteString(" disabled")
		}
		if a.RoleARN != "" {
			sb.WriteString(" role=")
			sb.WriteString(a.RoleARN)
			if a.ExternalID != "" {
				sb.WriteString(" external_id=required")
			}
			if len(a.Trusted) > 0 {
				sb.WriteString(" trusted=")
				sb.WriteString(strings.Join(a.Trusted, ","))
			}
		}
	}
	return sb.String()
}
