package linking

import (
	"fmt"
	"slices"
)

// Policy configures the linking rule. The zero value is the safe default:
// only the "auth0" database and "email" passwordless providers vouch for an
// email, an ambiguous email denies the login, and a store failure denies the
// login.
type Policy struct {
	// TrustedProviders lists the identity providers whose verified emails
	// the rule believes, for the login and for the candidates. Empty means
	// DefaultTrustedProviders.
	//
	// Adding a provider means trusting it never to mark an email verified
	// that its user does not own. Providers in LooseEmailProviders are
	// refused here (see InsecureTrustLooseProviders).
	TrustedProviders []string

	// TrustedConnections lists connection names trusted in addition to
	// TrustedProviders, for trusting one connection of a provider rather
	// than all of them (e.g. one enterprise connection whose directory you
	// administer). A connection named here is trusted whatever its provider.
	TrustedConnections []string

	// Select chooses the primary among the login's user and every eligible
	// candidate, so that one person's users end as the one the Selector
	// names, whatever the order of their logins: another user (the login's
	// identity is linked into it) or the login's own (the others are linked
	// into it). Nil keeps the rule without selection: the one eligible
	// candidate is the primary, and several are ambiguous. See
	// RecommendedSelector.
	Select Selector

	// Confirm says when the person must prove an existing account, by a
	// fresh login to exactly that account, before it is linked. The zero
	// value, ConfirmNever, links by the automatic rule alone.
	Confirm ConfirmMode

	// OnAmbiguous says what to do when several users are eligible primaries.
	// The zero value, AmbiguousDeny, refuses the login, as the classic Rule
	// did.
	OnAmbiguous Ambiguity

	// OnStoreError says what a Linker answers when the store fails. The
	// zero value, FailClosed, denies the login.
	OnStoreError FailureMode

	// InsecureIgnoreBlockedAccounts lets a login go on when a blocked user
	// that would otherwise be eligible shares its email; the blocked user is
	// left out, as if it were not there. By default such a login is denied
	// (ReasonBlockedAccount): otherwise a person whose account was blocked
	// signs in again with a passwordless code and goes on as a fresh,
	// unblocked user.
	InsecureIgnoreBlockedAccounts bool

	// InsecureTrustLooseProviders lets TrustedProviders include providers
	// listed in LooseEmailProviders. These providers let the people who
	// administer them (or, for multi-tenant Azure AD, anyone) set an email
	// they do not own as verified; trusting them lets an outsider take over
	// an account by its email ("nOAuth"). Leave it false unless every such
	// connection is one you administer.
	InsecureTrustLooseProviders bool
}

// Ambiguity is what to do when several users are eligible primaries.
type Ambiguity int

const (
	// AmbiguousDeny refuses the login.
	AmbiguousDeny Ambiguity = iota
	// AmbiguousContinue lets the login go on unlinked.
	AmbiguousContinue
)

// ConfirmMode says when a person proves an existing account before it is
// linked.
type ConfirmMode int

const (
	// ConfirmNever links by the automatic rule alone.
	ConfirmNever ConfirmMode = iota
	// ConfirmRefused asks for a proof where the automatic rule would not
	// link: an account whose email is unverified or whose connection the
	// policy does not trust, or several accounts (instead of denying or
	// going on). Where the rule links, it links.
	ConfirmRefused
	// ConfirmAlways asks for a proof before every link.
	ConfirmAlways
)

// FailureMode is what a Linker answers when its store fails.
type FailureMode int

const (
	// FailClosed denies the login: no one logs in as a possibly wrong user,
	// but an outage of the Management API blocks first logins.
	FailClosed FailureMode = iota
	// FailOpen lets the login go on unlinked: the person gets a second user
	// for now; the next login tries again.
	FailOpen
)

// DefaultTrustedProviders are the providers trusted when
// Policy.TrustedProviders is empty: Auth0's own database connections, which
// verify an email by a link sent to it, and passwordless email, which proves
// it by a code.
var DefaultTrustedProviders = []string{"auth0", "email"}

// LooseEmailProviders are Auth0 provider names (strategies) whose
// email_verified is known to be set by the identity provider's own
// administrators, or not checked at all: enterprise connections (Azure AD,
// ADFS, SAML, OpenID Connect, Okta, PingFederate, Google Workspace,
// LDAP/AD) and custom OAuth2. Trusting them requires
// Policy.InsecureTrustLooseProviders.
var LooseEmailProviders = []string{
	"waad", "adfs", "samlp", "oidc", "okta", "pingfederate",
	"google-apps", "ad", "auth0-oidc", "oauth2", "oauth1",
}

// Trusts reports whether the policy believes the verified email of an
// identity from id's provider or connection.
func (p Policy) Trusts(id Identity) bool {
	if id.Connection != "" && slices.Contains(p.TrustedConnections, id.Connection) {
		return true
	}
	providers := p.TrustedProviders
	if len(providers) == 0 {
		providers = DefaultTrustedProviders
	}
	return slices.Contains(providers, id.Provider) &&
		(p.InsecureTrustLooseProviders || !slices.Contains(LooseEmailProviders, id.Provider))
}

// Validate reports a policy that would not do what it says: a loose provider
// listed as trusted without InsecureTrustLooseProviders (Trusts ignores it),
// or an unknown Ambiguity or FailureMode.
func (p Policy) Validate() error {
	if !p.InsecureTrustLooseProviders {
		for _, name := range p.TrustedProviders {
			if slices.Contains(LooseEmailProviders, name) {
				return fmt.Errorf("linking: provider %q sets email_verified loosely; trusting it needs InsecureTrustLooseProviders", name)
			}
		}
	}
	if p.OnAmbiguous != AmbiguousDeny && p.OnAmbiguous != AmbiguousContinue {
		return fmt.Errorf("linking: unknown Ambiguity %d", p.OnAmbiguous)
	}
	if p.Confirm < ConfirmNever || p.Confirm > ConfirmAlways {
		return fmt.Errorf("linking: unknown ConfirmMode %d", p.Confirm)
	}
	if p.OnStoreError != FailClosed && p.OnStoreError != FailOpen {
		return fmt.Errorf("linking: unknown FailureMode %d", p.OnStoreError)
	}
	return nil
}
