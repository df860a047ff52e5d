package cli

import (
	"context"
	"crypto/x509"
	"flag"
	"os"

	"github.com/idlink/linking/mgmt"
)

// ExitConfig is the exit code of a configuration the Management API
// refuses: credentials, scopes, a domain, scheme or certificate that does
// not reach the tenant. Trying again cannot help until it is fixed.
const ExitConfig = 5

// ClientFlags are the flags that reach a tenant's Management API:
// -domain, -client-id and -client-secret, whose defaults are the variables
// AUTH0_DOMAIN, AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET, -ca and
// -insecure-http.
type ClientFlags struct {
	domain, clientID, clientSecret, caFile string
	insecureHTTP                           bool
	getenv                                 func(string) string
}

// Register adds the flags to fs, with defaults from getenv.
func (c *ClientFlags) Register(fs *flag.FlagSet, getenv func(string) string) {
	c.getenv = getenv
	fs.StringVar(&c.domain, "domain", getenv("AUTH0_DOMAIN"), "the tenant's `domain`, e.g. example.eu.auth0.com, or host:port of an emulator [$AUTH0_DOMAIN]")
	fs.StringVar(&c.clientID, "client-id", getenv("AUTH0_CLIENT_ID"), "the machine-to-machine application's client `id` [$AUTH0_CLIENT_ID]")
	// The secret's default is read later, so that -h does not print it.
	fs.StringVar(&c.clientSecret, "client-secret", "", "the client `secret`; prefer $AUTH0_CLIENT_SECRET, which other users of the machine cannot see")
	fs.StringVar(&c.caFile, "ca", "", "PEM `file` of the certificate authorities to trust for the domain instead of the system's (an emulator started with -tls -ca-out FILE)")
	fs.BoolVar(&c.insecureHTTP, "insecure-http", false, "speak plain HTTP to the domain, client secret included: a local emulator only")
}

// Domain returns the value of -domain.
func (c *ClientFlags) Domain() string { return c.domain }

// RootCAs returns the certificate authorities of -ca, or nil without it:
// the system's. A file that cannot be read or holds no certificate is a
// UsageError naming -ca.
func (c *ClientFlags) RootCAs() (*x509.CertPool, error) {
	if c.caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.caFile)
	if err != nil {
		return nil, Usagef("-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, Usagef("-ca: no PEM certificate in %s", c.caFile)
	}
	return pool, nil
}

// Store returns a Store over the tenant, built with opts after those of the
// flags. It makes no request. A flag missing or malformed is a UsageError
// naming it.
func (c *ClientFlags) Store(ctx context.Context, opts ...mgmt.Option) (*mgmt.Store, error) {
	if c.clientSecret == "" {
		c.clientSecret = c.getenv("AUTH0_CLIENT_SECRET")
	}
	for _, req := range []struct{ value, name string }{
		{c.domain, "-domain or AUTH0_DOMAIN"},
		{c.clientID, "-client-id or AUTH0_CLIENT_ID"},
		{c.clientSecret, "-client-secret or AUTH0_CLIENT_SECRET"},
	} {
		if req.value == "" {
			return nil, Usagef("%s is required", req.name)
		}
	}
	var own []mgmt.Option
	if c.insecureHTTP {
		own = append(own, mgmt.WithInsecureHTTP())
	}
	pool, err := c.RootCAs()
	if err != nil {
		return nil, err
	}
	if pool != nil {
		own = append(own, mgmt.WithRootCAs(pool))
	}
	store, err := mgmt.New(ctx, c.domain, c.clientID, c.clientSecret, append(own, opts...)...)
	if err != nil {
		// The values are there (above): what New refuses is the domain.
		return nil, Usagef("-domain: %w", err)
	}
	return store, nil
}
