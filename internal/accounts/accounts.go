// Package accounts decides which accounts a run works: the names a desired
// row may give, the --accounts list, and --shard's stable hash. It holds no
// state and knows neither the database nor the API.
package accounts

import (
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/reconcile/reconcile/internal/model"
)

// namePattern is what reconcile_accounts.name accepts (its CHECK
// constraint says the same).
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ErrInvalid is wrapped by every error of this package about a bad name,
// list or shard.
var ErrInvalid = errors.New("invalid account selection")

// ValidName reports whether name may name an account in the desired state:
// lower-case letters, digits, '.', '_' and '-', at most 63 characters,
// starting with a letter or digit, and not model.DefaultAccountLabel.
func ValidName(name string) bool {
	return name != model.DefaultAccountLabel && namePattern.MatchString(name)
}

// ParseList parses --accounts: comma-separated labels, where
// model.DefaultAccountLabel ("default") names the default account. It
// returns the accounts as the desired state names them ("" for the default
// account), sorted and without duplicates; nil for an empty list (every
// account).
func ParseList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		label := strings.TrimSpace(part)
		switch {
		case label == model.DefaultAccountLabel:
			out = append(out, "")
		case ValidName(label):
			out = append(out, label)
		default:
			return nil, fmt.Errorf("%w: %q is not an account name (lower-case letters, digits, '.', '_', '-'; %q for the default account)",
				ErrInvalid, label, model.DefaultAccountLabel)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Shard is --shard i/n: the accounts whose Hash modulo Count is Index. The
// zero value (Count 0) selects every account.
type Shard struct {
	Index, Count int
}

// String returns "i/n", or "" for the zero value.
func (s Shard) String() string {
	if s.Count == 0 {
		return ""
	}
	return strconv.Itoa(s.Index) + "/" + strconv.Itoa(s.Count)
}

// ParseShard parses "i/n" with 0 <= i < n (empty: the zero Shard).
func ParseShard(s string) (Shard, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Shard{}, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(is))
	n, err2 := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("%w: shard %q: want i/n with 0 <= i < n, e.g. 0/4", ErrInvalid, s)
	}
	return Shard{Index: i, Count: n}, nil
}

// Hash is the stable hash that --shard uses: FNV-1a (32 bits) of the
// account's label (model.AccountLabel). It never changes between versions,
// so that a shard keeps its accounts from run to run.
func Hash(account string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(model.AccountLabel(account)))
	return h.Sum32()
}

// Has reports whether account belongs to the shard.
func (s Shard) Has(account string) bool {
	return s.Count == 0 || int(Hash(account)%uint32(s.Count)) == s.Index
}

// Select returns the accounts of all that a run works: those in only (all
// when only is nil) that belong to shard, in all's order. Every account
// belongs to exactly one shard of any n.
func Select(all, only []string, shard Shard) []string {
	var out []string
	for _, a := range all {
		if only != nil && !slices.Contains(only, a) {
			continue
		}
		if shard.Has(a) {
			out = append(out, a)
		}
	}
	return out
}

// Labels returns the labels of accounts, for logs.
func Labels(accounts []string) []string {
	out := make([]string, len(accounts))
	for i, a := range accounts {
		out[i] = model.AccountLabel(a)
	}
	return out
}
