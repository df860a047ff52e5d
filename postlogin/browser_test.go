package postlogin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/postlogin"
	"github.com/idlink/linking/postlogin/postlogintest"
)

// The browser tests run the confirm path of the end-to-end tests
// (deployConfirm: the pipeline emulator, the real Action in Node, the
// service) in headless Chromium, driven by chromedp: the person types into
// the tenant's login pages and presses the consent page's buttons, the
// browser keeps the cookies, follows the redirects, applies the pages'
// Content-Security-Policy and runs the return page's script that posts to
// /continue.

// browserStepTimeout bounds each step of a browser test: a page that never
// shows fails the step, naming where the browser is.
const browserStepTimeout = 15 * time.Second

// requireChromium returns the path of Chromium. Without it the test fails
// under CI (which installs it) and is skipped elsewhere.
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not on PATH: the confirm pages are tested in headless Chromium, which .ci/run installs (apt-get install chromium); with CI=true this test cannot be skipped")
	}
	t.Skip("chromium is not on PATH; the confirm pages are tested in headless Chromium (apt-get install chromium)")
	return ""
}

// spki returns the pin of the certificate that origin presents, verified
// against the deployment's roots: the base64 SHA-256 of its public key.
func (d *confirmDeployment) spki(t *testing.T, origin string) string {
	t.Helper()
	u, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: d.Roots})
	if err != nil {
		t.Fatalf("the certificate of %s: %v", origin, err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// chromium is a headless Chromium with one tab, on a deployment.
type chromium struct {
	t   *testing.T
	d   *confirmDeployment
	ctx context.Context

	mu      sync.Mutex
	console []string // what the pages and the browser logged
}

// newChromium starts headless Chromium for d, with the application served
// on origins: it trusts exactly their certificates and those of the tenant
// and the service.
func newChromium(t *testing.T, d *confirmDeployment, origins ...string) *chromium {
	t.Helper()
	var pins []string
	for _, o := range append([]string{d.Tenant.URL, d.ServiceURL}, origins...) {
		pins = append(pins, d.spki(t, o))
	}
	path := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(720, 520),
		// The loopback test servers have certificates of their own:
		// Chromium accepts exactly those, by their public keys, and still
		// refuses any other certificate its roots do not vouch for.
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(pins, ",")),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run its sandbox as root, as CI runs.
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	// The first action starts the browser, which lives as long as the
	// context it runs with: ctx, not a step's.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	b := &chromium{t: t, d: d, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m.String())
			b.mu.Unlock()
		}
	}()
	return b
}

// do runs steps within browserStepTimeout; it fails the test with where
// the browser is, what it shows and what was logged to its console.
func (b *chromium) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.mu.Lock()
		console := strings.Join(b.console, "\n")
		b.mu.Unlock()
		b.t.Fatalf("browser: %v\nat %s:\n%s\nconsole:\n%s", err, b.location(), b.text(), console)
	}
}

// location returns the URL of the page the browser shows, or why it
// cannot tell.
func (b *chromium) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return loc
}

// text returns the text of the page the browser shows.
func (b *chromium) text() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

// passwordless signs in to the application with an email code, typed into
// the tenant's login page, and waits for the consent page.
func (b *chromium) passwordless(a appLogin, email string) {
	b.t.Helper()
	b.do(
		chromedp.Navigate(a.URL),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	code, ok := b.d.Tenant.LastCode(email)
	if !ok {
		b.t.Fatalf("no code was sent to %s; the browser is at %s", email, b.location())
	}
	b.do(chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("submit")))
	b.onConsentPage()
}

// consentButton selects a button of the consent page by its choice.
func consentButton(choice string) chromedp.CSS {
	return chromedp.CSS(`button[name="choice"][value="` + choice + `"]`)
}

// onConsentPage waits for the service's consent page.
func (b *chromium) onConsentPage() {
	b.t.Helper()
	b.do(chromedp.WaitVisible(consentButton("link")))
	if loc := b.location(); loc != b.d.ServiceURL+postlogin.ConfirmPath {
		b.t.Fatalf("the consent page is at %s, want %s", loc, b.d.ServiceURL+postlogin.ConfirmPath)
	}
}

// choose presses the consent page's button of choice.
func (b *chromium) choose(choice string) {
	b.t.Helper()
	b.do(chromedp.Click(consentButton(choice)))
}

// passwordLogin types email and password into the tenant's password login
// page, which the Link button led to, and submits it. The page asks for
// the chosen account, Jane's: her email is filled in (login_hint).
func (b *chromium) passwordLogin(email, password string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.ID("password")))
	if loc := b.location(); !strings.HasPrefix(loc, b.d.Tenant.URL+"/authorize?") {
		b.t.Fatalf("the password page is at %s, want the tenant's /authorize", loc)
	}
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if hint, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("email"))); err != nil || hint != janeUnverifiedDB.Email {
		b.t.Errorf("the password page's email field: got %q (%v), want %q", hint, err, janeUnverifiedDB.Email)
	}
	b.do(
		chromedp.Clear(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit")),
	)
}

// screenshot returns a PNG of the page the browser shows.
func (b *chromium) screenshot() []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	return img
}

// appSignedIn is the id of the application's page after a login.
const appSignedIn = "signed-in"

