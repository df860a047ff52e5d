package linking_test

import (
	"context"
	"math/rand"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

func TestDecideConfirm(t *testing.T) {
	unverified := dbUser("unverified", "jane@example.com", false)
	social := user("google-oauth2", "g", "google-oauth2", "jane@example.com", true)
	other := dbUser("other", "jane@example.com", true)
	blocked := dbUser("blocked", "jane@example.com", true)
	blocked.Blocked = true
	trojan := dbUser("trojan", "jane@example.com", true)
	trojan.Identities = append(trojan.Identities, linking.Identity{Provider: "waad", UserID: "x", Connection: "contoso"})
	mismatch := dbUser("mismatch", "john@example.com", true)
	unverifiedLogin := loginAs(otp)
	unverifiedLogin.User.EmailVerified = false

	tests := []struct {
		name       string
		login      linking.Login
		candidates []linking.User
		mode       linking.ConfirmMode
		want       linking.Action
		offer      []string
	}{
		{"never: unverified refused", loginAs(otp), []linking.User{unverified}, linking.ConfirmNever, linking.ActionNone, nil},
		{"refused: unverified may be proven", loginAs(otp), []linking.User{unverified}, linking.ConfirmRefused, linking.ActionConfirm, []string{unverified.ID}},
		{"refused: untrusted connection may be proven", loginAs(otp), []linking.User{social}, linking.ConfirmRefused, linking.ActionConfirm, []string{social.ID}},
		{"refused: several accounts, the person chooses", loginAs(otp), []linking.User{existing, other}, linking.ConfirmRefused, linking.ActionConfirm, []string{existing.ID, other.ID}},
		{"refused: the automatic rule links", loginAs(otp), []linking.User{existing, unverified}, linking.ConfirmRefused, linking.ActionLink, nil},
		{"always: even an eligible account", loginAs(otp), []linking.User{existing}, linking.ConfirmAlways, linking.ActionConfirm, []string{existing.ID}},
		{"never offered: trojan identity, other email", loginAs(otp), []linking.User{trojan, mismatch}, linking.ConfirmAlways, linking.ActionNone, nil},
		{"a blocked account still denies", loginAs(otp), []linking.User{blocked, unverified}, linking.ConfirmAlways, linking.ActionDeny, nil},
		{"an unverified login reveals nothing", unverifiedLogin, []linking.User{existing}, linking.ConfirmAlways, linking.ActionNone, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := linking.Decide(tt.login, tt.candidates, linking.Policy{Confirm: tt.mode})
			if d.Action != tt.want {
				t.Fatalf("got %v/%s, want %v", d.Action, d.Reason, tt.want)
			}
			var offer []string
			for _, u := range d.Confirm {
				offer = append(offer, u.ID)
			}
			if diff := cmp.Diff(tt.offer, offer); diff != "" {
				t.Errorf("offered (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideProven(t *testing.T) {
	unverified := dbUser("unverified", "jane@example.com", false)
	other := dbUser("other", "jane@example.com", true)
	mismatch := dbUser("mismatch", "john@example.com", true)
	candidates := []linking.User{unverified, other, mismatch}
	p := linking.Policy{Confirm: linking.ConfirmRefused}
	tests := []struct {
		name   string
		proven string
		p      linking.Policy
		want   linking.Action
		reason linking.Reason
	}{
		{"the offered unverified account", unverified.ID, p, linking.ActionLink, linking.ReasonConfirmed},
		{"another offered account", other.ID, p, linking.ActionLink, linking.ReasonConfirmed},
		{"an account with another email", mismatch.ID, p, linking.ActionNone, linking.ReasonProofRefused},
		{"an account not among the candidates", "auth0|stranger", p, linking.ActionNone, linking.ReasonProofRefused},
		{"the login's own user", otp.ID, p, linking.ActionNone, linking.ReasonProofRefused},
		{"no confirm mode", other.ID, linking.Policy{}, linking.ActionNone, linking.ReasonProofRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := linking.DecideProven(loginAs(otp), candidates, tt.proven, tt.p)
			if d.Action != tt.want || d.Reason != tt.reason {
				t.Fatalf("got %v/%s, want %v/%s", d.Action, d.Reason, tt.want, tt.reason)
			}
			if d.Action == linking.ActionLink && (d.Primary.ID != tt.proven || !d.Secondary.Is(otp.Identities[0])) {
				t.Errorf("links %s into %s, want the login's identity into %s", d.Secondary.UserIDOf(), d.Primary.ID, tt.proven)
			}
		})
	}
}

// TestConfirmInvariant: over many generated logins, no link is ever decided
// without either the automatic rule's full check (the primary is eligible
// without any proof) or a proof of exactly that account that may be offered.
func TestConfirmInvariant(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	login := loginAs(otp)
	for i := 0; i < 5000; i++ {
		candidates := randomCandidates(r, login)
		mode := linking.ConfirmMode(r.Intn(3))
		p := linking.Policy{Confirm: mode, InsecureIgnoreBlockedAccounts: r.Intn(2) == 0}
		auto := linking.Decide(login, candidates, linking.Policy{InsecureIgnoreBlockedAccounts: p.InsecureIgnoreBlockedAccounts})
		d := linking.Decide(login, candidates, p)
		if d.Action == linking.ActionLink && d.Reason != linking.ReasonAlreadyLinked &&
			(auto.Action != linking.ActionLink || auto.Primary.ID != d.Primary.ID) {
			t.Fatalf("mode %d links into %s where the automatic rule says %v/%s", mode, d.Primary.ID, auto.Action, auto.Reason)
		}
		offered := map[string]bool{}
		for _, u := range d.Confirm {
			offered[u.ID] = true
		}
		for _, c := range candidates {
			proven := linking.DecideProven(login, candidates, c.ID, p)
			if proven.Action != linking.ActionLink || proven.Reason == linking.ReasonAlreadyLinked {
				continue
			}
			if proven.Primary.ID != c.ID {
				t.Fatalf("a proof of %s links into %s", c.ID, proven.Primary.ID)
			}
			if mode != linking.ConfirmNever && d.Action == linking.ActionConfirm && !offered[c.ID] {
				t.Fatalf("a proof of %s links an account that was not offered (%v)", c.ID, d.Confirm)
			}
		}
	}
}

// TestLinkerLinkProven: the Linker answers confirm without writing, then
// links into the proven account with one lookup and one link.
func TestLinkerLinkProven(t *testing.T) {
	unverified := dbUser("unverified", "jane@example.com", false)
	tenant := linkingtest.NewTenant(unverified, otp)
	tenant.ResetCalls()
	l := &linking.Linker{Store: tenant, Policy: linking.Policy{Confirm: linking.ConfirmRefused}}
	ctx := context.Background()

	r, err := l.Link(ctx, loginAs(otp))
	if err != nil || r.Action != linking.ActionConfirm || len(r.Decision.Confirm) != 1 || r.Decision.Confirm[0].ID != unverified.ID {
		t.Fatalf("Link: got %v/%s %v, %v; want confirm of %s", r.Action, r.Reason, r.Decision.Confirm, err, unverified.ID)
	}
	wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 1})

	stranger := dbUser("stranger", "john@example.com", true)
	r, err = l.LinkProven(ctx, loginAs(otp), stranger)
	if err != nil || r.Action != linking.ActionNone || r.Reason != linking.ReasonProofRefused {
		t.Fatalf("LinkProven of an account with another email: got %v/%s, %v; want none/proof_refused", r.Action, r.Reason, err)
	}
	r, err = l.LinkProven(ctx, loginAs(otp), unverified)
	if err != nil || r.Action != linking.ActionLink || r.PrimaryUserID != unverified.ID || r.Reason != linking.ReasonConfirmed {
		t.Fatalf("LinkProven: got %v/%s into %q, %v; want link into %s", r.Action, r.Reason, r.PrimaryUserID, err, unverified.ID)
	}
	// As many calls as an automatic link: one lookup, one link.
	wantCalls(t, tenant, linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1})
	if users := tenant.Users(); len(users) != 1 || len(users[0].Identities) != 2 {
		t.Errorf("tenant: %v, want one user holding both identities", users)
	}
}
