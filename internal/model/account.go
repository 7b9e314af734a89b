package model

// DefaultAccountLabel is how the default account (desired rows whose
// account is NULL, "" in Go) is named in logs, metric labels, reports and
// shard hashing. No named account may use it (reconcile_accounts refuses it).
const DefaultAccountLabel = "default"

// AccountLabel returns the name that logs, metrics and reports show for
// account: the account itself, or DefaultAccountLabel for "".
func AccountLabel(account string) string {
	if account == "" {
		return DefaultAccountLabel
	}
	return account
}
