package mgmt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"time"

	"github.com/auth0/go-auth0/management"
	"golang.org/x/oauth2"
)

// DefaultTimeout bounds one Store call made through a client built by New or
// NewManagement, retries included, unless WithHTTPClient gives a client of
// its own. It also bounds every token request.
const DefaultTimeout = 10 * time.Second

// DefaultRetryStrategy is the retry strategy of New and NewManagement: two
// retries on 429 and on 5xx, and on transport errors (go-auth0 always retries
// those, POST included), each attempt bounded by PerAttemptTimeout. go-auth0
// waits at least 1 s between attempts, and follows X-RateLimit-Reset for
// 429s (at most 10 s).
//
// A link whose answer is lost is sent again and refused; the Linker reads the
// primary back to learn that the link is in place.
var DefaultRetryStrategy = management.RetryStrategy{
	MaxRetries: 2,
	Statuses: []int{
		http.StatusTooManyRequests,
		http.StatusInternalServerError,
		http.StatusBadGateway,
		http.StatusServiceUnavailable,
		http.StatusGatewayTimeout,
	},
	PerAttemptTimeout: 4 * time.Second,
}

// Option configures New and NewManagement.
type Option func(*config)

type config struct {
	client       *http.Client
	retry        management.RetryStrategy
	rootCAs      *x509.CertPool
	insecureHTTP bool
	userAgent    string
	more         []management.Option
}

// WithHTTPClient makes the Management client send its requests, token
// requests included, with c instead of a client with DefaultTimeout. Give c a
// Timeout: http.DefaultClient has none. The retry strategy still applies on
// top of c.
func WithHTTPClient(c *http.Client) Option {
	return func(cfg *config) { cfg.client = c }
}

// WithRetryStrategy replaces DefaultRetryStrategy. A zero RetryStrategy
// turns retries off.
func WithRetryStrategy(r management.RetryStrategy) Option {
	return func(cfg *config) { cfg.retry = r }
}

// WithRootCAs makes the client trust the certificate authorities in pool,
// instead of the system's, for the API and its token endpoint: for an
// emulator or a proxy with a certificate of its own.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(cfg *config) { cfg.rootCAs = pool }
}

// WithInsecureHTTP makes the client speak plain HTTP to the domain, client
// credentials included: for tests against a local emulator only. Anyone on
// the path can read the client secret and the tokens.
func WithInsecureHTTP() Option {
	return func(cfg *config) { cfg.insecureHTTP = true }
}

// WithUserAgent sets the User-Agent header of API requests.
func WithUserAgent(ua string) Option {
	return func(cfg *config) { cfg.userAgent = ua }
}

// WithManagementOptions adds options of go-auth0, applied after those New
// derives from the other options.
func WithManagementOptions(opts ...management.Option) Option {
	return func(cfg *config) { cfg.more = append(cfg.more, opts...) }
}

// New returns a Store over the Management API of an Auth0 tenant, with the
// client credentials of a machine-to-machine application. See NewManagement
// for the client it builds.
//
// The application needs the scopes read:users and update:users, and
// read:connections when Store.ResolveConnectionIDs is set (see the package
// documentation for the others). The Store's HTTPClient is the client of its
// API requests, without their token.
func New(ctx context.Context, domain, clientID, clientSecret string, opts ...Option) (*Store, error) {
	cfg := newConfig(opts)
	client, err := cfg.httpClient()
	if err != nil {
		return nil, err
	}
	m, err := cfg.management(ctx, domain, clientID, clientSecret, client)
	if err != nil {
		return nil, err
	}
	s := NewStore(m)
	s.HTTPClient = client
	return s, nil
}

// NewManagement returns a go-auth0 Management client for domain (e.g.
// "example.eu.auth0.com") with safe defaults: requests and token requests
// bounded by DefaultTimeout, DefaultRetryStrategy, and a token fetched with
// the client credentials and cached until shortly before it expires, so that
// a process makes one token request per token lifetime (24 h by default).
//
// ctx is the context of every token request, for the life of the client:
// give a long-lived one (e.g. the process's), never a request's, or the
// client stops working when that request ends.
func NewManagement(ctx context.Context, domain, clientID, clientSecret string, opts ...Option) (*management.Management, error) {
	cfg := newConfig(opts)
	client, err := cfg.httpClient()
	if err != nil {
		return nil, err
	}
	return cfg.management(ctx, domain, clientID, clientSecret, client)
}

func newConfig(opts []Option) config {
	cfg := config{retry: DefaultRetryStrategy}
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg
}

// management returns a go-auth0 client that sends its requests with client.
func (cfg *config) management(ctx context.Context, domain, clientID, clientSecret string, client *http.Client) (*management.Management, error) {
	// The token source sends its requests with the client in its context,
	// and with http.DefaultClient (no timeout, system roots) otherwise.
	tokenCtx := context.WithValue(ctx, oauth2.HTTPClient, client)

	var mopts []management.Option
	if cfg.insecureHTTP {
		// WithInsecure switches the scheme to http, and must come first:
		// WithClientCredentials derives the token URL from the scheme, and
		// replaces the static token WithInsecure sets.
		mopts = append(mopts, management.WithInsecure())
	}
	mopts = append(mopts,
		management.WithClientCredentials(tokenCtx, clientID, clientSecret),
		management.WithClient(client),
		management.WithRetryStrategy(cfg.retry),
	)
	if cfg.userAgent != "" {
		mopts = append(mopts, management.WithUserAgent(cfg.userAgent))
	}
	mopts = append(mopts, cfg.more...)
	return management.New(domain, mopts...)
}

// httpClient returns the client to send requests with: the configured one or
// one with DefaultTimeout, trusting rootCAs when set, with a transport that
// records Auth0's errorCode for classify.
func (cfg *config) httpClient() (*http.Client, error) {
	c := &http.Client{Timeout: DefaultTimeout}
	if cfg.client != nil {
		copied := *cfg.client
		c = &copied
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	if cfg.rootCAs != nil {
		t, ok := base.(*http.Transport)
		if !ok {
			return nil, errors.New("mgmt: WithRootCAs needs an HTTP client whose Transport is an *http.Transport")
		}
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		t.TLSClientConfig.RootCAs = cfg.rootCAs
		base = t
	}
	c.Transport = errorCodeTransport{base: base}
	return c, nil
}
