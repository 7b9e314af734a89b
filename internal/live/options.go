package live

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/reconcile/reconcile/internal/config"
)

// Defaults applied by New when an Options field is zero: those of
// `reconcile run`'s flags, declared once in package config.
const (
	DefaultRequestTimeout = config.DefaultRequestTimeout
	DefaultMaxConns       = config.DefaultConcurrency
	// MaxAnswerBytes bounds how much of an answer body is read; a longer body
	// fails the call with a TransportError (AnswerStatus set).
	MaxAnswerBytes = 1 << 20
)

// ErrInsecureEndpoint is returned (wrapped) by New and Options.Validate for a
// plain http:// endpoint whose host is not loopback, unless
// Options.AllowInsecureEndpoint is set: signed requests carry the AccessKey
// signature, STS token and NotifyAuthKey in clear text.
var ErrInsecureEndpoint = errors.New("refusing plain http:// endpoint on a non-loopback host (requests carry credentials and auth keys); use https:// or allow insecure endpoints explicitly")

// Options configures a Client.
type Options struct {
	// Endpoint is a host name[:port] (spoken to over HTTPS) or a full
	// http://host:port / https://host:port URL (simulators, proxies).
	// Required: empty is an error (--endpoint's default is
	// config.DefaultEndpoint).
	Endpoint string
	// Region is the RegionId sent when a Request has none.
	Region string
	// RequestTimeout is the deadline of one HTTP request (dial, TLS, send,
	// answer, body). 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Credentials are asked for once per call. Required.
	Credentials Credentials
	// AllowInsecureEndpoint permits http:// to a non-loopback host.
	AllowInsecureEndpoint bool
	// SignatureAlgorithm: "" is the SDK default (V3, ACS3-HMAC-SHA256);
	// "v2" is the legacy RPC HMAC-SHA1 signature (SignatureVersion 1.0).
	SignatureAlgorithm string
	// MaxConns is the expected number of concurrent calls; it sizes the
	// idle-connection pool and the SDK-client pool. 0 means DefaultMaxConns.
	MaxConns int
	// UserAgent is appended to the SDK's User-Agent.
	UserAgent string
}

// ParseEndpoint splits an endpoint into a scheme ("http" or "https") and a
// host[:port]. A bare host name (optionally with a port) means https.
// It does not apply the insecure-endpoint policy; see Options.Validate.
func ParseEndpoint(s string) (scheme, hostport string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", errors.New("endpoint is empty")
	}
	raw := s
	if !strings.Contains(s, "://") {
		raw = "https://" + s
	}
	u, perr := url.Parse(raw)
	if perr != nil {
		// url.Error repeats the input; fine, an endpoint is not a secret.
		return "", "", fmt.Errorf("endpoint %q is not a host name or URL: %v", s, perr)
	}
	scheme = strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", "", fmt.Errorf("endpoint %q: scheme must be http or https", s)
	}
	if u.User != nil {
		return "", "", fmt.Errorf("endpoint %q: user info is not allowed", s)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", "", fmt.Errorf("endpoint %q: query and fragment are not allowed", s)
	}
	if u.Path != "" && u.Path != "/" {
		return "", "", fmt.Errorf("endpoint %q: a path is not allowed (the API is served at /)", s)
	}
	host := u.Hostname()
	if host == "" {
		return "", "", fmt.Errorf("endpoint %q: no host", s)
	}
	if strings.Contains(u.Host, "[") {
		if ip := net.ParseIP(host); ip == nil {
			return "", "", fmt.Errorf("endpoint %q: bad IPv6 literal", s)
		}
	} else if !validHostName(host) {
		return "", "", fmt.Errorf("endpoint %q: %q is not a valid host name", s, host)
	}
	if p := u.Port(); p != "" {
		n, aerr := strconv.Atoi(p)
		if aerr != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("endpoint %q: bad port %q", s, p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", "", fmt.Errorf("endpoint %q: empty port", s)
	}
	return scheme, u.Host, nil
}

func validHostName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			default:
				return false
			}
		}
	}
	return true
}

// isLoopbackHost reports whether host (no port) is localhost, 127.0.0.0/8 or ::1.
func isLoopbackHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Validate checks the options as New does (without asking for credentials):
// the endpoint parses, http:// is loopback-only unless AllowInsecureEndpoint,
// the signature algorithm is known, and numbers are not negative.
func (o Options) Validate() error {
	_, _, err := o.endpoint()
	if err != nil {
		return err
	}
	switch o.SignatureAlgorithm {
	case "", "v2":
	default:
		return fmt.Errorf("signature algorithm %q: want \"\" (V3, ACS3-HMAC-SHA256) or \"v2\" (HMAC-SHA1)", o.SignatureAlgorithm)
	}
	if o.RequestTimeout < 0 {
		return errors.New("request timeout must not be negative")
	}
	if o.MaxConns < 0 {
		return errors.New("max conns must not be negative")
	}
	if o.Credentials == nil {
		return errors.New("no credentials provider given")
	}
	return nil
}

func (o Options) endpoint() (scheme, hostport string, err error) {
	ep := o.Endpoint
	scheme, hostport, err = ParseEndpoint(ep)
	if err != nil {
		return "", "", err
	}
	if scheme == "http" && !o.AllowInsecureEndpoint {
		host := hostport
		if h, _, serr := net.SplitHostPort(hostport); serr == nil {
			host = h
		}
		if !isLoopbackHost(host) {
			return "", "", fmt.Errorf("endpoint %q: %w", ep, ErrInsecureEndpoint)
		}
	}
	return scheme, hostport, nil
}
