package postlogin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
	"github.com/idlink/linking/postlogin"
	"github.com/idlink/linking/postlogin/postlogintest"
)

// The end-to-end tests run one login the whole way: the login model
// (postlogintest.LoginFlow) creates the passwordless user as Auth0 does and
// builds the event; real Node.js runs action.js (through
// testdata/run-action.js) with it; the Action sends a signed HTTPS request
// to the Handler; the Handler's Linker goes through mgmt.Store and go-auth0
// to the Management API emulator over HTTPS; the model then applies Auth0's
// rules to what the Action called.

// e2eSecret is the Action secret LINKING_SECRET of the end-to-end tests.
const e2eSecret = "end-to-end-test-secret-0123456789abcdef"

// janeDB is the seed's user: Jane signed up with email and password, and
// verified her email.
var janeDB = linking.User{
	ID: "auth0|63d17c6a9d503d76c056c177", Email: "jane@example.com", EmailVerified: true,
	Identities: []linking.Identity{
		{Provider: "auth0", UserID: "63d17c6a9d503d76c056c177", Connection: "Username-Password-Authentication"},
	},
	UserMetadata: map[string]any{"plan": "pro"},
}

// tenantSetup is the seed's tenant as the end-to-end tests run it.
type tenantSetup struct {
	node   string
	emu    *mgmttest.Server
	flow   *postlogintest.LoginFlow
	url    string // the Action secret LINKING_URL
	caFile string // the service's certificate, PEM, for NODE_EXTRA_CA_CERTS

	// requests counts the requests that reach the service's endpoint.
	requests atomic.Int32
}

// deploy starts the Management API emulator over a tenant holding users,
// and the decision service in process, wired as examples/actionhook wires
// it: a postlogin.Handler over a linking.Linker (failing closed) over an
// mgmt.Store built by mgmt.New with the emulator's client credentials and
// certificate. Both serve HTTPS on loopback.
func deploy(t *testing.T, users ...linking.User) *tenantSetup {
	t.Helper()
	return deployWith(t, linking.Policy{OnStoreError: linking.FailClosed}, users...)
}

