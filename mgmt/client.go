package mgmt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/auth0/go-auth0/management"
)

// DefaultTimeout bounds one Store call made through a client built by New or
// NewManagement, retries included, unless WithHTTPClient gives a client of
// its own. It also bounds every token request, and the listing of the
// tenant's database connections (see Store.ResolveConnectionIDs).
const DefaultTimeout = 10 * time.Second

// DefaultRetryStrategy is the retry strategy of New and NewManagement: two
// retries on 429 and on 5xx, and on transport errors (go-auth0 always retries
// those, POST included, but for an untrusted certificate), each attempt
// bounded by PerAttemptTimeout. go-auth0 waits at least 1 s between
// attempts, and follows X-RateLimit-Reset for 429s (at most 10 s). A Store
// call ends at its first configuration error (ErrConfig), without a retry.
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

// WithoutRetries turns go-auth0's retries off: each Store call is one HTTP
// request (a token request aside), for a caller that retries itself, at its
// own pace, and counts every request, as a backfill does.
func WithoutRetries() Option {
	return WithRetryStrategy(management.RetryStrategy{})
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
// for the client it builds. The Store resolves connection ids
// (Store.ResolveConnectionIDs); call Store.CheckAccess at startup.
//
// domain is the tenant's host name, e.g. "example.eu.auth0.com" (or
// host:port), without a scheme or a path; an empty or malformed domain, an
// empty client id or secret is an error wrapping ErrConfig. The Store keeps
// the values of ctx (for its token requests), not its cancellation: it works
// after ctx is done.
//
// The application needs the scopes read:users and update:users, and
// read:connections while Store.ResolveConnectionIDs is set (see the package
// documentation for the others). The Store's HTTPClient is the client of its
// API requests, without their token.
func New(ctx context.Context, domain, clientID, clientSecret string, opts ...Option) (*Store, error) {
	cfg := newConfig(opts)
	c, err := cfg.build(ctx, domain, clientID, clientSecret)
	if err != nil {
		return nil, err
	}
	s := NewStore(c.m)
	s.HTTPClient = c.client
	s.tokens = c.tokens
	s.budget = c.budget
	s.ResolveConnectionIDs = true
	return s, nil
}

// NewManagement returns a go-auth0 Management client for domain (e.g.
// "example.eu.auth0.com") with safe defaults: requests and token requests
// bounded by DefaultTimeout, DefaultRetryStrategy, and a token fetched with
// the client credentials and cached until shortly before it expires, so that
// a process makes one token request per token lifetime (24 h by default).
// Its arguments are checked as New checks them.
//
// Token requests keep the values of ctx, not its cancellation. Through a
// Store, a configuration error (see ErrConfig) ends a call at once; called
// directly, the client retries it as go-auth0 retries transport errors.
func NewManagement(ctx context.Context, domain, clientID, clientSecret string, opts ...Option) (*management.Management, error) {
	cfg := newConfig(opts)
	c, err := cfg.build(ctx, domain, clientID, clientSecret)
	if err != nil {
		return nil, err
	}
	return c.m, nil
}

func newConfig(opts []Option) config {
	cfg := config{retry: DefaultRetryStrategy}
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg
}

// built is what build makes: the go-auth0 client, the client of token
// requests and downloads (no token), and the token source.
type built struct {
	m      *management.Management
	client *http.Client
	tokens *tokenSource
	budget *budget
}

// build checks the arguments and builds a go-auth0 client whose requests
// carry the token of the client credentials.
func (cfg *config) build(ctx context.Context, domain, clientID, clientSecret string) (built, error) {
	if err := checkArgs(domain, clientID, clientSecret); err != nil {
		return built{}, err
	}
	client, err := cfg.httpClient()
	if err != nil {
		return built{}, err
	}
	scheme := "https"
	if cfg.insecureHTTP {
		scheme = "http"
	}
	tokens := newTokenSource(ctx, scheme+"://"+domain, clientID, clientSecret, client)
	b := &budget{}
	// go-auth0 wraps the client's transport with retries, and with a token
	// source of its own, which does not tell the token's scopes and retries
	// every failed token request: give it a placeholder token, which
	// apiTransport replaces with the token of tokens.
	api := *client
	// The transport sends 429s again itself, as often as the retry
	// strategy says, within the budget and the deadline.
	retry := cfg.retry
	transport := apiTransport{tokens: tokens, budget: b, base: client.Transport}
	if slices.Contains(retry.Statuses, http.StatusTooManyRequests) {
		transport.rateLimitedRetries = retry.MaxRetries
		retry.Statuses = slices.DeleteFunc(slices.Clone(retry.Statuses), func(s int) bool { return s == http.StatusTooManyRequests })
	}
	api.Transport = transport
	mopts := []management.Option{management.WithStaticToken("")}
	if cfg.insecureHTTP {
		mopts = append(mopts, management.WithInsecure())
	}
	mopts = append(mopts,
		management.WithClient(&api),
		management.WithRetryStrategy(retry),
	)
	if cfg.userAgent != "" {
		mopts = append(mopts, management.WithUserAgent(cfg.userAgent))
	}
	mopts = append(mopts, cfg.more...)
	m, err := management.New(domain, mopts...)
	if err != nil {
		return built{}, fmt.Errorf("mgmt: %w: %w", ErrConfig, err)
	}
	return built{m: m, client: client, tokens: tokens, budget: b}, nil
}

// checkArgs refuses an empty or malformed domain and empty credentials.
func checkArgs(domain, clientID, clientSecret string) error {
	example := "; give the tenant's host name alone, e.g. example.eu.auth0.com"
	switch {
	case domain == "":
		return fmt.Errorf("%w: the domain is empty%s", ErrConfig, example)
	case strings.Contains(domain, "://"):
		return fmt.Errorf("%w: the domain %q has a scheme%s", ErrConfig, domain, example)
	case strings.ContainsAny(domain, "/?#"):
		return fmt.Errorf("%w: the domain %q has a path%s", ErrConfig, domain, example)
	case strings.IndexFunc(domain, unicode.IsSpace) >= 0:
		return fmt.Errorf("%w: the domain %q has spaces%s", ErrConfig, domain, example)
	}
	if u, err := url.Parse("https://" + domain); err != nil || u.Host != domain {
		return fmt.Errorf("%w: the domain %q is not a host name%s", ErrConfig, domain, example)
	}
	switch {
	case clientID == "":
		return fmt.Errorf("%w: the client id is empty", ErrConfig)
	case clientSecret == "":
		return fmt.Errorf("%w: the client secret is empty", ErrConfig)
	}
	return nil
}

// httpClient returns the client to send requests with: the configured one or
// one with DefaultTimeout, trusting rootCAs when set.
func (cfg *config) httpClient() (*http.Client, error) {
	c := &http.Client{Timeout: DefaultTimeout}
	if cfg.client != nil {
		copied := *cfg.client
		c = &copied
	}
	if c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	if cfg.rootCAs != nil {
		t, ok := c.Transport.(*http.Transport)
		if !ok {
			return nil, errors.New("mgmt: WithRootCAs needs an HTTP client whose Transport is an *http.Transport")
		}
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		t.TLSClientConfig.RootCAs = cfg.rootCAs
		c.Transport = t
	}
	return c, nil
}

// apiTransport sends the API requests of a Store: it sets their token,
// records for the Store call what go-auth0 drops of error answers, and ends
// the call on a configuration error (see callRecord.fail).
type apiTransport struct {
	tokens *tokenSource
	budget *budget
	// rateLimitedRetries is how often a 429 is sent again: the retry
	// strategy's MaxRetries when it retries 429.
	rateLimitedRetries int
	base               http.RoundTripper
}

// RoundTrip sends req when the budget admits it. A 429 answer is sent again
// (rateLimitedRetries times at most) when the budget admits it before the
// deadline: go-auth0's own retries would wait for the reset whatever the
// deadline, so New takes 429 out of them.
func (t apiTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := callRecordOf(req)
	tok, err := t.tokens.token(req.Context())
	if err != nil {
		rec.fail(err)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		seq, err := t.budget.admit(req.Context())
		if err != nil {
			rec.fail(err)
			return nil, err
		}
		send := req.Clone(req.Context()) // a RoundTripper leaves its request as it is
		if attempt > 0 && req.Body != nil && req.GetBody != nil {
			if send.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		tok.SetAuthHeader(send)
		res, err := t.base.RoundTrip(send)
		t.budget.observe(seq, res, time.Now())
		if err != nil {
			rec.fail(err)
			return nil, err
		}
		if res.StatusCode == http.StatusTooManyRequests && attempt < t.rateLimitedRetries && (req.Body == nil || req.GetBody != nil) {
			io.Copy(io.Discard, io.LimitReader(res.Body, maxErrorBody))
			res.Body.Close()
			continue
		}
		if rec != nil && res.StatusCode >= http.StatusBadRequest {
			rec.answered(readErrorAnswer(res))
		}
		return res, nil
	}
}
