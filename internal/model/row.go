// Package model holds the plain types that the database, the API client and
// the apply engine exchange: desired rows, outcomes and secrets. It has no
// dependencies and no behaviour beyond formatting.
package model

import "time"

// Row is one desired snapshot-callback config, as read for a run.
type Row struct {
	// Domain is desired_snapshot_callbacks.domain_name.
	Domain string
	// NotifyURL is the callback URL.
	NotifyURL string
	// ReqAuth is notify_req_auth (sent as NotifyReqAuth=yes/no).
	ReqAuth bool
	// AuthKey is notify_auth_key; empty when NULL.
	AuthKey Secret
	// Region is region_id; empty when NULL (the run's --region applies).
	Region string
	// Fingerprint identifies the desired values (computed in SQL by
	// reconcile_fingerprint; never contains the auth key itself).
	Fingerprint string
	// Applied is true when, as far as the job knows, the cloud holds a config
	// for this domain (an earlier success, or a drifted answer), so the run
	// must send Update rather than Add.
	Applied bool
	// LastOutcome is the domain's latest outcome ("" when never attempted).
	LastOutcome Outcome
	// OtherUnconfirmed is true when the job sent (or was about to send)
	// other values than this row's for the domain and no answer since has
	// proved what the cloud holds: a ConfigAlreadyExists then proves
	// nothing about this row's values.
	OtherUnconfirmed bool
	// UpdatedAt is desired_snapshot_callbacks.updated_at.
	UpdatedAt time.Time
	// Account is desired_snapshot_callbacks.account: the account that holds
	// the domain; "" (NULL) is the default account.
	Account string
}
