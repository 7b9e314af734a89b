package livesim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"
)

// SelfSignedCert returns a new self-signed certificate (ECDSA P-256, its
// own CA, valid for 24 hours) for hosts (IP addresses or DNS names), and
// the certificate in PEM form.
//
// It is how the simulator's STS is served over TLS: credentials-go calls
// STS at https://<endpoint> only, and verifies the server against the
// system roots. Serve the Server with the certificate (httptest:
// NewUnstartedServer, TLS = &tls.Config{Certificates: ...}, StartTLS) and
// make the client process trust the PEM: SSL_CERT_FILE=<file holding it>,
// set before the process first verifies a certificate (crypto/x509 reads
// the roots once). httptest.NewTLSServer's own certificate would do too,
// but trusting it process-wide would also trust every other test server.
func SelfSignedCert(hosts ...string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "livesim"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// TrustLoopbackCert makes the calling process trust a new self-signed
// certificate for the loopback addresses (127.0.0.1, ::1, localhost):
// it writes the certificate to dir and points SSL_CERT_FILE at it. Call it
// first thing in a test binary's TestMain, before anything verifies a
// certificate (crypto/x509 reads the roots once), then serve the
// simulator's STS over TLS with the returned certificate (ServeTLS).
func TrustLoopbackCert(dir string) (tls.Certificate, error) {
	cert, pemBytes, err := SelfSignedCert("127.0.0.1", "::1", "localhost")
	if err != nil {
		return tls.Certificate{}, err
	}
	f := filepath.Join(dir, "sts-ca.pem")
	if err := os.WriteFile(f, pemBytes, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	return cert, os.Setenv("SSL_CERT_FILE", f)
}

// ServeTLS serves h over TLS with cert on a loopback port; Close the
// server when done.
func ServeTLS(h http.Handler, cert tls.Certificate) *httptest.Server {
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ts.StartTLS()
	return ts
}
