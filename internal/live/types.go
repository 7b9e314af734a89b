// Package live is the only code that talks to the ApsaraVideo Live API. It
// wraps darabonba-openapi/v2's generic client so nothing else sees tea
// pointers, classifies every answer (see Class), and scrubs secrets from
// every error it returns.
package live

import (
	"errors"
	"time"

	"github.com/reconcile/reconcile/internal/model"
)

// APIVersion is the Live API version every call uses.
const APIVersion = "2016-11-01"

// Request is what Add and Update send.
type Request struct {
	Domain    string
	NotifyURL string
	ReqAuth   bool
	AuthKey   model.Secret
	Region    string // RegionId; the client's default region when empty
}

// Answer is what every successful call reports.
type Answer struct {
	RequestID  string
	HTTPStatus int
}

// Config is a domain's snapshot-callback config as Describe returns it.
// Exists is false when the API answered with empty fields (no config).
type Config struct {
	Domain    string
	NotifyURL string
	ReqAuth   bool
	AuthKey   model.Secret
	Exists    bool
}

// Class is what the job does with an answer (live-api.md, "Errors").
type Class int

// Classes of answers.
const (
	// ClassOK: the call succeeded (err == nil).
	ClassOK Class = iota
	// ClassDuplicate: ConfigAlreadyExists.
	ClassDuplicate
	// ClassThrottled: any code starting "Throttling". Retry, slow down.
	ClassThrottled
	// ClassTransient: 5xx, ServiceUnavailable, InternalError, timeouts,
	// connection errors. Retry with backoff.
	ClassTransient
	// ClassCredentials: the API refused the AccessKey, signature, STS token
	// or timestamp (InvalidAccessKeyId.*, SignatureDoesNotMatch,
	// IncompleteSignature, InvalidSecurityToken.*, InvalidTimeStamp.Expired),
	// or no usable credentials are configured (ErrNoCredentials), or STS
	// refused to let the job assume an account's role
	// (*CredentialsRefusedError). Every further request would fail the
	// same way: stop the run (or that account).
	ClassCredentials
	// ClassNotFound: ConfigNotFound (Update's target is gone): fall back to Add.
	ClassNotFound
	// ClassRowError: any other error: the row fails, no retry.
	ClassRowError
	// ClassCanceled: the caller's own context ended (shutdown, or a deadline
	// the caller set) before an answer arrived. The request may or may not
	// have reached the API. Not a row failure: record nothing for the row (or
	// "interrupted") and stop. The error is a *CanceledError, and
	// errors.Is(err, context.Canceled / context.DeadlineExceeded) holds. The
	// Client's own per-request deadline (RequestTimeout) is NOT this class:
	// it is a *TransportError{Timeout: true}, ClassTransient.
	ClassCanceled
	// ClassPermission: the API refused this operation on this resource
	// (Forbidden, Forbidden.*, NoPermission, NotAuthorized): the identity is
	// valid but a RAM policy does not allow the call. A policy can name single
	// domains (acs:cdn:*:{accountId}:domain/{DomainName}), so the refusal
	// may hold for this domain only: the row fails with its code, no retry.
	// Only the caller can tell an account-wide refusal (many distinct
	// domains refused, none allowed) and stop then.
	ClassPermission
	// ClassCredentialsUnavailable: getting credentials failed at call time
	// (a *CredentialsError: an STS, ECS metadata, OIDC or credentials-URI
	// refresh failed, or STS was unreachable or answered a 5xx or
	// throttling when assuming an account's role). No request was sent, so it is not an attempt and says
	// nothing about the cloud or the row. Transient: retry after a backoff,
	// and give up after a bounded time.
	ClassCredentialsUnavailable
)

// String returns the class name, for logs.
func (c Class) String() string {
	switch c {
	case ClassOK:
		return "ok"
	case ClassDuplicate:
		return "duplicate"
	case ClassThrottled:
		return "throttled"
	case ClassTransient:
		return "transient"
	case ClassCredentials:
		return "credentials"
	case ClassNotFound:
		return "not_found"
	case ClassRowError:
		return "row_error"
	case ClassCanceled:
		return "canceled"
	case ClassPermission:
		return "permission"
	case ClassCredentialsUnavailable:
		return "credentials_unavailable"
	}
	return "unknown"
}

// APIError is an error answer from the API. Its Error text holds the
// operation, code, status, message and RequestId, never a secret.
type APIError struct {
	Op         string // e.g. "AddLiveSnapshotNotifyConfig"
	Code       string
	Message    string
	HTTPStatus int
	RequestID  string
	// RetryAfter is the server's hint (0 when none).
	RetryAfter time.Duration
}

// TransportError is a call that got no HTTP answer: a timeout, a reset, a
// refused connection, an unreadable body. Its text is scrubbed of the URL's
// query (which carries NotifyAuthKey) and of every known secret.
type TransportError struct {
	Op      string
	Timeout bool
	Msg     string // scrubbed
	// AnswerStatus is the HTTP status when an answer arrived but could not be
	// read, 0 otherwise.
	AnswerStatus int
}

// Error implements error.
func (e *TransportError) Error() string { return e.Op + ": " + e.Msg }

// ErrorCode returns the code to record for err: the API code, "Timeout" or
// "ConnectionError" for transport errors, "Canceled" for a *CanceledError,
// STS's code for a *CredentialsRefusedError (e.g. "NoPermission",
// "EntityNotExist.Role"), "CredentialsUnavailable" for a
// *CredentialsError, "NoCredentials" for ErrNoCredentials, "" for nil.
func ErrorCode(err error) string {
	var ae *APIError
	var te *TransportError
	var ce *CanceledError
	var cre *CredentialsError
	var ref *CredentialsRefusedError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce):
		return "Canceled"
	case errors.As(err, &ref):
		return ref.Code
	case errors.As(err, &cre):
		return "CredentialsUnavailable"
	case errors.As(err, &ae):
		return ae.Code
	case errors.As(err, &te) && te.Timeout:
		return "Timeout"
	case errors.As(err, &te):
		return "ConnectionError"
	case errors.Is(err, ErrNoCredentials):
		return "NoCredentials"
	}
	return "Error"
}
