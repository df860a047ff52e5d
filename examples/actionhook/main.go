// Command actionhook is the decision service that an Auth0 post-login Action
// calls: it answers the Action's signed requests (package postlogin) by
// linking the login into the existing user with the same verified email,
// through the Auth0 Management API (package mgmt).
//
// Usage:
//
//	actionhook -domain TENANT.auth0.com -client-id ID -client-secret SECRET -secret HMAC_SECRET [flags]
//	actionhook -print-action
//
// Each of -domain, -client-id, -client-secret, -secret and -previous-secret
// may come from the environment instead: AUTH0_DOMAIN, AUTH0_CLIENT_ID,
// AUTH0_CLIENT_SECRET, LINKING_SECRET and LINKING_PREVIOUS_SECRET (prefer the environment for secrets: command lines are
// visible to other users of the machine). A flag given on the command line
// wins over its variable.
//
// At startup it gets its Management API token and checks its scopes
// (mgmt.Store.CheckAccess): a configuration error (credentials refused, a
// domain, port, scheme or CA that is not the tenant's, a missing scope)
// exits 1 before serving, with the cause on standard error. A tenant merely
// out of reach does not stop it: it serves, and /healthz answers 503 with
// the cause until a check in the background gets a token.
//
// Once it listens, the first line of standard output is the URL to set as
// the Action secret LINKING_URL, e.g. http://127.0.0.1:40123/v1/post-login.
// The service also serves /healthz, logs JSON to standard error, and shuts
// down cleanly on SIGINT or SIGTERM. -print-action prints the Action's
// JavaScript and exits.
//
// See README.md for deploying it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/postlogin"
)

// shutdownTimeout bounds how long requests in flight may take to finish
// after a signal.
const shutdownTimeout = 10 * time.Second

// checkTimeout bounds one check of the access to the Management API.
const checkTimeout = 10 * time.Second

// Waits between the checks of a service that started with its tenant out of
// reach: the first, doubled after each failed check up to the last.
const (
	firstRecheck = time.Second
	maxRecheck   = 30 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "actionhook:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "actionhook:", err)
		os.Exit(1)
	}
}

// errUsage marks errors in the command line or the environment.
var errUsage = errors.New("usage")

type options struct {
	addr, domain, clientID, clientSecret string
	secret, previousSecret               string
	caFile, tlsCert, tlsKey              string
	failOpen, insecureHTTP, printAction  bool
	revokeSessions                       bool
	timeout                              time.Duration
}

// parse reads the command line, with defaults from getenv.
func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("actionhook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "`address` to listen on")
	fs.StringVar(&o.domain, "domain", getenv("AUTH0_DOMAIN"), "Auth0 tenant `domain` (or host:port of an emulator) [$AUTH0_DOMAIN]")
	fs.StringVar(&o.clientID, "client-id", getenv("AUTH0_CLIENT_ID"), "client `id` of the machine-to-machine application [$AUTH0_CLIENT_ID]")
	fs.StringVar(&o.clientSecret, "client-secret", getenv("AUTH0_CLIENT_SECRET"), "client `secret` of the machine-to-machine application [$AUTH0_CLIENT_SECRET]")
	fs.StringVar(&o.secret, "secret", getenv("LINKING_SECRET"), "`key` shared with the Action, at least 32 bytes [$LINKING_SECRET]")
	fs.StringVar(&o.previousSecret, "previous-secret", getenv("LINKING_PREVIOUS_SECRET"), "`key` also accepted while the Action moves to a new -secret [$LINKING_PREVIOUS_SECRET]")
	fs.StringVar(&o.caFile, "ca", "", "PEM `file` of the certificate authorities to trust for the Management API, instead of the system's")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate `file`: serve HTTPS (with -tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key `file` for -tls-cert")
	fs.BoolVar(&o.failOpen, "fail-open", false, "let logins go on unlinked when the Management API fails (default: deny them)")
	fs.BoolVar(&o.revokeSessions, "revoke-sessions", false, "after a link, revoke the existing user's sessions and refresh tokens (scopes delete:sessions, delete:refresh_tokens)")
	fs.DurationVar(&o.timeout, "timeout", postlogin.DefaultTimeout, "how long one login may take, at most 15s")
	fs.BoolVar(&o.insecureHTTP, "insecure-http", false, "speak plain HTTP to -domain, client secret included: for a local emulator only")
	fs.BoolVar(&o.printAction, "print-action", false, "print the post-login Action's JavaScript and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if o.printAction {
		return o, nil
	}
	for _, req := range []struct{ value, name string }{
		{o.domain, "-domain or AUTH0_DOMAIN"},
		{o.clientID, "-client-id or AUTH0_CLIENT_ID"},
		{o.clientSecret, "-client-secret or AUTH0_CLIENT_SECRET"},
		{o.secret, "-secret or LINKING_SECRET"},
	} {
		if req.value == "" {
			return o, fmt.Errorf("%w: %s is required", errUsage, req.name)
		}
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, fmt.Errorf("%w: -tls-cert and -tls-key go together", errUsage)
	}
	return o, nil
}

// run is the program: it serves until ctx is done, then shuts down.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	if o.printAction {
		_, err := io.WriteString(stdout, postlogin.ActionSource())
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))

	h, store, err := newHandler(ctx, o, logger)
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("%w: -tls-cert, -tls-key: %w", errUsage, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// A configuration error stops the service before it serves (so that
	// -fail-open never lets logins through for it); a tenant out of reach
	// does not.
	checkCtx, cancel := context.WithTimeout(ctx, checkTimeout)
	accessErr := store.CheckAccess(checkCtx)
	cancel()
	if errors.Is(accessErr, mgmt.ErrConfig) {
		return accessErr
	}
	ready := &readiness{err: accessErr}

	inner := h.Mux()
	mux := http.NewServeMux()
	mux.Handle("/", inner)
	mux.Handle(postlogin.HealthPath, ready.healthz(inner))
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      o.timeout + 5*time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s%s", scheme, ln.Addr(), postlogin.Path)
	if _, err := fmt.Fprintln(stdout, url); err != nil {
		ln.Close()
		return err
	}
	logger.Info("actionhook: serving", slog.String("url", url), slog.String("domain", o.domain),
		slog.Bool("fail_open", o.failOpen), slog.Duration("timeout", o.timeout), slog.Bool("ready", accessErr == nil))

	checkerCtx, stopChecker := context.WithCancel(ctx)
	var checker sync.WaitGroup
	if accessErr != nil {
		logger.Warn("actionhook: not ready: the Management API is out of reach", slog.String("error", accessErr.Error()))
		checker.Add(1)
		go func() {
			defer checker.Done()
			ready.recheck(checkerCtx, store, logger)
		}()
	}
	defer func() {
		stopChecker()
		checker.Wait()
	}()

	served := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("actionhook: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("actionhook: stopped")
	return nil
}

// readiness is whether the service has had its Management API token: err
// is why not, nil once it has.
type readiness struct {
	mu  sync.Mutex
	err error
}

func (r *readiness) set(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *readiness) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// healthz answers 503 with the cause while the service is not ready, and
// hands the request to ready (the liveness check of postlogin) once it is.
func (r *readiness) healthz(ready http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		err := r.get()
		if err == nil {
			ready.ServeHTTP(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "not ready", "error": err.Error()})
	})
}

