package postlogintest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"

	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// Server is an Emulator listening on HTTPS on a loopback address, with a
// certificate of its own for 127.0.0.1: one tenant URL for the browser,
// the relying parties, go-auth0 and the Action.
type Server struct {
	*Emulator
	// URL is the tenant's origin, e.g. "https://127.0.0.1:41234".
	URL string

	srv *httptest.Server
}

// NewServer starts an Emulator of the tenant of mg over HTTPS. It panics if
// the Emulator cannot be made: it is meant for test set-up.
func NewServer(mg *mgmttest.Emulator, opts ...Option) *Server {
	srv := httptest.NewUnstartedServer(nil)
	base := "https://" + srv.Listener.Addr().String()
	e, err := NewEmulator(mg, base, opts...)
	if err != nil {
		srv.Close()
		panic(err)
	}
	srv.Config.Handler = e
	srv.StartTLS()
	return &Server{Emulator: e, URL: srv.URL, srv: srv}
}

// Close releases the Management API's requests waiting out a latency,
// closes the client connections and shuts the server down.
func (s *Server) Close() {
	s.Mgmt.Close()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Certificate returns the server's certificate.
func (s *Server) Certificate() *x509.Certificate { return s.srv.Certificate() }

// CertificatePEM returns the server's certificate in PEM, e.g. for Node's
// NODE_EXTRA_CA_CERTS.
func (s *Server) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// Client returns a new HTTP client that trusts the server's certificate,
// keeps cookies (the tenant's session) and follows no redirect: every
// answer comes back to the caller, as to a browser's network log.
func (s *Server) Client() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ClientOptions returns the mgmt options that let mgmt.New reach the
// server's Management API: mgmt.WithRootCAs with its certificate. Give
// mgmt.New the server's Domain and the Management API's client
// credentials (Mgmt.ClientID, Mgmt.ClientSecret).
func (s *Server) ClientOptions() []mgmt.Option {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return []mgmt.Option{mgmt.WithRootCAs(pool)}
}
