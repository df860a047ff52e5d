// Command actionhook is the decision service that an Auth0 post-login Action
// calls: it answers the Action's signed requests (package postlogin) by
// linking the login into the existing user with the same verified email,
// through the Auth0 Management API (package mgmt).
//
// Usage:
//
//	actionhook -domain TENANT.auth0.com -client-id ID [-select oldest] [flags]
//	actionhook -print-action
//
// -domain and -client-id may come from AUTH0_DOMAIN and AUTH0_CLIENT_ID;
// the secrets from AUTH0_CLIENT_SECRET, LINKING_SECRET and
// LINKING_PREVIOUS_SECRET (prefer the environment for secrets: command
// lines are visible to other users of the machine). A flag given on the
// command line wins over its variable. -trust-providers,
// -trust-connections and -select set the linking policy, with the same
// names and meaning as in the backfill program.
//
// With -confirm refused or always, an existing account the rule would not
// link (refused), or every one (always), is linked only after the person
// proves it: the service serves the consent page and the proof login's
// callback (package postlogin, ConfirmConfig) at the origin -base-url, with
// the tenant's -issuer and the linking client -linking-client-id; the
// secrets come from LINKING_CONFIRM_SECRET, LINKING_CONTINUE_SECRET and
// LINKING_CLIENT_SECRET.
//
// At startup it gets its Management API token and checks its scopes
// (mgmt.Store.CheckAccess; with -revoke-sessions, those of the revocation
// too): a configuration error (credentials refused, a domain, port, scheme
// or CA that is not the tenant's, a missing scope) exits 5 before serving,
// with the cause on standard error. A tenant merely out of reach does not
// stop it: it serves, and /healthz answers 503 with the cause until a check
// in the background gets a token. Usage errors exit 2.
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
	"encoding/json"
	"errors"
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
	"github.com/idlink/linking/examples/internal/cli"
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
	os.Exit(exitCode(os.Stderr, run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)))
}

// exitCode reports the error of run on stderr and returns the exit code.
func exitCode(stderr io.Writer, err error) int {
	code := cli.Report(stderr, "actionhook", err)
	if code == cli.ExitError && errors.Is(err, mgmt.ErrConfig) {
		return cli.ExitConfig
	}
	return code
}

const usage = `Usage: actionhook [-addr 127.0.0.1:8080] -domain DOMAIN -client-id ID [flags]
       actionhook -confirm refused -issuer https://DOMAIN/ -base-url https://SERVICE -linking-client-id ID ... [flags]
       actionhook -print-action

The decision service a post-login Action calls: it links the login into the
existing user with the same verified email, through the Management API.
Secrets come from the environment: AUTH0_CLIENT_SECRET, LINKING_SECRET and
LINKING_PREVIOUS_SECRET; with -confirm, LINKING_CONFIRM_SECRET,
LINKING_CONTINUE_SECRET and LINKING_CLIENT_SECRET. At startup it checks its
Management API access;
once it listens, the first line of standard output is the URL to set as the
Action secret LINKING_URL. Logs are JSON lines on standard error.

Exit codes: 0 stopped by SIGINT or SIGTERM (or after -h, -version,
-print-action), 1 error, 2 usage, 5 configuration refused by the Management
API (credentials, scopes, domain, scheme, certificate).
`

type options struct {
	addr                   string
	client                 cli.ClientFlags
	policy                 cli.PolicyFlags
	secret, previousSecret string
	tlsCert, tlsKey        string
	failOpen, printAction  bool
	revokeSessions         bool
	timeout                time.Duration
	confirm                confirmOptions
}

// confirmOptions are the flags of confirm before linking.
type confirmOptions struct {
	mode                          string
	issuer, baseURL               string
	clientID, clientSecret        string
	confirmSecret, continueSecret string
}

// confirmModes are the values of -confirm.
var confirmModes = map[string]linking.ConfirmMode{
	"never": linking.ConfirmNever, "refused": linking.ConfirmRefused, "always": linking.ConfirmAlways,
}

