package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"html"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/idlink/linking"
	"github.com/idlink/linking/examples/internal/cli"
	"github.com/idlink/linking/examples/internal/clitest"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
	"github.com/idlink/linking/postlogin"
	"github.com/idlink/linking/postlogin/postlogintest"
)

const (
	secret         = "actionhook-test-secret-0123456789abcdef"
	previousSecret = "actionhook-previous-secret-0123456789ab"
)

// The linking client and the secrets of confirm before linking.
const (
	linkingClientID     = "linking-client"
	linkingClientSecret = "linking-client-secret"
	confirmSecret       = "actionhook-confirm-secret-0123456789abc"
	continueSecret      = "actionhook-continue-secret-0123456789ab"
)

// confirmVars are the variables -confirm reads from the environment.
var confirmVars = map[string]string{
	"LINKING_CLIENT_ID": linkingClientID, "LINKING_CLIENT_SECRET": linkingClientSecret,
	"LINKING_CONFIRM_SECRET": confirmSecret, "LINKING_CONTINUE_SECRET": continueSecret,
}

// seedTenant holds Jane's password user and the user Auth0 created for her
// first passwordless login, and Bob, alone with his email.
func seedTenant() *linkingtest.Tenant {
	return linkingtest.NewTenant(
		linking.User{
			ID: "auth0|63d1", Email: "jane@example.com", EmailVerified: true,
			Identities: []linking.Identity{{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}},
		},
		linking.User{
			ID: "email|6f1c", Email: "jane@example.com", EmailVerified: true,
			Identities: []linking.Identity{{Provider: "email", UserID: "6f1c", Connection: "email"}},
		},
		linking.User{
			ID: "email|9b0e", Email: "bob@example.com", EmailVerified: true,
			Identities: []linking.Identity{{Provider: "email", UserID: "9b0e", Connection: "email"}},
		},
	)
}

// passwordlessLogin is the request the Action sends for a passwordless login
// of the user email|id.
func passwordlessLogin(id, email string) postlogin.Request {
	return postlogin.Request{
		User: postlogin.User{
			UserID: "email|" + id, Email: email, EmailVerified: true,
			Identities: []postlogin.Identity{{Provider: "email", UserID: id, Connection: "email"}},
		},
		Connection: postlogin.Connection{Name: "email", Strategy: "email"},
	}
}

// writeCA writes the emulator's certificate as a PEM file and returns its
// path.
func writeCA(t *testing.T, emu *mgmttest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: emu.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// ask sends a request signed with key to url and decodes the answer.
func ask(t *testing.T, url, key string, req postlogin.Request) postlogin.Response {
	t.Helper()
	r, err := postlogin.NewRequest(context.Background(), url, []byte(key), req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("status: got %d, want 200; body %s", res.StatusCode, body)
	}
	var resp postlogin.Response
	if err := json.NewDecoder(res.Body).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// service is the program running in process.
type service struct {
	url    string          // the first line of its standard output
	log    *clitest.Buffer // its standard error
	cancel context.CancelFunc
	done   chan error
}

// startService runs the program with args and the environment vars, and
// returns once it printed its URL.
func startService(t *testing.T, args []string, vars map[string]string) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stdoutR, stdoutW := io.Pipe()
	svc := &service{log: new(clitest.Buffer), cancel: cancel, done: make(chan error, 1)}
	go func() {
		svc.done <- run(ctx, args, env(vars), stdoutW, svc.log)
		stdoutW.Close()
	}()
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("first line of stdout: %v (log: %s)", err, svc.log)
	}
	go io.Copy(io.Discard, stdoutR)
	svc.url = strings.TrimSpace(line)
	return svc
}

// stop stops the program and returns what run returned.
func (s *service) stop() error {
	s.cancel()
	return <-s.done
}

