package linking_test

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/idlink/linking"
)

// The seed scenario: a database user, then a first passwordless login.
var (
	existing = dbUser("63d17c6a", "jane@example.com", true)
	otp      = otpUser("6f1c2b3a", "jane@example.com")
)

func verdict(u linking.User, r linking.Reason) linking.Verdict {
	return linking.Verdict{UserID: u.ID, Eligible: r == linking.ReasonEligible, Reason: r}
}

// TestDecideSeedRule checks the classic Rule's semantics: skip an unverified
// login, drop unverified candidates and the user itself, deny on more than one
// candidate, do nothing when there is none.
func TestDecideSeedRule(t *testing.T) {
	unverified := dbUser("unverified", "jane@example.com", false)
	second := dbUser("second", "jane@example.com", true)
	unverifiedLogin := otp
	unverifiedLogin.EmailVerified = false

	tests := []struct {
		name       string
		login      linking.Login
		candidates []linking.User
		want       linking.Decision
	}{{
		name:       "links the passwordless login into the database user",
		login:      loginAs(otp),
		candidates: []linking.User{otp, existing},
		want: linking.Decision{
			Action: linking.ActionLink, Reason: linking.ReasonLinked,
			Primary: existing, Secondary: otp.Identities[0], Email: "jane@example.com",
			Candidates: []linking.Verdict{verdict(existing, linking.ReasonEligible), verdict(otp, linking.ReasonSelf)},
		},
	}, {
		name:       "skips a login whose email is not verified",
		login:      loginAs(unverifiedLogin),
		candidates: []linking.User{existing},
		want:       linking.Decision{Action: linking.ActionNone, Reason: linking.ReasonLoginEmailUnverified},
	}, {
		name:       "drops unverified candidates and the user itself",
		login:      loginAs(otp),
		candidates: []linking.User{unverified, otp, existing},
		want: linking.Decision{
			Action: linking.ActionLink, Reason: linking.ReasonLinked,
			Primary: existing, Secondary: otp.Identities[0], Email: "jane@example.com",
			Candidates: []linking.Verdict{
				verdict(existing, linking.ReasonEligible),
				verdict(unverified, linking.ReasonEmailUnverified),
				verdict(otp, linking.ReasonSelf),
			},
		},
	}, {
		name:       "denies when more than one candidate is left",
		login:      loginAs(otp),
		candidates: []linking.User{existing, second, otp},
		want: linking.Decision{
			Action: linking.ActionDeny, Reason: linking.ReasonAmbiguous, Email: "jane@example.com",
			Candidates: []linking.Verdict{
				verdict(existing, linking.ReasonEligible),
				verdict(second, linking.ReasonEligible),
				verdict(otp, linking.ReasonSelf),
			},
		},
	}, {
		name:       "does nothing when no other user has the email",
		login:      loginAs(otp),
		candidates: []linking.User{otp},
		want: linking.Decision{
			Action: linking.ActionNone, Reason: linking.ReasonNoCandidate, Email: "jane@example.com",
			Candidates: []linking.Verdict{verdict(otp, linking.ReasonSelf)},
		},
	}, {
		name:       "does nothing with no candidates at all",
		login:      loginAs(otp),
		candidates: nil,
		want:       linking.Decision{Action: linking.ActionNone, Reason: linking.ReasonNoCandidate, Email: "jane@example.com"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := linking.Decide(tt.login, tt.candidates, linking.Policy{})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideCandidateVerdicts(t *testing.T) {
	blocked := dbUser("blocked", "jane@example.com", true)
	blocked.Blocked = true
	other := dbUser("other", "john@example.com", true)
	invalid := dbUser("invalid", "jane@example.com,john@example.com", true)
	upper := dbUser("upper", "JANE@EXAMPLE.COM", true)

	got := linking.Decide(loginAs(otp), []linking.User{blocked, other, invalid, upper}, linking.Policy{InsecureIgnoreBlockedAccounts: true})
	want := []linking.Verdict{
		verdict(blocked, linking.ReasonBlocked),
		verdict(invalid, linking.ReasonEmailInvalid),
		verdict(other, linking.ReasonEmailMismatch),
		verdict(upper, linking.ReasonEligible),
	}
	if diff := cmp.Diff(want, got.Candidates); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	if got.Action != linking.ActionLink || got.Primary.ID != upper.ID {
		t.Errorf("got %v into %q, want link into %q", got.Action, got.Primary.ID, upper.ID)
	}
}

// TestDecideBlockedAccount: a blocked user that would be eligible denies
// the login by default, so that a ban is not evaded by signing in again with
// a passwordless code; the opt-out leaves it out. A blocked user that would
// not be eligible anyway (unverified) changes nothing.
func TestDecideBlockedAccount(t *testing.T) {
	blocked := dbUser("blocked", "jane@example.com", true)
	blocked.Blocked = true
	unverified := dbUser("unverified", "jane@example.com", false)
	unverified.Blocked = true
	tests := []struct {
		name       string
		candidates []linking.User
		policy     linking.Policy
		want       linking.Action
		reason     linking.Reason
	}{
		{"blocked alone", []linking.User{blocked}, linking.Policy{}, linking.ActionDeny, linking.ReasonBlockedAccount},
		{"blocked beside an eligible user", []linking.User{blocked, existing}, linking.Policy{}, linking.ActionDeny, linking.ReasonBlockedAccount},
		{"blocked, with selection", []linking.User{blocked, existing}, linking.Policy{Select: linking.RecommendedSelector}, linking.ActionDeny, linking.ReasonBlockedAccount},
		{"opt-out, blocked alone", []linking.User{blocked}, linking.Policy{InsecureIgnoreBlockedAccounts: true}, linking.ActionNone, linking.ReasonNoCandidate},
		{"opt-out, beside an eligible user", []linking.User{blocked, existing}, linking.Policy{InsecureIgnoreBlockedAccounts: true}, linking.ActionLink, linking.ReasonLinked},
		{"blocked and unverified", []linking.User{unverified, existing}, linking.Policy{}, linking.ActionLink, linking.ReasonLinked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := linking.Decide(loginAs(otp), tt.candidates, tt.policy)
			if got.Action != tt.want || got.Reason != tt.reason {
				t.Errorf("got %v/%s, want %v/%s", got.Action, got.Reason, tt.want, tt.reason)
			}
		})
	}
}

func TestDecideConflictingCopies(t *testing.T) {
	changed := existing
	changed.EmailVerified = false
	for _, candidates := range [][]linking.User{{existing, changed}, {changed, existing}} {
		got := linking.Decide(loginAs(otp), candidates, linking.Policy{})
		want := linking.Decision{
			Action: linking.ActionNone, Reason: linking.ReasonNoCandidate, Email: "jane@example.com",
			Candidates: []linking.Verdict{verdict(existing, linking.ReasonConflictingCopies)},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Decide (-want +got):\n%s", diff)
		}
	}
	// Identical copies count once.
	got := linking.Decide(loginAs(otp), []linking.User{existing, existing}, linking.Policy{})
	if got.Action != linking.ActionLink || len(got.Candidates) != 1 {
		t.Errorf("identical copies: got %v with %d verdicts, want link with 1", got.Action, len(got.Candidates))
	}
}

func TestDecideLoginChecks(t *testing.T) {
	noEmail := otp
	noEmail.Email = ""
	badEmail := otp
	badEmail.Email = "jane@exam ple.com"
	untrusted := user("samlp", "corp-jane", "corp-saml", "jane@example.com", true)
	tests := []struct {
		name  string
		login linking.Login
		want  linking.Reason
	}{
		{"missing email", loginAs(noEmail), linking.ReasonLoginEmailMissing},
		{"invalid email", loginAs(badEmail), linking.ReasonLoginEmailInvalid},
		{"untrusted connection", loginAs(untrusted), linking.ReasonLoginUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := linking.Decide(tt.login, []linking.User{existing}, linking.Policy{})
			if got.Action != linking.ActionNone || got.Reason != tt.want {
				t.Errorf("got %v/%s, want none/%s", got.Action, got.Reason, tt.want)
			}
			if len(got.Candidates) != 0 {
				t.Errorf("got %d verdicts, want none: candidates are not judged for an ineligible login", len(got.Candidates))
			}
		})
	}
}

// TestRule1_UnverifiedOrMissingLoginEmailNeverLinks is rule 1 of docs/security.md for
// the decision; TestLinkerRule1_NoStoreCall checks the Linker makes no call.
func TestRule1_UnverifiedOrMissingLoginEmailNeverLinks(t *testing.T) {
	unverified := otp
	unverified.EmailVerified = false
	missing := otp
	missing.Email = ""
	for _, u := range []linking.User{unverified, missing} {
		got := linking.Decide(loginAs(u), []linking.User{existing}, linking.Policy{})
		if got.Action != linking.ActionNone {
			t.Errorf("login email %q verified=%v: got %v, want none", u.Email, u.EmailVerified, got.Action)
		}
	}
}

// TestRule2_UnverifiedCandidateIsNeverPrimary is rule 2 of docs/security.md: an
// attacker pre-registers a password account with the victim's email and never
// verifies it. It is dropped before counting, so it neither becomes primary
// nor makes the victim's legitimate candidate ambiguous.
func TestRule2_UnverifiedCandidateIsNeverPrimary(t *testing.T) {
	attacker := dbUser("attacker", "jane@example.com", false)
	got := linking.Decide(loginAs(otp), []linking.User{attacker}, linking.Policy{})
	if got.Action != linking.ActionNone || got.Reason != linking.ReasonNoCandidate {
		t.Errorf("alone: got %v/%s, want none/no_candidate", got.Action, got.Reason)
	}
	got = linking.Decide(loginAs(otp), []linking.User{attacker, existing}, linking.Policy{})
	if got.Action != linking.ActionLink || got.Primary.ID != existing.ID {
		t.Errorf("with the real account: got %v into %q, want link into %q", got.Action, got.Primary.ID, existing.ID)
	}
}

// TestRule3_UntrustedConnectionIsNeverPrimary is rule 3 of docs/security.md: an
// enterprise or loosely verifying IdP vouches for the email ("nOAuth").
func TestRule3_UntrustedConnectionIsNeverPrimary(t *testing.T) {
	azure := user("waad", "azure-jane", "contoso-azure", "jane@example.com", true)
	social := user("google-oauth2", "1098", "google-oauth2", "jane@example.com", true)
	social.Identities[0].IsSocial = true

	tests := []struct {
		name      string
		candidate linking.User
		policy    linking.Policy
		want      linking.Action
		reason    linking.Reason
	}{
		{"azure by default", azure, linking.Policy{}, linking.ActionNone, linking.ReasonNoCandidate},
		{"azure listed without the insecure flag", azure,
			linking.Policy{TrustedProviders: []string{"auth0", "email", "waad"}}, linking.ActionNone, linking.ReasonNoCandidate},
		{"azure with the insecure flag", azure,
			linking.Policy{TrustedProviders: []string{"auth0", "email", "waad"}, InsecureTrustLooseProviders: true},
			linking.ActionLink, linking.ReasonLinked},
		{"azure connection named", azure,
			linking.Policy{TrustedConnections: []string{"contoso-azure"}}, linking.ActionLink, linking.ReasonLinked},
		{"social by default", social, linking.Policy{}, linking.ActionNone, linking.ReasonNoCandidate},
		{"social trusted", social,
			linking.Policy{TrustedProviders: []string{"auth0", "email", "google-oauth2"}}, linking.ActionLink, linking.ReasonLinked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := linking.Decide(loginAs(otp), []linking.User{tt.candidate}, tt.policy)
			if got.Action != tt.want || got.Reason != tt.reason {
				t.Fatalf("got %v/%s, want %v/%s", got.Action, got.Reason, tt.want, tt.reason)
			}
			if tt.want == linking.ActionNone && got.Candidates[0].Reason != linking.ReasonUntrustedConnection {
				t.Errorf("verdict %s, want %s", got.Candidates[0].Reason, linking.ReasonUntrustedConnection)
			}
		})
	}
}

// TestRule4_TrojanIdentityIsRefused is rule 4 of docs/security.md: a candidate that
// already carries an identity from an untrusted connection, or whose linked
// identities carry another email, is refused.
func TestRule4_TrojanIdentityIsRefused(t *testing.T) {
	trojan := existing
	trojan.Identities = append([]linking.Identity{}, existing.Identities...)
	trojan.Identities = append(trojan.Identities, linking.Identity{
		Provider: "samlp", UserID: "evil", Connection: "evil-saml",
		ProfileData: map[string]any{"email": "jane@example.com", "email_verified": true},
	})
	mismatch := existing
	mismatch.Identities = append([]linking.Identity{}, existing.Identities...)
	mismatch.Identities = append(mismatch.Identities, linking.Identity{
		Provider: "email", UserID: "mallory", Connection: "email",
		ProfileData: map[string]any{"email": "mallory@example.net", "email_verified": true},
	})
	for _, tt := range []struct {
		name      string
		candidate linking.User
		want      linking.Reason
	}{
		{"untrusted identity", trojan, linking.ReasonUntrustedIdentity},
		{"identity with another email", mismatch, linking.ReasonIdentityEmailMismatch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := linking.Decide(loginAs(otp), []linking.User{tt.candidate}, linking.Policy{})
			want := linking.Decision{
				Action: linking.ActionNone, Reason: linking.ReasonNoCandidate, Email: "jane@example.com",
				Candidates: []linking.Verdict{verdict(tt.candidate, tt.want)},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRule5_AmbiguityIsNeverResolvedSilently is rule 5 of docs/security.md.
func TestRule5_AmbiguityIsNeverResolvedSilently(t *testing.T) {
	second := dbUser("second", "jane@example.com", true)
	candidates := []linking.User{existing, second}
	for _, tt := range []struct {
		policy linking.Policy
		want   linking.Action
	}{
		{linking.Policy{}, linking.ActionDeny},
		{linking.Policy{OnAmbiguous: linking.AmbiguousContinue}, linking.ActionNone},
	} {
		got := linking.Decide(loginAs(otp), candidates, tt.policy)
		if got.Action != tt.want || got.Reason != linking.ReasonAmbiguous {
			t.Errorf("OnAmbiguous %v: got %v/%s, want %v/ambiguous", tt.policy.OnAmbiguous, got.Action, got.Reason, tt.want)
		}
		if got.Primary.ID != "" {
			t.Errorf("OnAmbiguous %v: a primary was picked: %q", tt.policy.OnAmbiguous, got.Primary.ID)
		}
	}
}

// TestRule6_CandidateEmailsAreRecompared is rule 6 of docs/security.md for the
// decision: whatever the store matched, every candidate's stored email is
// compared again after normalization, and confusables do not match.
func TestRule6_CandidateEmailsAreRecompared(t *testing.T) {
	for _, email := range []string{
		"jane@example.com.evil.net", "jane+x@example.com", "jan.e@example.com",
		"jаne@example.com", // Cyrillic а
		"jane@exаmple.com", // Cyrillic а in the domain, mixed with Latin
		"jane@example.com ,mallory@evil.net",
	} {
		candidate := dbUser("lookalike", email, true)
		got := linking.Decide(loginAs(otp), []linking.User{candidate}, linking.Policy{})
		if got.Action != linking.ActionNone {
			t.Errorf("candidate email %q: got %v, want none", email, got.Action)
		}
		if r := got.Candidates[0].Reason; r != linking.ReasonEmailMismatch && r != linking.ReasonEmailInvalid {
			t.Errorf("candidate email %q: verdict %s, want email_mismatch or email_invalid", email, r)
		}
	}
}

// TestRule7_LinksOnlyTheAuthenticatingIdentity is rule 7 of docs/security.md.
func TestRule7_LinksOnlyTheAuthenticatingIdentity(t *testing.T) {
	got := linking.Decide(loginAs(otp), []linking.User{existing}, linking.Policy{})
	if diff := cmp.Diff(otp.Identities[0], got.Secondary); diff != "" {
		t.Errorf("secondary (-want +got):\n%s", diff)
	}
	// An identity the login's user does not hold is refused outright.
	forged := loginAs(otp)
	forged.Identity = linking.Identity{Provider: "auth0", UserID: "someone-else", Connection: "Username-Password-Authentication"}
	got = linking.Decide(forged, []linking.User{existing}, linking.Policy{})
	if got.Action != linking.ActionDeny || got.Reason != linking.ReasonInvalidLogin {
		t.Errorf("forged identity: got %v/%s, want deny/invalid_login", got.Action, got.Reason)
	}
}

// TestRule9_NeverSelfNeverPrimaryAsSecondary is rule 9 of docs/security.md.
func TestRule9_NeverSelfNeverPrimaryAsSecondary(t *testing.T) {
	// The login's own user, even as a separate copy, is never a candidate.
	got := linking.Decide(loginAs(existing), []linking.User{existing}, linking.Policy{})
	if got.Action != linking.ActionNone || got.Candidates[0].Reason != linking.ReasonSelf {
		t.Errorf("self: got %v with verdict %s, want none/self", got.Action, got.Candidates[0].Reason)
	}
	// A user that already holds the login's identity: the link is in place
	// (a repeated call), so the login ends as that user and nothing is
	// linked again.
	holder := existing
	holder.Identities = append([]linking.Identity{}, existing.Identities...)
	holder.Identities = append(holder.Identities, otp.Identities[0])
	got = linking.Decide(loginAs(otp), []linking.User{holder, dbUser("other", "jane@example.com", true)}, linking.Policy{})
	if got.Action != linking.ActionLink || got.Reason != linking.ReasonAlreadyLinked || got.Primary.ID != holder.ID {
		t.Errorf("holder of the identity: got %v/%s into %q, want link/already_linked into %q",
			got.Action, got.Reason, got.Primary.ID, holder.ID)
	}
	// A login whose user is already a primary (several identities) never
	// becomes a secondary, even with an eligible candidate.
	primary := existing
	primary.Identities = append([]linking.Identity{}, existing.Identities...)
	primary.Identities = append(primary.Identities, otp.Identities[0])
	other := dbUser("other", "jane@example.com", true)
	got = linking.Decide(linking.Login{User: primary, Identity: otp.Identities[0]}, []linking.User{other}, linking.Policy{})
	if got.Action != linking.ActionNone || got.Reason != linking.ReasonLoginIsPrimary {
		t.Errorf("primary as login: got %v/%s, want none/login_is_primary", got.Action, got.Reason)
	}
}

// randomCandidates makes candidates around one email: verified or not,
// blocked or not, case variants, other emails, untrusted connections,
// sometimes the login's own user.
func randomCandidates(r *rand.Rand, login linking.Login) []linking.User {
	emails := []string{"jane@example.com", "Jane@Example.com", "JANE@EXAMPLE.COM", "john@example.com", "jane+x@example.com", "bad email"}
	providers := []struct{ provider, connection string }{
		{"auth0", "Username-Password-Authentication"}, {"email", "email"}, {"waad", "contoso"}, {"google-oauth2", "google-oauth2"},
	}
	n := r.Intn(6)
	out := make([]linking.User, 0, n+1)
	for i := 0; i < n; i++ {
		p := providers[r.Intn(len(providers))]
		u := user(p.provider, fmt.Sprintf("u%d", r.Intn(8)), p.connection, emails[r.Intn(len(emails))], r.Intn(3) > 0)
		u.Blocked = r.Intn(10) == 0
		u.CreatedAt = created.Add(time.Duration(r.Intn(5)-2) * time.Hour)
		if r.Intn(8) == 0 { // a user the login's identity was already linked into
			u.Identities = append(u.Identities, login.Identity)
		}
		out = append(out, u)
	}
	if r.Intn(2) == 0 {
		out = append(out, login.User)
	}
	return out
}

// TestDecideProperties checks, over many generated inputs, that Decide does
// not depend on the order of candidates, never links a user to itself, and
// only ever picks a primary that is verified, trusted, not blocked and holds
// the login's email.
func TestDecideProperties(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	policies := []linking.Policy{{}, {OnAmbiguous: linking.AmbiguousContinue},
		{TrustedProviders: []string{"auth0", "email", "google-oauth2"}},
		{InsecureIgnoreBlockedAccounts: true},
		{Select: linking.RecommendedSelector, InsecureIgnoreBlockedAccounts: true},
		{Select: linking.Selector{linking.PreferConnection("email"), linking.PreferOldest},
			TrustedProviders: []string{"auth0", "email", "google-oauth2"}, InsecureIgnoreBlockedAccounts: true}}
	login := loginAs(otp)
	var absorbs, selected int
	defer func() {
		if absorbs == 0 || selected == 0 {
			t.Errorf("%d absorbs and %d links chosen by a selector in 5000 decisions: the generator does not reach them", absorbs, selected)
		}
	}()
	for i := 0; i < 5000; i++ {
		candidates := randomCandidates(r, login)
		p := policies[r.Intn(len(policies))]
		got := linking.Decide(login, candidates, p)

		shuffled := append([]linking.User(nil), candidates...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if diff := cmp.Diff(got, linking.Decide(login, shuffled, p)); diff != "" {
			t.Fatalf("order changed the decision for %v (-first +shuffled):\n%s", candidates, diff)
		}
		if got.Action == linking.ActionAbsorb {
			absorbs++
			checkAbsorb(t, login, got, p)
			continue
		}
		if got.ChosenBy != "" {
			selected++
		}
		if got.Action != linking.ActionLink {
			continue
		}
		primary := got.Primary
		email, err := linking.NormalizeEmail(primary.Email)
		main, _ := primary.MainIdentity()
		switch {
		case primary.ID == login.User.ID:
			t.Fatalf("linked the login to itself: %+v", primary)
		case primary.Holds(login.Identity) != (got.Reason == linking.ReasonAlreadyLinked):
			t.Fatalf("reason %s for a primary that holds the login's identity: %v", got.Reason, primary.Holds(login.Identity))
		case !primary.EmailVerified || primary.Blocked:
			t.Fatalf("primary not verified or blocked: %+v", primary)
		case err != nil || email != got.Email:
			t.Fatalf("primary email %q does not equal the login's %q", primary.Email, got.Email)
		case !p.Trusts(main):
			t.Fatalf("primary vouched by untrusted %+v", main)
		case !got.Secondary.Is(login.Identity):
			t.Fatalf("secondary %+v is not the login's identity", got.Secondary)
		}
	}
}

// checkAbsorb checks a decision to link other users into the login's user:
// chosen by a Selector, and each absorbed user would have been eligible as a
// primary: verified, trusted, not blocked, with the login's email, a single
// identity of its own, never the login's user.
func checkAbsorb(t *testing.T, login linking.Login, got linking.Decision, p linking.Policy) {
	t.Helper()
	if len(p.Select) == 0 || got.Primary.ID != login.User.ID || len(got.Absorb) == 0 || got.ChosenBy == "" {
		t.Fatalf("absorb without a selector, into another user, or of nobody: %+v", got)
	}
	for _, u := range got.Absorb {
		email, err := linking.NormalizeEmail(u.Email)
		main, _ := u.MainIdentity()
		switch {
		case u.ID == login.User.ID:
			t.Fatalf("absorbs the login's user: %+v", u)
		case !u.EmailVerified || u.Blocked || len(u.Identities) != 1:
			t.Fatalf("absorbs a user not verified, blocked or holding several identities: %+v", u)
		case err != nil || email != got.Email:
			t.Fatalf("absorbs a user with email %q, not the login's %q", u.Email, got.Email)
		case !p.Trusts(main):
			t.Fatalf("absorbs a user vouched by untrusted %+v", main)
		}
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[linking.Action]string{
		linking.ActionNone: "none", linking.ActionLink: "link", linking.ActionDeny: "deny", linking.ActionAbsorb: "absorb",
		linking.Action(9): "Action(9)",
	} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		policy  linking.Policy
		wantErr bool
	}{
		{"zero value", linking.Policy{}, false},
		{"social provider", linking.Policy{TrustedProviders: []string{"google-oauth2"}}, false},
		{"loose provider", linking.Policy{TrustedProviders: []string{"waad"}}, true},
		{"loose provider, insecure", linking.Policy{TrustedProviders: []string{"waad"}, InsecureTrustLooseProviders: true}, false},
		{"unknown ambiguity", linking.Policy{OnAmbiguous: 7}, true},
		{"unknown failure mode", linking.Policy{OnStoreError: 7}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.policy.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	login := loginAs(otp)
	for _, n := range []int{1, 10, 1000} {
		candidates := make([]linking.User, n)
		for i := range candidates {
			candidates[i] = dbUser(fmt.Sprintf("%08d", i), "jane@example.com", true)
			candidates[i].CreatedAt = created.Add(time.Duration(i) * time.Minute)
		}
		for _, p := range []struct {
			name   string
			policy linking.Policy
		}{
			{"", linking.Policy{}},
			{"/select=connection,oldest", linking.Policy{Select: linking.Selector{
				linking.PreferConnection("Username-Password-Authentication"), linking.PreferOldest}}},
		} {
			b.Run(fmt.Sprintf("candidates=%d%s", n, p.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					linking.Decide(login, candidates, p.policy)
				}
			})
		}
	}
}