// parse reads the command line, with defaults from getenv; done means -h
// or -version was given and answered on stdout.
func parse(args []string, getenv func(string) string, stdout io.Writer) (o options, done bool, err error) {
	fs := cli.NewFlagSet("actionhook", usage)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "`address` to listen on")
	o.client.Register(fs, getenv)
	// The secrets' defaults are read after parsing, so that -h does not
	// print them.
	fs.StringVar(&o.secret, "secret", "", "`key` shared with the Action, at least 32 bytes; prefer $LINKING_SECRET")
	fs.StringVar(&o.previousSecret, "previous-secret", "", "`key` also accepted while the Action moves to a new -secret; prefer $LINKING_PREVIOUS_SECRET")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate `file`: serve HTTPS (with -tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key `file` for -tls-cert")
	o.policy.Register(fs)
	fs.BoolVar(&o.failOpen, "fail-open", false, "let logins go on unlinked when the Management API fails (default: deny them)")
	fs.BoolVar(&o.revokeSessions, "revoke-sessions", false, "after a link, revoke the existing user's sessions and refresh tokens (scopes delete:sessions, delete:refresh_tokens)")
	fs.DurationVar(&o.timeout, "timeout", postlogin.DefaultTimeout, fmt.Sprintf("how long one login may take, at most %v", postlogin.MaxTimeout))
	fs.BoolVar(&o.printAction, "print-action", false, "print the post-login Action's JavaScript and exit")
	fs.StringVar(&o.confirm.mode, "confirm", "never", "when the person proves an existing account before it is linked: `mode` never, refused (where the rule would not link: an unverified or untrusted account, several accounts) or always")
	fs.StringVar(&o.confirm.issuer, "issuer", "", "with -confirm: the tenant's OpenID Connect `issuer`, https://DOMAIN/ (of its custom domain, if it has one)")
	fs.StringVar(&o.confirm.baseURL, "base-url", "", "with -confirm: the service's public `origin`, e.g. https://linking.example.com; the linking client's callback URL is it followed by "+postlogin.CallbackPath)
	fs.StringVar(&o.confirm.clientID, "linking-client-id", getenv("LINKING_CLIENT_ID"), "with -confirm: the `id` of the linking client, a Regular Web Application [$LINKING_CLIENT_ID]")
	fs.StringVar(&o.confirm.clientSecret, "linking-client-secret", "", "with -confirm: the linking client's `secret`; prefer $LINKING_CLIENT_SECRET")
	fs.StringVar(&o.confirm.confirmSecret, "confirm-secret", "", "with -confirm: `key` that verifies the Action's tokens, at least 32 bytes; prefer $LINKING_CONFIRM_SECRET")
	fs.StringVar(&o.confirm.continueSecret, "continue-secret", "", "with -confirm: `key` that signs the tokens back to the Action, at least 32 bytes; prefer $LINKING_CONTINUE_SECRET")
	if done, err := cli.Parse(fs, args, stdout); done || err != nil {
		return o, done, err
	}
	if o.printAction {
		return o, false, nil
	}
	for _, s := range []struct {
		value *string
		env   string
	}{
		{&o.secret, "LINKING_SECRET"}, {&o.previousSecret, "LINKING_PREVIOUS_SECRET"},
		{&o.confirm.clientSecret, "LINKING_CLIENT_SECRET"},
		{&o.confirm.confirmSecret, "LINKING_CONFIRM_SECRET"}, {&o.confirm.continueSecret, "LINKING_CONTINUE_SECRET"},
	} {
		if *s.value == "" {
			*s.value = getenv(s.env)
		}
	}
	if o.secret == "" {
		return o, false, cli.Usagef("-secret or LINKING_SECRET is required")
	}
	if _, ok := confirmModes[o.confirm.mode]; !ok {
		return o, false, cli.Usagef("-confirm %q: want never, refused or always", o.confirm.mode)
	}
	type flagValue struct{ value, name string }
	secrets := []flagValue{
		{o.secret, "-secret (or LINKING_SECRET)"},
		{o.previousSecret, "-previous-secret (or LINKING_PREVIOUS_SECRET)"},
	}
	if o.confirm.mode != "never" {
		for _, req := range []flagValue{
			{o.confirm.issuer, "-issuer"},
			{o.confirm.baseURL, "-base-url"},
			{o.confirm.clientID, "-linking-client-id or LINKING_CLIENT_ID"},
			{o.confirm.clientSecret, "-linking-client-secret or LINKING_CLIENT_SECRET"},
			{o.confirm.confirmSecret, "-confirm-secret or LINKING_CONFIRM_SECRET"},
			{o.confirm.continueSecret, "-continue-secret or LINKING_CONTINUE_SECRET"},
		} {
			if req.value == "" {
				return o, false, cli.Usagef("%s is required with -confirm %s", req.name, o.confirm.mode)
			}
		}
		secrets = append(secrets,
			flagValue{o.confirm.confirmSecret, "-confirm-secret (or LINKING_CONFIRM_SECRET)"},
			flagValue{o.confirm.continueSecret, "-continue-secret (or LINKING_CONTINUE_SECRET)"})
	}
	for _, s := range secrets {
		if s.value != "" && len(s.value) < postlogin.MinSecretLen {
			return o, false, cli.Usagef("%s is %d bytes long, it must be at least %d; generate one with: openssl rand -hex 32",
				s.name, len(s.value), postlogin.MinSecretLen)
		}
	}
	if o.timeout <= 0 || o.timeout > postlogin.MaxTimeout {
		return o, false, cli.Usagef("-timeout %v is outside (0, %v]", o.timeout, postlogin.MaxTimeout)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, false, cli.Usagef("-tls-cert and -tls-key go together")
	}
	return o, false, nil
}