// deployWith is deploy with the Linker's policy p.
func deployWith(t *testing.T, p linking.Policy, users ...linking.User) *tenantSetup {
	t.Helper()
	s := &tenantSetup{node: postlogintest.RequireNode(t)}
	s.emu = mgmttest.NewTLSServer(linkingtest.NewTenant(users...))
	t.Cleanup(s.emu.Close)
	s.flow = &postlogintest.LoginFlow{Tenant: s.emu.Tenant}

	store, err := mgmt.New(t.Context(), s.emu.Domain(), s.emu.ClientID(), s.emu.ClientSecret(), s.emu.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	linker := &linking.Linker{Store: store, Policy: p}
	h, err := postlogin.NewHandler(linker, postlogin.Config{Secret: []byte(e2eSecret)})
	if err != nil {
		t.Fatal(err)
	}
	mux := h.Mux()
	svc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == postlogin.Path {
			s.requests.Add(1)
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(svc.Close)
	s.url = svc.URL + postlogin.Path
	s.caFile = filepath.Join(t.TempDir(), "service-ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: svc.Certificate().Raw})
	if err := os.WriteFile(s.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// loginRecord is one login run end to end, and what it cost.
type loginRecord struct {
	tx  *postlogintest.Transaction
	run postlogintest.ActionRun
	res postlogintest.LoginResult
	// apiCalls are the Management API requests made during the login,
	// and serviceRequests the requests the Action sent to the service.
	apiCalls, serviceRequests int
}

// login runs a passwordless login of email: the model starts it, Node runs
// the Action in actionFile with the event, the model finishes it.
func (s *tenantSetup) login(t *testing.T, actionFile, email string) loginRecord {
	t.Helper()
	return s.run(t, actionFile, func() (*postlogintest.Transaction, error) {
		return s.flow.PasswordlessEmail(t.Context(), email)
	})
}

// run runs the login start starts, as login does.
func (s *tenantSetup) run(t *testing.T, actionFile string, start func() (*postlogintest.Transaction, error)) loginRecord {
	t.Helper()
	apiBefore, svcBefore := s.emu.APIRequests(), s.requests.Load()
	tx, err := start()
	if err != nil {
		t.Fatal(err)
	}
	ev := tx.Event()
	ev.Secrets = map[string]string{"LINKING_URL": s.url, "LINKING_SECRET": e2eSecret}
	run := s.runAction(t, actionFile, ev)
	res, err := tx.Finish(t.Context(), run)
	if err != nil {
		t.Fatalf("finish the login: %v (the Action's log: %q)", err, run.Logs)
	}
	return loginRecord{
		tx: tx, run: run, res: res,
		apiCalls:        s.emu.APIRequests() - apiBefore,
		serviceRequests: int(s.requests.Load() - svcBefore),
	}
}

// runAction runs the Action in actionFile once in Node with ev, as Auth0
// would, trusting the service's certificate, and returns what it did.
func (s *tenantSetup) runAction(t *testing.T, actionFile string, ev postlogintest.Event) postlogintest.ActionRun {
	t.Helper()
	event, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.node, filepath.Join("testdata", "run-action.js"), actionFile)
	cmd.Stdin = bytes.NewReader(event)
	cmd.Env = append(os.Environ(), "NODE_OPTIONS=", "NODE_EXTRA_CA_CERTS="+s.caFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node run-action.js %s: %v\n%s", actionFile, err, stderr.Bytes())
	}
	var run postlogintest.ActionRun
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatalf("node run-action.js printed %q: %v", out, err)
	}
	return run
}

// calls describes the api calls of run, e.g.
// `authentication.setPrimaryUser("auth0|63d1")`.
func calls(run postlogintest.ActionRun) []string {
	out := []string{}
	for _, c := range run.Calls {
		args := make([]string, len(c.Args))
		for i, a := range c.Args {
			args[i] = string(a)
		}
		out = append(out, c.Method+"("+strings.Join(args, ", ")+")")
	}
	return out
}

// check compares what a login did with what it must do.
func (r loginRecord) check(t *testing.T, wantCalls []string, wantSubject string, wantAPICalls, wantServiceRequests int) {
	t.Helper()
	if diff := cmp.Diff(wantCalls, calls(r.run)); diff != "" {
		t.Errorf("the Action's api calls (-want +got):\n%s\nthe Action's log: %q", diff, r.run.Logs)
	}
	if !r.res.Succeeded || r.res.Subject != wantSubject {
		t.Errorf("login: got succeeded %v as %q (%v), want success as %q", r.res.Succeeded, r.res.Subject, r.res.Err, wantSubject)
	}
	if r.apiCalls != wantAPICalls {
		t.Errorf("Management API calls: got %d, want %d", r.apiCalls, wantAPICalls)
	}
	if r.serviceRequests != wantServiceRequests {
		t.Errorf("requests to the service: got %d, want %d", r.serviceRequests, wantServiceRequests)
	}
}

// actionFile returns the absolute path of the shipped Action.
func actionFile(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs("action.js")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func setPrimaryUserCall(id string) string {
	return fmt.Sprintf("authentication.setPrimaryUser(%q)", id)
}

func markerCall(email string) string {
	return fmt.Sprintf(`user.setAppMetadata("linking", {"checked_email":%q})`, email)
}

// TestEndToEnd_SeedScenario: Jane signed up with a password; her first
// passwordless login succeeds on the first attempt, as her auth0 user, at
// the cost of one lookup and one link. Her later logins cost no Management
// API call and no request to the service: the login arrives as the primary,
// which holds several identities, and the Action skips it.
func TestEndToEnd_SeedScenario(t *testing.T) {
	s := deploy(t, janeDB)
	action := actionFile(t)

	first := s.login(t, action, "jane@example.com")
	if !first.tx.Created || !strings.HasPrefix(first.tx.User.ID, "email|") {
		t.Fatalf("first login: got user %q (created %v), want a new email|... user", first.tx.User.ID, first.tx.Created)
	}
	first.check(t, []string{setPrimaryUserCall(janeDB.ID)}, janeDB.ID, 2, 1)
	if got := s.emu.Requests(mgmttest.RouteUsersByEmail); got != 1 {
		t.Errorf("users-by-email requests: got %d, want 1", got)
	}
	if got := s.emu.Requests(mgmttest.RouteLink); got != 1 {
		t.Errorf("link requests: got %d, want 1", got)
	}

	// One user is left, with both identities and its own profile.
	users := s.emu.Tenant.Users()
	if len(users) != 1 {
		t.Fatalf("users after the first login: got %d (%v), want 1", len(users), users)
	}
	want := janeDB.Identities[0]
	if got := users[0]; got.ID != janeDB.ID || len(got.Identities) != 2 ||
		!got.Identities[0].Is(want) || !got.Identities[1].Is(first.tx.Identity) {
		t.Errorf("the user after the first login: got %q with %v, want %q with %s and %s",
			got.ID, got.Identities, janeDB.ID, want.UserIDOf(), first.tx.Identity.UserIDOf())
	}
	if diff := cmp.Diff(janeDB.UserMetadata, users[0].UserMetadata); diff != "" {
		t.Errorf("user_metadata of the primary (-want +got):\n%s", diff)
	}

	second := s.login(t, action, "jane@example.com")
	if second.tx.Created || second.tx.User.ID != janeDB.ID {
		t.Errorf("second login: got user %q (created %v), want %q", second.tx.User.ID, second.tx.Created, janeDB.ID)
	}
	second.check(t, []string{}, janeDB.ID, 0, 0)

	if got := s.emu.TokenRequests(); got != 1 {
		t.Errorf("token requests: got %d, want 1 for the life of the service", got)
	}
}

// TestEndToEnd_WithoutSetPrimaryUser is the seed's bug: the same Action
// without its setPrimaryUser line. The service links, but the login fails,
// because its subject no longer exists; the person has to sign in again.
func TestEndToEnd_WithoutSetPrimaryUser(t *testing.T) {
	s := deploy(t, janeDB)
	src, err := os.ReadFile("action.js")
	if err != nil {
		t.Fatal(err)
	}
	const line = "api.authentication.setPrimaryUser(answer.primary_user_id);"
	if n := strings.Count(string(src), line); n != 1 {
		t.Fatalf("action.js holds %q %d times, want once", line, n)
	}
	broken := filepath.Join(t.TempDir(), "action-without-setprimaryuser.js")
	if err := os.WriteFile(broken, []byte(strings.Replace(string(src), line, "// (setPrimaryUser removed)", 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	first := s.login(t, broken, "jane@example.com")
	if diff := cmp.Diff([]string{}, calls(first.run)); diff != "" {
		t.Errorf("the Action's api calls (-want +got):\n%s", diff)
	}
	if first.res.Succeeded || !errors.Is(first.res.Err, postlogintest.ErrUserNotFound) {
		t.Fatalf("first login: got succeeded %v (%v), want it to fail with %v", first.res.Succeeded, first.res.Err, postlogintest.ErrUserNotFound)
	}
	if msg := first.res.Err.Error(); !strings.Contains(msg, first.tx.User.ID) || !strings.Contains(msg, "linked into") {
		t.Errorf("failure: got %q, want it to name %q and the link", msg, first.tx.User.ID)
	}
	if first.apiCalls != 2 {
		t.Errorf("Management API calls: got %d, want 2", first.apiCalls)
	}
	// The link was made all the same.
	primary, err := s.emu.Tenant.User(t.Context(), janeDB.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !primary.Holds(first.tx.Identity) {
		t.Errorf("%s identities: got %v, want %s among them", janeDB.ID, primary.Identities, first.tx.Identity.UserIDOf())
	}

	again := s.login(t, broken, "jane@example.com")
	again.check(t, []string{}, janeDB.ID, 0, 0)
}

// TestEndToEnd_NothingToLink: Bob has no other user. His first
// passwordless login costs one lookup and leaves the marker; his next login
// sends nothing.
func TestEndToEnd_NothingToLink(t *testing.T) {
	s := deploy(t, janeDB)
	action := actionFile(t)

	first := s.login(t, action, "bob@example.com")
	if !first.tx.Created {
		t.Fatalf("first login: got user %q, not created; want a new one", first.tx.User.ID)
	}
	bob := first.tx.User.ID
	first.check(t, []string{markerCall("bob@example.com")}, bob, 1, 1)
	u, err := s.emu.Tenant.User(t.Context(), bob)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"linking": map[string]any{"checked_email": "bob@example.com"}}, u.AppMetadata); diff != "" {
		t.Errorf("app_metadata of %s (-want +got):\n%s", bob, diff)
	}

	second := s.login(t, action, "bob@example.com")
	if second.tx.Created || second.tx.User.ID != bob {
		t.Errorf("second login: got user %q (created %v), want %q", second.tx.User.ID, second.tx.Created, bob)
	}
	second.check(t, []string{}, bob, 0, 0)
	if n := len(s.emu.Tenant.Users()); n != 2 {
		t.Errorf("users: got %d, want 2 (Jane's and Bob's)", n)
	}
}

// recordingTB is a testing.TB that records Fatalf and Skipf and ends the
// goroutine, as the real ones do. Its other methods are not to be called.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recordingTB) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestRequireNode: without node, the end-to-end tests fail under CI=true
// with a message that says what is missing, and are skipped otherwise; a
// node older than 20 fails them.
func TestRequireNode(t *testing.T) {
	oldNode := t.TempDir()
	script := "#!/bin/sh\necho v18.19.0\n"
	if err := os.WriteFile(filepath.Join(oldNode, "node"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, ci      string
		wantFatal, wantSkip string
	}{
		{"no node, CI", t.TempDir(), "true", "node is not on PATH", ""},
		{"no node, not CI", t.TempDir(), "", "", "node is not on PATH"},
		{"node 18", oldNode, "", "node v18.19.0 is too old", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", tt.path)
			t.Setenv("CI", tt.ci)
			tb := &recordingTB{}
			done := make(chan string, 1)
			go func() {
				defer close(done)
				done <- postlogintest.RequireNode(tb)
			}()
			if path := <-done; path != "" {
				t.Fatalf("RequireNode returned %q, want it to stop the test", path)
			}
			if tt.wantFatal == "" && tb.fatal != "" || !strings.Contains(tb.fatal, tt.wantFatal) {
				t.Errorf("fatal: got %q, want %q", tb.fatal, tt.wantFatal)
			}
			if tt.wantSkip == "" && tb.skip != "" || !strings.Contains(tb.skip, tt.wantSkip) {
				t.Errorf("skip: got %q, want %q", tb.skip, tt.wantSkip)
			}
		})
	}
}

// TestEndToEnd_ThreeAccountsConverge: Jane has a password account, an older
// Google account and, from her first passwordless login on, a passwordless
// one. With the selector "oldest", her three logins, in every order, through
// the real Action, the service and the emulator, end as one user: the Google
// one, holding all three identities. Every login succeeds as a user that
// exists; the login that chose its own user absorbs the others and goes on
// as itself.
func TestEndToEnd_ThreeAccountsConverge(t *testing.T) {
	google := linking.User{
		ID: "google-oauth2|1089", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "google-oauth2", UserID: "1089", Connection: "google-oauth2", IsSocial: true}},
		CreatedAt:  time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC),
	}
	db := janeDB
	db.CreatedAt = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	sel, err := linking.ParseSelector("oldest")
	if err != nil {
		t.Fatal(err)
	}
	policy := linking.Policy{TrustedProviders: []string{"auth0", "email", "google-oauth2"}, Select: sel}
	action := actionFile(t)

	for _, order := range [][]string{
		{"password", "google", "otp"}, {"password", "otp", "google"}, {"google", "password", "otp"},
		{"google", "otp", "password"}, {"otp", "password", "google"}, {"otp", "google", "password"},
	} {
		t.Run(strings.Join(order, ","), func(t *testing.T) {
			s := deployWith(t, policy, db, google)
			s.emu.Tenant.AddConnection(linkingtest.Connection{ID: "con_google", Name: "google-oauth2", Strategy: "google-oauth2"})
			for _, who := range order {
				var r loginRecord
				switch who {
				case "otp":
					r = s.login(t, action, "jane@example.com")
				case "password":
					r = s.run(t, action, func() (*postlogintest.Transaction, error) { return s.flow.SignIn(t.Context(), db.Identities[0]) })
				case "google":
					r = s.run(t, action, func() (*postlogintest.Transaction, error) { return s.flow.SignIn(t.Context(), google.Identities[0]) })
				}
				if !r.res.Succeeded {
					t.Fatalf("login %s as %s: failed: %v (calls %v, log %q)", who, r.tx.User.ID, r.res.Err, calls(r.run), r.run.Logs)
				}
				if _, err := s.emu.Tenant.User(t.Context(), r.res.Subject); err != nil {
					t.Fatalf("login %s ended as %s, which does not exist: %v", who, r.res.Subject, err)
				}
			}
			users := s.emu.Tenant.Users()
			if len(users) != 1 || users[0].ID != google.ID || len(users[0].Identities) != 3 {
				t.Fatalf("tenant after the logins: %+v, want %s alone with 3 identities", users, google.ID)
			}
		})
	}
}