// TestRun serves the decision service in process against the Management API
// emulator over HTTPS with its own CA, as an operator would run it against a
// tenant: two logins, then a clean shutdown.
func TestRun(t *testing.T) {
	emu := mgmttest.NewTLSServer(seedTenant())
	defer emu.Close()

	svc := startService(t, []string{
		"-addr", "127.0.0.1:0", "-domain", emu.Domain(), "-ca", writeCA(t, emu),
		"-client-id", mgmttest.DefaultClientID, "-revoke-sessions",
	}, map[string]string{
		"AUTH0_CLIENT_SECRET":     mgmttest.DefaultClientSecret,
		"LINKING_SECRET":          secret,
		"LINKING_PREVIOUS_SECRET": previousSecret,
		"AUTH0_CLIENT_ID":         "overridden-by-the-flag",
	})
	url, stderr := svc.url, svc.log
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, postlogin.Path) {
		t.Fatalf("first line: got %q, want http://127.0.0.1:PORT%s", url, postlogin.Path)
	}

	res, err := http.Get(strings.TrimSuffix(url, postlogin.Path) + postlogin.HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("healthz: got %d, want 200", res.StatusCode)
	}

	got := []postlogin.Response{
		ask(t, url, secret, passwordlessLogin("6f1c", "jane@example.com")),
		ask(t, url, previousSecret, passwordlessLogin("9b0e", "bob@example.com")),
	}
	want := []postlogin.Response{
		{Version: 1, Action: postlogin.ActionSetPrimaryUser, PrimaryUserID: "auth0|63d1", Reason: linking.ReasonLinked},
		{Version: 1, Action: postlogin.ActionNone, Reason: linking.ReasonNoCandidate, Remember: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if n := emu.TokenRequests(); n != 1 {
		t.Errorf("token requests: got %d, want 1 for the life of the process", n)
	}
	// -revoke-sessions: the link (and only it) revoked the primary's sessions.
	for _, route := range []mgmttest.Route{mgmttest.RouteRevokeRefreshTokens, mgmttest.RouteRevokeSessions} {
		if n := emu.Requests(route); n != 1 {
			t.Errorf("%s: got %d requests, want 1", route, n)
		}
	}
	if _, err := emu.Tenant.User(context.Background(), "email|6f1c"); !errors.Is(err, linking.ErrNotFound) {
		t.Errorf("email|6f1c after the link: got %v, want ErrNotFound", err)
	}

	if err := svc.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	// Every line of the log is a JSON record.
	var messages []string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		messages = append(messages, rec.Msg)
	}
	for _, msg := range []string{"actionhook: serving", "postlogin: answered", "actionhook: notice to the user", "actionhook: stopped"} {
		if !strings.Contains(strings.Join(messages, "\n"), msg) {
			t.Errorf("log messages %q: want %q among them", messages, msg)
		}
	}
	if log := stderr.String(); strings.Contains(log, secret) || strings.Contains(log, previousSecret) ||
		strings.Contains(log, mgmttest.DefaultClientSecret) {
		t.Errorf("the log holds a secret:\n%s", stderr)
	}
}