// run is the program: it serves until ctx is done, then shuts down.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, done, err := parse(args, getenv, stdout)
	if done || err != nil {
		return err
	}
	if o.printAction {
		_, err := io.WriteString(stdout, postlogin.ActionSource())
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))

	h, store, policy, err := newHandler(ctx, o, logger)
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return cli.Usagef("-tls-cert, -tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// The scopes the service uses: those of the Store, and with
	// -revoke-sessions those of the revocation.
	scopes := store.Scopes()
	if o.revokeSessions {
		scopes = append(scopes, "delete:refresh_tokens", "delete:sessions")
	}
	check := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		return store.CheckAccess(ctx, scopes...)
	}
	// A configuration error stops the service before it serves (so that
	// -fail-open never lets logins through for it); a tenant out of reach
	// does not.
	accessErr := check(ctx)
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
		WriteTimeout:      writeTimeout(o.timeout, policy.Confirm),
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
	logger.Info("actionhook: serving", slog.String("url", url), slog.String("domain", o.client.Domain()),
		slog.Bool("fail_open", o.failOpen), slog.Duration("timeout", o.timeout), slog.String("select", policy.Select.String()),
		slog.String("confirm", o.confirm.mode),
		slog.Any("scopes", scopes), slog.Bool("ready", accessErr == nil))

	checkerCtx, stopChecker := context.WithCancel(ctx)
	var checker sync.WaitGroup
	if accessErr != nil {
		logger.Warn("actionhook: not ready: the Management API is out of reach", slog.String("error", accessErr.Error()))
		checker.Add(1)
		go func() {
			defer checker.Done()
			ready.recheck(checkerCtx, check, logger)
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

// writeTimeout is how long the service may take to answer a request: a
// login's time, and with confirm the proof's callback's two requests to the
// tenant (its keys, the code) before the link.
func writeTimeout(timeout time.Duration, confirm linking.ConfirmMode) time.Duration {
	if confirm != linking.ConfirmNever {
		timeout += 2 * postlogin.DefaultHTTPTimeout
	}
	return timeout + 5*time.Second
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

// recheck checks the access to the Management API again with check,
// waiting longer after each failure, until a check succeeds or ctx is done.
func (r *readiness) recheck(ctx context.Context, check func(context.Context) error, logger *slog.Logger) {
	wait := firstRecheck
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := check(ctx)
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

// newHandler builds the Management API store, the Linker and the Handler,
// and returns them with the Linker's policy.
func newHandler(ctx context.Context, o options, logger *slog.Logger) (*postlogin.Handler, *mgmt.Store, linking.Policy, error) {
	policy, err := o.policy.Policy()
	if err != nil {
		return nil, nil, policy, err
	}
	if o.failOpen {
		policy.OnStoreError = linking.FailOpen
	}
	policy.Confirm = confirmModes[o.confirm.mode]
	store, err := o.client.Store(ctx)
	if err != nil {
		return nil, nil, policy, err
	}
	linker := &linking.Linker{
		Store: store, Policy: policy, Logger: logger,
		RevokeSessions: o.revokeSessions, Notifier: logNotifier{logger},
	}
	c := postlogin.Config{Secret: []byte(o.secret), Timeout: o.timeout, Logger: logger}
	if o.previousSecret != "" {
		c.PreviousSecrets = [][]byte{[]byte(o.previousSecret)}
	}
	if policy.Confirm != linking.ConfirmNever {
		if c.Confirm, err = o.confirmConfig(); err != nil {
			return nil, nil, policy, err
		}
	}
	// Every value NewHandler checks comes from the command line or the
	// environment, and parse checked the secrets' lengths and -timeout:
	// what NewHandler refuses (the form of -issuer or -base-url, secrets
	// that do not all differ) is a usage error.
	h, err := postlogin.NewHandler(linker, c)
	if err != nil {
		return nil, nil, policy, &cli.UsageError{Err: err}
	}
	return h, store, policy, nil
}

// confirmConfig returns the configuration of confirm before linking. The
// proof's requests to the tenant trust -ca, as the Management API's do.
func (o options) confirmConfig() (*postlogin.ConfirmConfig, error) {
	cc := &postlogin.ConfirmConfig{
		Issuer: o.confirm.issuer, BaseURL: o.confirm.baseURL,
		ClientID: o.confirm.clientID, ClientSecret: o.confirm.clientSecret,
		ConfirmSecret: []byte(o.confirm.confirmSecret), ContinueSecret: []byte(o.confirm.continueSecret),
	}
	pool, err := o.client.RootCAs()
	if err != nil {
		return nil, err
	}
	if pool != nil {
		cc.HTTPClient = &http.Client{
			Timeout:   postlogin.DefaultHTTPTimeout,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		}
	}
	return cc, nil
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