// serveApp serves the application's callback page on its own HTTPS origin,
// registers it with the tenant as the application's only callback, and
// returns its origin. The page only shows that the login came back: the
// test exchanges the code in its URL.
func serveApp(t *testing.T, d *confirmDeployment) string {
	t.Helper()
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>My App</title><h1 id="` + appSignedIn + `">Back at My App</h1>`))
	}))
	t.Cleanup(app.Close)
	d.App.RedirectURL = app.URL + "/callback"
	d.Tenant.AddClient(postlogintest.Client{ID: appClientID, Secret: appClientSecret, Name: "My App", RedirectURIs: []string{d.App.RedirectURL}})
	return app.URL
}

// backAtApp waits for the application's page and returns the user the
// login ended as.
func (b *chromium) backAtApp(a appLogin) string {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.ID(appSignedIn)))
	u, err := url.Parse(b.location())
	if err != nil {
		b.t.Fatal(err)
	}
	return b.d.subject(b.t, a, u)
}

// TestBrowser_Confirm: the seed person signs in with an email code in
// headless Chromium; the Action sends her to the consent page, and there
// she links her password account by signing in to it, says not now, says
// it is not hers, or signs in to another account, which links nothing.
// The consent page's screenshot is saved in the test's directory, and at
// $LINKING_SCREENSHOT when set (docs/confirm.png is made so).
func TestBrowser_Confirm(t *testing.T) {
	requireChromium(t)
	tests := []struct {
		name string
		// act goes from the consent page back to the application.
		act func(t *testing.T, b *chromium)
		// linked: the login ends as the password user, which holds the
		// passwordless identity; otherwise as the passwordless user.
		linked bool
		// declined: the passwordless user's app_metadata records the
		// password account as declined.
		declined bool
		// docs: the case whose consent page $LINKING_SCREENSHOT receives.
		docs bool
	}{
		{
			name: "Link, then the password account's password",
			act: func(t *testing.T, b *chromium) {
				b.choose("link")
				b.passwordLogin("jane@example.com", janePassword)
			},
			linked: true,
			docs:   true,
		},
		{
			name: "Not now",
			act:  func(t *testing.T, b *chromium) { b.choose("not_now") },
		},
		{
			name:     "This isn't mine",
			act:      func(t *testing.T, b *chromium) { b.choose("decline") },
			declined: true,
		},
		{
			name: "Link, then another account's password",
			act: func(t *testing.T, b *chromium) {
				b.choose("link")
				b.passwordLogin("bob@example.com", bobPassword)
				b.onConsentPage()
				if text := b.text(); !strings.Contains(text, "You signed in to another account") {
					t.Errorf("the consent page after the wrong account has no notice:\n%s", text)
				}
				for _, id := range []string{janeUnverifiedDB.ID, bobE2E.ID} {
					if u, _ := b.d.user(id); len(u.Identities) != 1 {
						t.Errorf("after the wrong account, %s holds %d identities, want 1", id, len(u.Identities))
					}
				}
				b.choose("not_now")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jane := janeUnverifiedDB
			jane.CreatedAt = time.Date(2024, 3, 2, 10, 0, 0, 0, time.UTC) // as the consent page describes it
			d := deployConfirm(t, linking.Policy{Confirm: linking.ConfirmRefused}, jane, bobE2E)
			b := newChromium(t, d, serveApp(t, d))
			apiBefore := d.apiCalls()

			a := d.startLogin("email")
			b.passwordless(a, "jane@example.com")
			if text := b.text(); !strings.Contains(text, "You already have an account with jane@example.com: a password account created March 2024. Link it to this sign-in?") {
				t.Errorf("the consent page does not describe the password account:\n%s", text)
			}
			saveScreenshot(t, b.screenshot(), tt.docs)
			tt.act(t, b)
			sub := b.backAtApp(a)

			jane, _ = d.user(janeUnverifiedDB.ID)
			if tt.linked {
				if sub != janeUnverifiedDB.ID {
					t.Errorf("the login ended as %q, want the password user %q", sub, janeUnverifiedDB.ID)
				}
				if len(jane.Identities) != 2 || jane.Identities[1].Provider != "email" {
					t.Errorf("the password user: %+v, want it holding the passwordless identity", jane)
				}
				if got := d.apiCalls() - apiBefore; got != 2 {
					t.Errorf("Management API calls: got %d, want 2 (one lookup, one link)", got)
				}
				return
			}
			if !strings.HasPrefix(sub, "email|") {
				t.Errorf("the login ended as %q, want the passwordless user", sub)
			}
			if len(jane.Identities) != 1 {
				t.Errorf("the password user holds %d identities, want 1", len(jane.Identities))
			}
			u, _ := d.user(sub)
			marker, _ := u.AppMetadata["linking"].(map[string]any)
			declined, _ := marker["declined"].([]any)
			if got := len(declined) == 1 && declined[0] == janeUnverifiedDB.ID; got != tt.declined {
				t.Errorf("app_metadata.linking: %v; declined %s: got %v, want %v", marker, janeUnverifiedDB.ID, got, tt.declined)
			}
		})
	}
}

// saveScreenshot checks that img is a PNG of a page and saves it in the
// test's directory, and, for the docs case, at $LINKING_SCREENSHOT when set.
func saveScreenshot(t *testing.T, img []byte, docs bool) {
	t.Helper()
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfg.Width < 300 || cfg.Height < 200 {
		t.Fatalf("the consent page's screenshot: %dx%d, %v; want a PNG of a page", cfg.Width, cfg.Height, err)
	}
	paths := []string{filepath.Join(t.TempDir(), "consent.png")}
	if path := os.Getenv("LINKING_SCREENSHOT"); path != "" && docs {
		paths = append(paths, path)
	}
	for _, path := range paths {
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
