package apply

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/model"
)

// Limits on refusals that are not one row's business.
const (
	// PermissionStopDomains is how many distinct domains must be refused
	// permission (Forbidden, Forbidden.RAM, …), with no answer so far that
	// shows the account may call the API, before the refusal is taken as
	// account-wide and the pass stops. A RAM policy can name single domains,
	// so fewer refusals are only those rows' failures.
	PermissionStopDomains = 5
	// CredentialsOutage is how long getting credentials may keep failing
	// (an STS, ECS metadata or OIDC refresh; no request is sent meanwhile)
	// before the pass stops with ErrCredentialsUnavailable. Calls wait with
	// the run's backoff between tries and do not use up their rows'
	// attempts.
	CredentialsOutage = time.Minute
)

// ErrCredentialsUnavailable: getting credentials kept failing for
// CredentialsOutage (a provider outage, not a refusal by the API); the pass
// stopped and the rows not sent stay pending.
var ErrCredentialsUnavailable = errors.New("credentials unavailable")

// refusals tracks permission refusals and credential outages across the
// workers of one pass. Safe for concurrent use.
type refusals struct {
	mu        sync.Mutex
	allowed   bool                // some answer showed the account may call the API
	refused   map[string]struct{} // domains refused permission while !allowed
	downSince time.Time           // first credentials failure of the current outage
	downTries int
}

// answered records an answer of class c for domain and reports whether
// permission refusals are now evidently account-wide.
func (f *refusals) answered(c live.Class, domain string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.downSince, f.downTries = time.Time{}, 0
	switch c {
	case live.ClassOK, live.ClassDuplicate, live.ClassNotFound:
		f.allowed, f.refused = true, nil
	case live.ClassPermission:
		if f.allowed {
			return false
		}
		if f.refused == nil {
			f.refused = make(map[string]struct{})
		}
		f.refused[domain] = struct{}{}
		return len(f.refused) >= PermissionStopDomains
	}
	return false
}

// credentialsFailed records a failure to get credentials at now; it returns
// how many tries the current outage has seen and whether it lasted longer
// than CredentialsOutage.
func (f *refusals) credentialsFailed(now time.Time) (tries int, over bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.downSince.IsZero() {
		f.downSince = now
	}
	f.downTries++
	return f.downTries, now.Sub(f.downSince) > CredentialsOutage
}

// credentialsUnavailable handles a call that could not get credentials
// (nothing was sent): it waits with backoff, or stops the pass once the
// outage lasted CredentialsOutage. It returns errStopped when the caller
// must give up the row (it gets no outcome and stays pending).
func (r *runner) credentialsUnavailable(res *model.Result, err error) error {
	now := r.o.Now()
	tries, over := r.refusals.credentialsFailed(now)
	if over {
		r.stop(fmt.Errorf("%w: getting credentials failed for more than %s: %w", ErrCredentialsUnavailable, CredentialsOutage, err))
		return errStopped
	}
	if tries == 1 || tries%10 == 0 {
		r.log.Warn("cannot get credentials; retrying (no request was sent)", "domain", res.Domain, "tries", tries, "error", err)
	}
	if r.wait(now.Add(r.backoff.Delay(min(tries, 10)))) != nil {
		return errStopped
	}
	return nil
}

// permissionAnswer records an answer's class; when permission refusals turn
// out to be account-wide it stops the pass with ErrCredentials.
func (r *runner) permissionAnswer(class live.Class, res *model.Result, err error) {
	if r.refusals.answered(class, res.Domain) {
		r.stop(fmt.Errorf("%w: permission refused for the first %d domains and allowed for none; the RAM policy seems to deny the action for the whole account: %w",
			ErrCredentials, PermissionStopDomains, err))
	}
}