// recheck checks the access to the Management API again, waiting longer
// after each failure, until a check succeeds or ctx is done.
func (r *readiness) recheck(ctx context.Context, store *mgmt.Store, logger *slog.Logger) {
	wait := firstRecheck
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		checkCtx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := store.CheckAccess(checkCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		r.set(err)
		if err == nil {
			logger.Info("actionhook: ready")
			return
		}
		logger.Warn("actionhook: not ready", slog.String("error", err.Error()))
		wait = min(2*wait, maxRecheck)
	}
}

// newHandler builds the Management API store, the Linker and the Handler.
func newHandler(ctx context.Context, o options, logger *slog.Logger) (*postlogin.Handler, *mgmt.Store, error) {
	var opts []mgmt.Option
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: -ca: %w", errUsage, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("%w: -ca: no PEM certificate in %s", errUsage, o.caFile)
		}
		opts = append(opts, mgmt.WithRootCAs(pool))
	}
	if o.insecureHTTP {
		opts = append(opts, mgmt.WithInsecureHTTP())
	}
	store, err := mgmt.New(ctx, o.domain, o.clientID, o.clientSecret, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	policy := linking.Policy{OnStoreError: linking.FailClosed}
	if o.failOpen {
		policy.OnStoreError = linking.FailOpen
	}
	linker := &linking.Linker{
		Store: store, Policy: policy, Logger: logger,
		RevokeSessions: o.revokeSessions, Notifier: logNotifier{logger},
	}
	c := postlogin.Config{Secret: []byte(o.secret), Timeout: o.timeout, Logger: logger}
	if o.previousSecret != "" {
		c.PreviousSecrets = [][]byte{[]byte(o.previousSecret)}
	}
	h, err := postlogin.NewHandler(linker, c)
	if errors.Is(err, postlogin.ErrWeakSecret) {
		return nil, nil, fmt.Errorf("%w: secrets (-secret, -previous-secret) must be at least %d bytes; generate one with: openssl rand -hex 32",
			errUsage, postlogin.MinSecretLen)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return h, store, nil
}

// logNotifier stands for telling the person of a new sign-in method: it logs
// the notice. A real service would send it by email to the primary's
// address, so that a link the person did not make does not go unnoticed.
type logNotifier struct{ logger *slog.Logger }

func (n logNotifier) NotifyLinked(ctx context.Context, primary linking.User, linked linking.Identity) error {
	n.logger.LogAttrs(ctx, slog.LevelInfo, "actionhook: notice to the user",
		slog.String("user_id", primary.ID),
		slog.String("connection", linked.Connection),
		slog.String("notice", "A new sign-in method ("+linked.Connection+") was linked to your account. If this was not you, contact support."))
	return nil
}
