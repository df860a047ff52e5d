// Command emulator serves an emulated Auth0 Management API (package
// mgmt/mgmttest) over an in-memory tenant seeded from a file, for trying the
// SDK, curl or a post-login Action's code against it without a tenant.
//
//	go run ./examples/emulator -addr 127.0.0.1:0 -users FILE [-tls -ca-out FILE]
//	    [-client-id ID -client-secret SECRET] [-rate N -burst M] [-latency D]
//
// It prints the base URL (e.g. http://127.0.0.1:41234) as the first line of
// its standard output once it accepts connections, logs each request to
// standard error, and serves until interrupted (SIGINT or SIGTERM). FILE is
// a JSON array of users shaped as GET /api/v2/users returns them, or a user
// export as Auth0, backfill export and backfill generate write it. With -tls
// it serves HTTPS with a self-signed certificate for 127.0.0.1 and
// localhost, written as PEM to the -ca-out file for clients to trust. See
// README.md for the flags and exit codes.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/idlink/linking/examples/internal/cli"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt/mgmttest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli.Report(os.Stderr, "emulator", run(ctx, os.Args[1:], os.Stdout, os.Stderr)))
}

// config is what the command line asks for.
type config struct {
	addr, users, caOut     string
	tls                    bool
	clientID, clientSecret string
	rate                   float64
	burst                  int
	latency                time.Duration
}

const usage = `Usage: emulator [-addr 127.0.0.1:0] [-users FILE] [-tls -ca-out FILE]
       [-client-id ID -client-secret SECRET] [-rate N -burst M] [-latency D]

Serves an emulated Auth0 Management API over an in-memory tenant; prints its
base URL as the first line of standard output once it accepts connections,
logs each request to standard error, and serves until interrupted.
Exit codes: 0 stopped by SIGINT or SIGTERM (or after -h, -version), 1 error,
2 usage.
`

// parseFlags reads the command line; done means -h or -version was given
// and answered on stdout.
func parseFlags(args []string, stdout io.Writer) (c config, done bool, err error) {
	fs := cli.NewFlagSet("emulator", usage)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:0", "`address` to listen on; port 0 picks a free one")
	fs.StringVar(&c.users, "users", "", "`file` of the tenant's users: a JSON array shaped as GET /api/v2/users returns them, or an export as Auth0, backfill export and backfill generate write it (newline-delimited JSON, gzipped or not); none: an empty tenant")
	fs.BoolVar(&c.tls, "tls", false, "serve HTTPS with a self-signed certificate for 127.0.0.1 and localhost")
	fs.StringVar(&c.caOut, "ca-out", "", "with -tls, `file` to write the certificate to, as PEM, for clients to trust")
	fs.StringVar(&c.clientID, "client-id", mgmttest.DefaultClientID, "client `id` that /oauth/token accepts")
	fs.StringVar(&c.clientSecret, "client-secret", mgmttest.DefaultClientSecret, "client `secret` that /oauth/token accepts")
	fs.Float64Var(&c.rate, "rate", 0, "rate limit of /api/v2, in `requests` per second (0: no limit)")
	fs.IntVar(&c.burst, "burst", 0, "with -rate, the `size` of the rate limit's bucket (0: the rate, rounded up)")
	fs.DurationVar(&c.latency, "latency", 0, "`delay` before every answer")
	if done, err := cli.Parse(fs, args, stdout); done || err != nil {
		return c, done, err
	}
	switch {
	case c.caOut != "" && !c.tls:
		return c, false, cli.Usagef("-ca-out needs -tls")
	case c.rate < 0 || c.burst < 0:
		return c, false, cli.Usagef("-rate and -burst must not be negative")
	}
	if c.rate > 0 && c.burst == 0 {
		c.burst = int(math.Ceil(c.rate))
	}
	return c, false, nil
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, done, err := parseFlags(args, stdout)
	if done || err != nil {
		return err
	}
	tenant, err := loadTenant(ctx, c.users)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	opts := []mgmttest.Option{mgmttest.WithClientCredentials(c.clientID, c.clientSecret), mgmttest.WithLogger(logger)}
	if c.rate > 0 {
		opts = append(opts, mgmttest.WithRateLimit(c.rate, c.burst))
	}
	if c.latency > 0 {
		opts = append(opts, mgmttest.WithLatency(c.latency))
	}
	emulator := mgmttest.NewEmulator(tenant, opts...)

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: emulator, ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if c.tls {
		cert, err := selfSigned(c.caOut)
		if err != nil {
			ln.Close()
			return err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	fmt.Fprintf(stdout, "%s://%s\n", scheme, ln.Addr())
	logger.Info("emulator: serving", "users", len(tenant.Users()), "client_id", c.clientID)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("emulator: shutting down")
	emulator.Close() // release requests waiting out a latency
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// loadTenant returns a tenant holding the users of the file path, or none.
func loadTenant(ctx context.Context, path string) (*linkingtest.Tenant, error) {
	tenant := linkingtest.NewTenant()
	if path == "" {
		return tenant, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-users: %w", err)
	}
	defer f.Close()
	users, err := mgmttest.ReadUsers(f)
	if err != nil {
		return nil, fmt.Errorf("-users %s: %w", path, err)
	}
	for _, u := range users {
		if err := tenant.AddUser(ctx, u); err != nil {
			return nil, fmt.Errorf("-users %s: user %q: %w", path, u.ID, err)
		}
	}
	return tenant, nil
}

// selfSigned returns a new self-signed ECDSA certificate for 127.0.0.1, ::1
// and localhost, valid for a day, and writes it as PEM to caOut, when set.
func selfSigned(caOut string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Management API emulator"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if caOut != "" {
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := os.WriteFile(caOut, certPEM, 0o644); err != nil {
			return tls.Certificate{}, err
		}
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
