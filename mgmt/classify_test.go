package mgmt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"

	"golang.org/x/oauth2"

	"github.com/idlink/linking"
)

// TestClassify: every failure that is not an API answer falls in one class,
// by its type or status, never by its text.
func TestClassify(t *testing.T) {
	transport := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://example.eu.auth0.com/oauth/token", Err: err}
	}
	refused := func(status int, body string) error {
		return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, Body: []byte(body)}
	}
	const (
		config      = "config"
		unavailable = "unavailable"
		rateLimited = "rate limited"
		none        = "none"
	)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"connection refused", transport(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), unavailable},
		{"connection reset", transport(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), unavailable},
		{"timeout", transport(context.DeadlineExceeded), unavailable},
		{"canceled", context.Canceled, unavailable},
		{"gave up waiting for shared work", fmt.Errorf("%w: %w", linking.ErrUnavailable, context.Canceled), unavailable},
		{"no such host", transport(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}}), config},
		{"DNS server failure", transport(&net.DNSError{Err: "server misbehaving", Name: "x.auth0.com", IsTemporary: true}), unavailable},
		{"DNS timeout", transport(&net.DNSError{Err: "i/o timeout", Name: "x.auth0.com", IsTimeout: true}), unavailable},
		{"unknown authority", transport(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), config},
		{"bare unknown authority", transport(x509.UnknownAuthorityError{}), config},
		{"host name mismatch", transport(x509.HostnameError{Host: "localhost"}), config},
		{"expired certificate", transport(x509.CertificateInvalidError{Reason: x509.Expired}), config},
		{"plain HTTP server, from the Transport", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, config},
		{"plain HTTP server, from the Client", transport(http.ErrSchemeMismatch), config},
		{"token 401", transport(refused(401, `{"error":"access_denied"}`)), config},
		{"token 403", transport(refused(403, `{"error":"access_denied"}`)), config},
		{"token 400, an HTTP request to an HTTPS port", transport(refused(400, "Client sent an HTTP request to an HTTPS server.\n")), config},
		{"token 404", transport(refused(404, "<html>Not Found</html>")), config},
		{"token 429", transport(refused(429, `{"error":"too_many_requests"}`)), rateLimited},
		{"token 503", transport(refused(503, `{"error":"server_error"}`)), unavailable},
		{"no token in a 2xx answer", transport(fmt.Errorf("%w: the token endpoint answered no token: oauth2: cannot parse json", ErrConfig)), config},
		{"malformed answer", fmt.Errorf("failed to unmarshal response payload: %w", &json.SyntaxError{}), none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err, errorAnswer{}, false)
			class := none
			switch {
			case errors.Is(got, ErrConfig):
				class = config
			case errors.Is(got, linking.ErrRateLimited):
				class = rateLimited
			case errors.Is(got, linking.ErrUnavailable):
				class = unavailable
			}
			if class != tt.want {
				t.Errorf("classify(%v): got class %s (%v), want %s", tt.err, class, got, tt.want)
			}
			// One class only; ErrRateLimited wraps ErrUnavailable.
			if errors.Is(got, ErrConfig) && errors.Is(got, linking.ErrUnavailable) {
				t.Errorf("classify(%v) = %v: got both ErrConfig and ErrUnavailable, want one", tt.err, got)
			}
			if errors.Is(got, linking.ErrRateLimited) != (tt.want == rateLimited) {
				t.Errorf("classify(%v) = %v: ErrRateLimited: got %t, want %t", tt.err, got, !(tt.want == rateLimited), tt.want == rateLimited)
			}
		})
	}
}

// TestTokenRefusal: a refused token request says its OAuth2 description, or
// else quotes the start of its body.
func TestTokenRefusal(t *testing.T) {
	long := make([]byte, maxRefusal+50)
	for i := range long {
		long[i] = 'x'
	}
	tests := []struct {
		name string
		err  *oauth2.RetrieveError
		want string
	}{
		{"description", &oauth2.RetrieveError{ErrorDescription: "Unauthorized", Body: []byte(`{}`)}, "Unauthorized"},
		{"body", &oauth2.RetrieveError{Body: []byte("Client sent an HTTP request to an HTTPS server.\n")}, "Client sent an HTTP request to an HTTPS server."},
		{"long body", &oauth2.RetrieveError{Body: long}, string(long[:maxRefusal]) + "..."},
		{"nothing", &oauth2.RetrieveError{}, "Bad Request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.err.Response = &http.Response{StatusCode: http.StatusBadRequest}
			if got := tokenRefusal(tt.err); got != tt.want {
				t.Errorf("tokenRefusal: got %q, want %q", got, tt.want)
			}
		})
	}
}
