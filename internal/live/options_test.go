package live

import (
	"context"
	"errors"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, scheme, host string
		wantErr          bool
	}{
		{"live.aliyuncs.com", "https", "live.aliyuncs.com", false},
		{"  live.ap-southeast-1.aliyuncs.com ", "https", "live.ap-southeast-1.aliyuncs.com", false},
		{"live.aliyuncs.com:8443", "https", "live.aliyuncs.com:8443", false},
		{"https://live.aliyuncs.com", "https", "live.aliyuncs.com", false},
		{"https://live.aliyuncs.com/", "https", "live.aliyuncs.com", false},
		{"HTTPS://live.aliyuncs.com:443", "https", "live.aliyuncs.com:443", false},
		{"http://127.0.0.1:8080", "http", "127.0.0.1:8080", false},
		{"http://[::1]:8080", "http", "[::1]:8080", false},
		{"http://localhost:9000", "http", "localhost:9000", false},
		{"", "", "", true},
		{"   ", "", "", true},
		{"ftp://live.aliyuncs.com", "", "", true},
		{"https://", "", "", true},
		{"https://live.aliyuncs.com/path", "", "", true},
		{"https://live.aliyuncs.com/?a=b", "", "", true},
		{"https://live.aliyuncs.com/#x", "", "", true},
		{"https://user:pw@live.aliyuncs.com", "", "", true},
		{"https://live.aliyuncs.com:0", "", "", true},
		{"https://live.aliyuncs.com:99999", "", "", true},
		{"https://live.aliyuncs.com:abc", "", "", true},
		{"live.aliyuncs.com:", "", "", true},
		{"live aliyuncs com", "", "", true},
		{"://nohost", "", "", true},
		{"http://[zz]:80", "", "", true},
		{"live..aliyuncs.com", "", "", true},
	}
	for _, tt := range tests {
		scheme, host, err := ParseEndpoint(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseEndpoint(%q) err = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if scheme != tt.scheme || host != tt.host {
			t.Errorf("ParseEndpoint(%q) = %q, %q; want %q, %q", tt.in, scheme, host, tt.scheme, tt.host)
		}
	}
}

func TestInsecureEndpoint(t *testing.T) {
	t.Parallel()
	creds := StaticCredentials("id", "secret", "")
	tests := []struct {
		endpoint string
		allow    bool
		wantErr  error // nil: no error; errAny: some other error
	}{
		{"live.aliyuncs.com", false, nil},
		{"https://10.0.0.5:8443", false, nil},
		{"http://127.0.0.1:8080", false, nil},
		{"http://127.8.9.10:8080", false, nil},
		{"http://[::1]:8080", false, nil},
		{"http://localhost:8080", false, nil},
		{"http://LOCALHOST", false, nil},
		{"http://live.aliyuncs.com", false, ErrInsecureEndpoint},
		{"http://10.0.0.5:8080", false, ErrInsecureEndpoint},
		{"http://128.0.0.1", false, ErrInsecureEndpoint},
		{"http://[::2]:80", false, ErrInsecureEndpoint},
		{"http://localhost.example.com", false, ErrInsecureEndpoint},
		{"http://live.aliyuncs.com", true, nil},
		{"http://10.0.0.5:8080", true, nil},
		{"", false, errAny},
		{"not a url", true, errAny},
	}
	for _, tt := range tests {
		opts := Options{Endpoint: tt.endpoint, AllowInsecureEndpoint: tt.allow, Credentials: creds}
		err := opts.Validate()
		_, nerr := New(context.Background(), opts)
		for _, e := range []error{err, nerr} {
			switch {
			case tt.wantErr == nil && e != nil:
				t.Errorf("%q allow=%v: unexpected error %v", tt.endpoint, tt.allow, e)
			case tt.wantErr == errAny && e == nil:
				t.Errorf("%q allow=%v: want an error", tt.endpoint, tt.allow)
			case tt.wantErr == errAny && errors.Is(e, ErrInsecureEndpoint):
				t.Errorf("%q allow=%v: want a parse error, got %v", tt.endpoint, tt.allow, e)
			case tt.wantErr == ErrInsecureEndpoint && !errors.Is(e, ErrInsecureEndpoint):
				t.Errorf("%q allow=%v: err = %v, want ErrInsecureEndpoint", tt.endpoint, tt.allow, e)
			}
		}
	}
}

var errAny = errors.New("any error")

func TestValidateOther(t *testing.T) {
	t.Parallel()
	ok := Options{Endpoint: "live.aliyuncs.com", Credentials: StaticCredentials("id", "s", "")}
	bad := []Options{
		{Endpoint: "live.aliyuncs.com"}, // no credentials
		{Endpoint: "live.aliyuncs.com", Credentials: ok.Credentials, SignatureAlgorithm: "v3"},
		{Endpoint: "live.aliyuncs.com", Credentials: ok.Credentials, RequestTimeout: -1},
		{Endpoint: "live.aliyuncs.com", Credentials: ok.Credentials, MaxConns: -1},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for i, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("case %d: want error", i)
		}
	}
	// Incomplete static credentials fail New with ErrNoCredentials.
	_, err := New(context.Background(), Options{Endpoint: "live.aliyuncs.com", Credentials: StaticCredentials("", "", "")})
	if !errors.Is(err, ErrNoCredentials) {
		t.Errorf("New with empty credentials: %v, want ErrNoCredentials", err)
	}
}