func TestRun_BadConfiguration(t *testing.T) {
	full := map[string]string{
		"AUTH0_DOMAIN": "127.0.0.1:1", "AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "s", "LINKING_SECRET": secret,
	}
	// confirmFull holds everything -confirm needs from the environment;
	// confirmArgs, from the command line.
	confirmFull := maps.Clone(full)
	maps.Copy(confirmFull, confirmVars)
	confirmArgs := []string{"-confirm", "refused", "-issuer", "https://example.eu.auth0.com/", "-base-url", "https://linking.example.com"}
	without := func(vars map[string]string, key string) map[string]string {
		m := maps.Clone(vars)
		delete(m, key)
		return m
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no domain", nil, without(full, "AUTH0_DOMAIN"), "-domain or AUTH0_DOMAIN is required"},
		{"no client id", nil, without(full, "AUTH0_CLIENT_ID"), "-client-id or AUTH0_CLIENT_ID is required"},
		{"no client secret", nil, without(full, "AUTH0_CLIENT_SECRET"), "-client-secret or AUTH0_CLIENT_SECRET is required"},
		{"no secret", nil, without(full, "LINKING_SECRET"), "-secret or LINKING_SECRET is required"},
		{"weak secret", []string{"-secret", "short"}, full, "-secret (or LINKING_SECRET) is 5 bytes long, it must be at least 32"},
		{"weak previous secret", []string{"-previous-secret", "short"}, full, "-previous-secret (or LINKING_PREVIOUS_SECRET) is 5 bytes long"},
		{"missing CA file", []string{"-ca", filepath.Join(t.TempDir(), "none.pem")}, full, "-ca: open "},
		{"CA file without a certificate", []string{"-ca", notPEM}, full, "-ca: no PEM certificate"},
		{"timeout too long", []string{"-timeout", "30s"}, full, "-timeout 30s is outside (0, 15s]"},
		{"timeout zero", []string{"-timeout", "0s"}, full, "-timeout 0s is outside (0, 15s]"},
		{"tls-cert without tls-key", []string{"-tls-cert", "cert.pem"}, full, "-tls-cert and -tls-key go together"},
		{"missing tls-cert file", []string{"-tls-cert", filepath.Join(t.TempDir(), "none.pem"), "-tls-key", filepath.Join(t.TempDir(), "none.pem")}, full, "-tls-cert"},
		{"domain with a scheme", []string{"-domain", "https://example.eu.auth0.com"}, full, `-domain: mgmt: configuration error: the domain "https://example.eu.auth0.com" has a scheme`},
		{"unknown preference", []string{"-select", "newest"}, full, `-select "newest": linking: unknown preference "newest"`},
		{"a loose provider", []string{"-trust-providers", "auth0,email,waad"}, full, "-trust-providers: waad lets its administrators mark any email verified"},
		{"unknown confirm mode", []string{"-confirm", "sometimes"}, confirmFull, `-confirm "sometimes": want never, refused or always`},
		{"confirm without -issuer", []string{"-confirm", "refused", "-base-url", "https://linking.example.com"}, confirmFull, "-issuer is required with -confirm refused"},
		{"confirm without -base-url", []string{"-confirm", "always", "-issuer", "https://example.eu.auth0.com/"}, confirmFull, "-base-url is required with -confirm always"},
		{"confirm without the linking client", confirmArgs, without(confirmFull, "LINKING_CLIENT_ID"), "-linking-client-id or LINKING_CLIENT_ID is required with -confirm refused"},
		{"confirm without the linking client's secret", confirmArgs, without(confirmFull, "LINKING_CLIENT_SECRET"), "-linking-client-secret or LINKING_CLIENT_SECRET is required"},
		{"confirm without the confirm secret", confirmArgs, without(confirmFull, "LINKING_CONFIRM_SECRET"), "-confirm-secret or LINKING_CONFIRM_SECRET is required"},
		{"confirm without the continue secret", confirmArgs, without(confirmFull, "LINKING_CONTINUE_SECRET"), "-continue-secret or LINKING_CONTINUE_SECRET is required"},
		{"weak confirm secret", append(slices.Clone(confirmArgs), "-confirm-secret", "short"), confirmFull, "-confirm-secret (or LINKING_CONFIRM_SECRET) is 5 bytes long"},
		{"continue secret equal to the request secret", append(slices.Clone(confirmArgs), "-continue-secret", secret), confirmFull, "ConfirmSecret, ContinueSecret and the request secrets must all differ"},
		{"issuer over http", append(slices.Clone(confirmArgs), "-issuer", "http://example.eu.auth0.com/"), confirmFull, `ConfirmConfig.Issuer "http://example.eu.auth0.com/" must use https`},
		{"base URL with a path", append(slices.Clone(confirmArgs), "-base-url", "https://linking.example.com/v1"), confirmFull, `ConfirmConfig.BaseURL "https://linking.example.com/v1" is not of the form https://HOST`},
		{"unknown flag", []string{"-verbose"}, full, "flag provided but not defined: -verbose"},
		{"stray argument", []string{"serve"}, full, `unexpected arguments ["serve"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, env(tt.env), &stdout, &stderr)
			if !cli.IsUsage(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run: got %v, want a usage error mentioning %q", err, tt.want)
			}
			if stdout.Len() != 0 || stderr.Len() != 0 {
				t.Errorf("output: got stdout %q and stderr %q, want none", stdout.String(), stderr.String())
			}
		})
	}
}

// goTool returns the path of the go command that runs this test.
func goTool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	return path
}

// TestPrintAction: `go run ./examples/actionhook -print-action` prints
// exactly the Action source embedded in postlogin, and exits 0.
func TestPrintAction(t *testing.T) {
	cmd := exec.Command(goTool(t), "run", ".", "-print-action")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run . -print-action: %v\n%s", err, stderr.String())
	}
	if got, want := string(out), postlogin.ActionSource(); got != want {
		t.Errorf("printed Action (-want +got):\n%s", cmp.Diff(want, got))
	}
}

// TestSignal builds the program, runs it against the emulator, and stops it
// with SIGTERM: it must exit 0.
func TestSignal(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGTERM cannot be sent on Windows")
	}
	bin := clitest.Build(t, ".")
	emu := mgmttest.NewTLSServer(seedTenant())
	defer emu.Close()

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-domain", emu.Domain(), "-ca", writeCA(t, emu))
	cmd.Env = append(os.Environ(),
		"AUTH0_CLIENT_ID="+mgmttest.DefaultClientID,
		"AUTH0_CLIENT_SECRET="+mgmttest.DefaultClientSecret,
		"LINKING_SECRET="+secret,
	)
	stderr := new(clitest.Buffer)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("first line of stdout: %v\n%s", err, stderr)
	}
	url := strings.TrimSpace(line)
	if resp := ask(t, url, secret, passwordlessLogin("6f1c", "jane@example.com")); resp.PrimaryUserID != "auth0|63d1" {
		t.Errorf("answer: got %+v, want set_primary_user auth0|63d1", resp)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want exit 0\n%s", err, stderr)
		}
	case <-time.After(time.Minute):
		t.Fatalf("still running a minute after SIGTERM\n%s", stderr)
	}
	if !strings.Contains(stderr.String(), "actionhook: stopped") {
		t.Errorf("log: want a stopped record\n%s", stderr)
	}
}

// mgmtArgs returns the flags and environment that point the program at emu
// (trusting its certificate when it has one), with the client secret
// clientSecret, listening on a free loopback port.
func mgmtArgs(t *testing.T, emu *mgmttest.Server, clientSecret string) ([]string, map[string]string) {
	t.Helper()
	args := []string{"-addr", "127.0.0.1:0", "-domain", emu.Domain(), "-client-id", emu.ClientID()}
	if emu.Certificate() != nil {
		args = append(args, "-ca", writeCA(t, emu))
	}
	return args, map[string]string{"AUTH0_CLIENT_SECRET": clientSecret, "LINKING_SECRET": secret}
}

// TestRun_ConfigurationError: a configuration of the Management API that
// cannot work stops the program before it serves anything, with the cause,
// -fail-open or not: a service that cannot reach its tenant for such a
// reason never lets logins through unlinked.
func TestRun_ConfigurationError(t *testing.T) {
	tests := []struct {
		name   string
		emu    func() *mgmttest.Server
		secret string
		args   []string
		want   string
	}{
		{
			name:   "wrong client secret",
			emu:    func() *mgmttest.Server { return mgmttest.NewTLSServer(seedTenant()) },
			secret: "wrong",
			want:   "mgmt: check access: 401 Unauthorized: token request refused: Unauthorized (access_denied)",
		},
		{
			name:   "wrong client secret, failing open",
			emu:    func() *mgmttest.Server { return mgmttest.NewTLSServer(seedTenant()) },
			secret: "wrong",
			args:   []string{"-fail-open"},
			want:   "401 Unauthorized",
		},
		{
			name:   "a scope missing",
			emu:    func() *mgmttest.Server { return mgmttest.NewTLSServer(seedTenant(), mgmttest.WithScopes("read:users")) },
			secret: mgmttest.DefaultClientSecret,
			want:   "lacks the scopes update:users read:connections",
		},
		{
			// -revoke-sessions needs the scopes of the revocation.
			name: "-revoke-sessions without its scopes",
			emu: func() *mgmttest.Server {
				return mgmttest.NewTLSServer(seedTenant(), mgmttest.WithScopes("read:users", "update:users", "read:connections"))
			},
			secret: mgmttest.DefaultClientSecret,
			args:   []string{"-revoke-sessions"},
			want:   "lacks the scopes delete:refresh_tokens delete:sessions",
		},
		{
			// Without -insecure-http, the program speaks HTTPS.
			name:   "https against an http tenant",
			emu:    func() *mgmttest.Server { return mgmttest.NewServer(seedTenant()) },
			secret: mgmttest.DefaultClientSecret,
			want:   "server gave HTTP response to HTTPS client",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu := tt.emu()
			defer emu.Close()
			args, vars := mgmtArgs(t, emu, tt.secret)
			// A program that served would run until this deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			stdout, stderr := new(clitest.Buffer), new(clitest.Buffer)
			err := run(ctx, append(args, tt.args...), env(vars), stdout, stderr)
			if !errors.Is(err, mgmt.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run: got %v, want a configuration error naming %q", err, tt.want)
			}
			if stdout.String() != "" || stderr.String() != "" {
				t.Errorf("output: got stdout %q and log %q, want none", stdout, stderr)
			}
			if n := emu.APIRequests(); n != 0 {
				t.Errorf("API requests: got %d, want 0", n)
			}
		})
	}
}

// TestExitCodes runs the program as an operator would: -h and -version
// answer on standard output with exit code 0; a usage error exits 2, an
// address in use 1 and a configuration the tenant refuses 5, each with the
// cause on standard error prefixed with the program's name, and no URL.
func TestExitCodes(t *testing.T) {
	bin := clitest.Build(t, ".")
	emu := mgmttest.NewTLSServer(seedTenant())
	defer emu.Close()
	args, _ := mgmtArgs(t, emu, "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name   string
		args   []string
		secret string // AUTH0_CLIENT_SECRET
		code   int
		stdout []string // in the standard output; none: it is empty
		stderr string
	}{
		{name: "-h", args: []string{"-h"}, stdout: []string{"Usage: actionhook", "Exit codes:", "-select preferences", "-trust-providers providers", "-confirm mode", "-base-url origin"}},
		{name: "-help", args: []string{"-help"}, stdout: []string{"Usage: actionhook"}},
		{name: "-version", args: []string{"-version"}, stdout: []string{"actionhook ", runtime.Version() + "\n"}},
		{
			name: "unknown flag", args: []string{"-verbose"}, code: 2,
			stderr: "actionhook: flag provided but not defined: -verbose\nactionhook: run 'actionhook -h' for usage\n",
		},
		{
			name: "-timeout too long", args: append(slices.Clone(args), "-timeout", "20s"), secret: mgmttest.DefaultClientSecret, code: 2,
			stderr: "actionhook: -timeout 20s is outside (0, 15s]\nactionhook: run 'actionhook -h' for usage\n",
		},
		{
			name: "-confirm without -issuer", args: append(slices.Clone(args), "-confirm", "refused"), secret: mgmttest.DefaultClientSecret, code: 2,
			stderr: "actionhook: -issuer is required with -confirm refused\nactionhook: run 'actionhook -h' for usage\n",
		},
		{
			name: "address in use", args: append(slices.Clone(args), "-addr", busy.Addr().String()), secret: mgmttest.DefaultClientSecret, code: 1,
			stderr: "actionhook: listen tcp " + busy.Addr().String() + ": bind: address already in use\n",
		},
		{
			name: "wrong client secret", args: args, secret: "wrong", code: 5,
			stderr: "actionhook: mgmt: check access: 401 Unauthorized: token request refused: Unauthorized (access_denied)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A program that served would be killed after a minute.
			r := clitest.Run(t, bin, []string{"AUTH0_CLIENT_SECRET=" + tt.secret, "LINKING_SECRET=" + secret}, tt.args...)
			r.Expect(t, tt.code, tt.stdout...)
			if r.Stderr != tt.stderr {
				t.Errorf("stderr: got %q, want %q", r.Stderr, tt.stderr)
			}
		})
	}
}

// TestRun_Select: -trust-providers and -select set the policy: a
// verified Google user is a candidate only when Google is trusted; then the
// password user and it are ambiguous, unless -select names the primary.
func TestRun_Select(t *testing.T) {
	tenant := func() *linkingtest.Tenant {
		return linkingtest.NewTenant(
			linking.User{
				ID: "auth0|63d1", Email: "jane@example.com", EmailVerified: true, CreatedAt: time.Date(2021, 3, 1, 9, 0, 0, 0, time.UTC),
				Identities: []linking.Identity{{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}},
			},
			linking.User{
				ID: "google-oauth2|1044", Email: "jane@example.com", EmailVerified: true, CreatedAt: time.Date(2022, 3, 1, 9, 0, 0, 0, time.UTC),
				Identities: []linking.Identity{{Provider: "google-oauth2", UserID: "1044", Connection: "google-oauth2", IsSocial: true}},
			},
			linking.User{
				ID: "email|6f1c", Email: "jane@example.com", EmailVerified: true, CreatedAt: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
				Identities: []linking.Identity{{Provider: "email", UserID: "6f1c", Connection: "email"}},
			},
		)
	}
	tests := []struct {
		name string
		args []string
		want postlogin.Response
	}{
		{
			name: "default policy",
			want: postlogin.Response{Version: 1, Action: postlogin.ActionSetPrimaryUser, PrimaryUserID: "auth0|63d1", Reason: linking.ReasonLinked},
		},
		{
			name: "Google trusted",
			args: []string{"-trust-providers", "auth0,email,google-oauth2"},
			want: postlogin.Response{Version: 1, Action: postlogin.ActionDeny, Reason: linking.ReasonAmbiguous},
		},
		{
			name: "Google trusted, the oldest chosen",
			args: []string{"-trust-providers", "auth0,email,google-oauth2", "-select", "oldest"},
			want: postlogin.Response{Version: 1, Action: postlogin.ActionSetPrimaryUser, PrimaryUserID: "auth0|63d1", Reason: linking.ReasonLinked},
		},
		{
			name: "Google trusted, Google chosen",
			args: []string{"-trust-providers", "auth0,email,google-oauth2", "-select", "provider:google-oauth2,oldest"},
			want: postlogin.Response{Version: 1, Action: postlogin.ActionSetPrimaryUser, PrimaryUserID: "google-oauth2|1044", Reason: linking.ReasonLinked},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu := mgmttest.NewServer(tenant())
			defer emu.Close()
			args, vars := mgmtArgs(t, emu, mgmttest.DefaultClientSecret)
			svc := startService(t, append(append(args, "-insecure-http"), tt.args...), vars)
			login := passwordlessLogin("6f1c", "jane@example.com")
			login.User.CreatedAt = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) // as the Action sends it
			got := ask(t, svc.url, secret, login)
			if got.Action == postlogin.ActionDeny && got.Message == "" {
				t.Errorf("a denial without a message: %+v", got)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(postlogin.Response{}, "Message")); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if err := svc.stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
		})
	}
}

// healthz returns the status and the decoded body of GET base/healthz.
func healthz(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	res, err := http.Get(base + postlogin.HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("healthz body: %v", err)
	}
	return res.StatusCode, body
}

// TestRun_TenantOutOfReach: a tenant that does not answer at startup does
// not stop the service: it serves, /healthz answers 503 with the cause, and
// 200 once the tenant answers at that address and the service got its
// token.
func TestRun_TenantOutOfReach(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there until the tenant comes up

	svc := startService(t, []string{"-addr", "127.0.0.1:0", "-domain", addr, "-insecure-http", "-client-id", mgmttest.DefaultClientID},
		map[string]string{"AUTH0_CLIENT_SECRET": mgmttest.DefaultClientSecret, "LINKING_SECRET": secret})
	url, stderr := svc.url, svc.log
	base := strings.TrimSuffix(url, postlogin.Path)

	status, body := healthz(t, base)
	if status != http.StatusServiceUnavailable || body["status"] != "not ready" || !strings.Contains(body["error"], "connection refused") {
		t.Errorf("healthz before the tenant is up: got %d %v, want 503, not ready, connection refused", status, body)
	}

	// The tenant comes up at the address.
	emu := mgmttest.NewEmulator(seedTenant())
	tenantLn, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	tenant := &httptest.Server{Listener: tenantLn, Config: &http.Server{Handler: emu}}
	tenant.Start()
	defer tenant.Close()

	deadline := time.Now().Add(10 * time.Second)
	for status != http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		status, body = healthz(t, base)
	}
	if status != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("healthz once the tenant is up: got %d %v, want 200 ok (log: %s)", status, body, stderr)
	}
	if resp := ask(t, url, secret, passwordlessLogin("6f1c", "jane@example.com")); resp.PrimaryUserID != "auth0|63d1" {
		t.Errorf("answer: got %+v, want set_primary_user auth0|63d1", resp)
	}
	if n := emu.TokenRequests(); n != 1 {
		t.Errorf("token requests: got %d, want 1", n)
	}
	if err := svc.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, msg := range []string{`"msg":"actionhook: serving"`, `"ready":false`, `"msg":"actionhook: ready"`} {
		if !strings.Contains(stderr.String(), msg) {
			t.Errorf("log: want %s in\n%s", msg, stderr)
		}
	}
}

// flowClient is a browser's view of the service for TestRun_Confirm: it
// follows no redirect and sends the flow cookie once it has one.
type flowClient struct {
	t      *testing.T
	cookie *http.Cookie
}

// do sends a request (a POST of form, or a GET) and returns the answer and
// its body; it keeps the flow cookie the answer sets.
func (c *flowClient) do(method, target string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	text, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, ck := range res.Cookies() {
		if ck.Name == postlogin.FlowCookie {
			c.cookie = ck
		}
	}
	return res, string(text)
}

// hidden returns the value of the hidden field name of an HTML page.
func hidden(t *testing.T, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`<input type="hidden" name="` + name + `" value="([^"]*)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no hidden field %s in:\n%s", name, page)
	}
	return html.UnescapeString(m[1])
}

