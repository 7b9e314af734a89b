package apply

import "github.com/reconcile/reconcile/internal/model"

// newResult starts row's result: the domain, its fingerprint and the values
// the outcome is about, as they are sent (reconcile_outcomes.notify_url,
// notify_req_auth, region_id): the row's RegionId, else the run's --region,
// which is also what Delete sends (prune rows carry no values of their own).
// The auth key is never copied.
func (r *runner) newResult(row model.Row) model.Result {
	region := row.Region
	if region == "" {
		region = r.o.Region
	}
	return model.Result{Domain: row.Domain, Fingerprint: row.Fingerprint, NotifyURL: row.NotifyURL,
		ReqAuth: row.ReqAuth, Region: region, Account: r.o.Account}
}
