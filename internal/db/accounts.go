package db

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Account is one reconcile_accounts row: how the job reaches a named
// account. It holds no secret (the table has none).
type Account struct {
	Name        string
	Credentials string  // CredentialsRAMRoleARN, CredentialsProfile or CredentialsDefault
	RoleARN     string  // "" unless Credentials is CredentialsRAMRoleARN
	ExternalID  string  // "": none
	SessionName string  // "": the caller's default (reconcile-<account>)
	Profile     string  // "" unless Credentials is CredentialsProfile
	Rate        float64 // requests per second; 0: unset (the run's --rate)
	Endpoint    string  // "": unset (the run's --endpoint)
	Region      string  // region_id; "": unset (the run's --region)
	Disabled    bool
}

// Values of reconcile_accounts.credentials (Account.Credentials).
const (
	// CredentialsRAMRoleARN: assume RoleARN from the job's own credentials.
	CredentialsRAMRoleARN = "ram_role_arn"
	// CredentialsProfile: the named Profile of the shared credentials file.
	CredentialsProfile = "profile"
	// CredentialsDefault: the job's own credentials chain.
	CredentialsDefault = "default"
)

const (
	sqlLoadAccounts = `SELECT name, credentials, coalesce(role_arn, ''), coalesce(external_id, ''),
       coalesce(session_name, ''), coalesce(profile, ''), coalesce(rate, 0), coalesce(endpoint, ''),
       coalesce(region_id, ''), disabled
FROM reconcile_accounts`

	// sqlWorkAccounts lists the accounts with work, one row each, unsorted:
	//   - the default account ('') when a desired row has account NULL: the
	//     first entry of a backward scan of the (account, domain_name) index
	//     (NULLs sort last in it), one index descent;
	//   - every named account of the desired rows, by a loose index scan of
	//     that index: the recursive CTE jumps from one account to the next
	//     (min(account) > the previous one is one index descent each), so it
	//     costs one descent per distinct account, whatever the row count;
	//   - when $1 (withPrune), the accounts of prune candidates (see
	//     sqlCountPrune; last_run_id is not looked at): one pass over the
	//     remote_exists rows of reconcile_domain_state anti-joined to
	//     desired_snapshot_callbacks' primary key, as CountPrune costs.
	//     When $1 is false the plan's one-time filter skips it.
	sqlWorkAccounts = `WITH RECURSIVE named AS (
    SELECT min(account) AS account FROM desired_snapshot_callbacks
    UNION ALL
    SELECT (SELECT min(d.account) FROM desired_snapshot_callbacks d WHERE d.account > n.account)
    FROM named n WHERE n.account IS NOT NULL
)
SELECT '' FROM (SELECT account FROM desired_snapshot_callbacks ORDER BY account DESC NULLS FIRST LIMIT 1) AS last
WHERE last.account IS NULL
UNION
SELECT account FROM named WHERE account IS NOT NULL
UNION
SELECT coalesce(s.account, '') FROM reconcile_domain_state s
WHERE $1::boolean AND s.remote_exists
  AND NOT EXISTS (SELECT FROM desired_snapshot_callbacks d WHERE d.domain_name = s.domain_name)`
)

// LoadAccounts returns every reconcile_accounts row by name (an empty map
// when there is none). NULL columns read as the zero value (Rate 0,
// Endpoint "" ...: unset). One statement.
func LoadAccounts(ctx context.Context, q Querier) (map[string]Account, error) {
	rows, err := q.Query(ctx, sqlLoadAccounts)
	if err != nil {
		return nil, fmt.Errorf("db: load accounts: %w", err)
	}
	out := map[string]Account{}
	var a Account
	_, err = pgx.ForEachRow(rows, []any{&a.Name, &a.Credentials, &a.RoleARN, &a.ExternalID, &a.SessionName,
		&a.Profile, &a.Rate, &a.Endpoint, &a.Region, &a.Disabled}, func() error {
		out[a.Name] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: load accounts: %w", err)
	}
	return out, nil
}

// WorkAccounts returns the accounts a run works on, each once, sorted by
// byte order ("" — the default account, desired rows whose account is
// NULL — first): the accounts that have desired rows, and with withPrune
// also the accounts (reconcile_domain_state.account) of the domains that
// are no longer desired and that the job may have configured
// (remote_exists: the prune candidates of PrunePage, whatever run they were
// last handled by). Accounts need not have a reconcile_accounts row (an
// unknown account is listed too: the caller decides what to do with it).
//
// Cost: without withPrune, one index descent of the (account, domain_name)
// index per distinct account plus one (a loose index scan), so
// milliseconds on a million rows; withPrune adds one pass over the
// remote_exists rows of reconcile_domain_state anti-joined to the desired
// table (what CountPrune costs: a few hundred milliseconds on a million
// rows). One statement, one snapshot.
func WorkAccounts(ctx context.Context, q Querier, withPrune bool) ([]string, error) {
	rows, err := q.Query(ctx, sqlWorkAccounts, withPrune)
	if err != nil {
		return nil, fmt.Errorf("db: list the accounts with work: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("db: list the accounts with work: %w", err)
	}
	slices.Sort(out)
	return out, nil
}