// TestRun_Confirm: with -confirm, the program asks the Action for a proof
// and serves the consent page and the proof's callback, as its flags and
// environment say: the Action's token opens the consent page
// (LINKING_CONFIRM_SECRET, the -issuer's host); Link sends the browser to
// the tenant's /authorize for the linking client (-linking-client-id) back
// to -base-url's callback; the code of a password login is exchanged with
// LINKING_CLIENT_SECRET, trusting -ca; the account is linked; and the
// browser goes back to the tenant's /continue with a token signed with
// LINKING_CONTINUE_SECRET.
func TestRun_Confirm(t *testing.T) {
	tenant := postlogintest.NewServer(mgmttest.NewEmulator(seedTenant()))
	defer tenant.Close()
	const password = "correct horse battery staple"
	tenant.SetPassword("auth0|63d1", password)
	// The service's public origin: a proxy in front of it, which this test
	// plays by sending the browser's requests to the service's address.
	const base = "https://linking.example.com"
	tenant.AddClient(postlogintest.Client{ID: linkingClientID, Secret: linkingClientSecret, Name: "Account linking", RedirectURIs: []string{base + postlogin.CallbackPath}})
	caFile := filepath.Join(t.TempDir(), "tenant-ca.pem")
	if err := os.WriteFile(caFile, tenant.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := maps.Clone(confirmVars)
	vars["AUTH0_CLIENT_SECRET"], vars["LINKING_SECRET"] = tenant.Mgmt.ClientSecret(), secret
	svc := startService(t, []string{
		"-addr", "127.0.0.1:0", "-domain", tenant.Domain(), "-ca", caFile, "-client-id", tenant.Mgmt.ClientID(),
		"-confirm", "always", "-issuer", tenant.Issuer(), "-base-url", base,
	}, vars)
	origin := strings.TrimSuffix(svc.url, postlogin.Path)

	// The Action's question, accepting confirm: the password account is
	// offered, and nothing is linked yet.
	login := passwordlessLogin("6f1c", "jane@example.com")
	login.Accept = []postlogin.Action{postlogin.ActionConfirm}
	resp := ask(t, svc.url, secret, login)
	if resp.Action != postlogin.ActionConfirm || len(resp.Candidates) != 1 || resp.Candidates[0].UserID != "auth0|63d1" {
		t.Fatalf("answer: got %+v, want confirm of auth0|63d1", resp)
	}

	// The person arrives with the Action's token, made as
	// api.redirect.encodeToken makes it.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(confirmSecret)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	login.Accept = nil
	now := time.Now()
	token, err := jwt.Signed(signer).Claims(postlogin.ConfirmToken{
		Issuer: tenant.Domain(), Subject: login.User.UserID, IssuedAt: now.Unix(), Expiry: now.Add(2 * time.Minute).Unix(),
		Type: postlogin.TokenTypeConfirm, Login: login, Candidates: resp.Candidates,
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	browser := &flowClient{t: t}
	res, _ := browser.do(http.MethodGet, origin+postlogin.ConfirmPath+"?"+url.Values{"session_token": {token}, "state": {"auth0-state"}}.Encode(), nil)
	if res.StatusCode != http.StatusSeeOther || browser.cookie == nil {
		t.Fatalf("arrival: got %d, cookie %v; want 303 with the flow cookie (log: %s)", res.StatusCode, browser.cookie, svc.log)
	}
	_, page := browser.do(http.MethodGet, origin+postlogin.ConfirmPath, nil)
	res, _ = browser.do(http.MethodPost, origin+postlogin.ConfirmPath, url.Values{"csrf": {hidden(t, page, "csrf")}, "choice": {"link"}})
	authorize, err := url.Parse(res.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(authorize.String(), tenant.URL+"/authorize?") ||
		authorize.Query().Get("client_id") != linkingClientID || authorize.Query().Get("redirect_uri") != base+postlogin.CallbackPath {
		t.Fatalf("Link: sent to %q, want the tenant's /authorize for %s back to %s (log: %s)", res.Header.Get("Location"), linkingClientID, base+postlogin.CallbackPath, svc.log)
	}

	// The proof: a password login to the account, at the tenant.
	tc := tenant.Client()
	tres, err := tc.Get(authorize.String())
	if err != nil {
		t.Fatal(err)
	}
	loginPage, _ := io.ReadAll(tres.Body)
	tres.Body.Close()
	tres, err = tc.PostForm(tenant.URL+"/u/login", url.Values{
		"login": {hidden(t, string(loginPage), "login")}, "action": {"login"}, "email": {"jane@example.com"}, "password": {password},
	})
	if err != nil {
		t.Fatal(err)
	}
	tres.Body.Close()
	callback, err := url.Parse(tres.Header.Get("Location"))
	if err != nil || callback.Scheme+"://"+callback.Host+callback.Path != base+postlogin.CallbackPath {
		t.Fatalf("the proof login went to %q, want %s", tres.Header.Get("Location"), base+postlogin.CallbackPath)
	}

	// Its callback, through the proxy: the return form to the tenant.
	res, page = browser.do(http.MethodGet, origin+postlogin.CallbackPath+"?"+callback.RawQuery, nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(page, `action="`+tenant.URL+`/continue?state=auth0-state"`) {
		t.Fatalf("callback: got %d, want the return form to the tenant's /continue\n%s\nlog: %s", res.StatusCode, page, svc.log)
	}
	parsed, err := jwt.ParseSigned(hidden(t, page, "session_token"), []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		t.Fatal(err)
	}
	var ct postlogin.ContinueToken
	if err := parsed.Claims([]byte(continueSecret), &ct); err != nil {
		t.Fatalf("the return token is not signed with LINKING_CONTINUE_SECRET: %v", err)
	}
	if ct.Outcome != postlogin.OutcomeLinked || ct.PrimaryUserID != "auth0|63d1" || ct.State != "auth0-state" || ct.Issuer != base {
		t.Errorf("return token: %+v, want linked into auth0|63d1 for auth0-state, issued by %s", ct, base)
	}
	jane, err := tenant.Mgmt.Tenant.User(context.Background(), "auth0|63d1")
	if err != nil || len(jane.Identities) != 2 {
		t.Errorf("auth0|63d1: %+v, %v; want it holding the passwordless identity", jane, err)
	}
	if err := svc.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if log := svc.log.String(); !strings.Contains(log, `"confirm":"always"`) || strings.Contains(log, confirmSecret) ||
		strings.Contains(log, continueSecret) || strings.Contains(log, linkingClientSecret) {
		t.Errorf("log: want the confirm mode and no secret\n%s", log)
	}
}
