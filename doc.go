// Package linking links a new login identity to the existing Auth0 user with
// the same verified email, safely, idempotently, and so that the login ends
// as the existing user on its first attempt.
//
// A person signs up with email and password; later they sign in with a
// passwordless email code, and Auth0 creates a second user. On that login the
// rule finds the first user by email, links the new identity into it, and
// tells the caller which user the login must end as: in a post-login Action,
// the id to pass to api.authentication.setPrimaryUser. Without that call the
// login fails, because its user was linked away.
//
// The package has three layers:
//
//   - Decide is the rule itself: pure, deterministic, with no I/O. It takes
//     the login, the users found with its email and a Policy, and returns a
//     Decision with a verdict for every candidate.
//   - UserStore is the small interface to the tenant: users by email, a user
//     by id, link. The package mgmt implements it over the Auth0 Management
//     API (go-auth0); the package linkingtest has an in-memory tenant.
//   - Linker puts them together for one login: look up, decide, link, and
//     confirm by reading the primary back when the link call fails. The
//     work for one login is shared by concurrent calls for it and belongs to
//     none of them; once a link was sent, the answer is the link, confirmed,
//     or a denial to try again, never a login let through unlinked.
//
// # Choosing the primary
//
// By default the existing user is the primary and several eligible users
// are ambiguous. With Policy.Select, a Selector — a chain of small
// Preference functions such as PreferOldest and PreferConnection — names the
// primary among the login's user and every eligible candidate, and the links
// go either way: the login's identity into another user (ActionLink), or the
// other users into the login's (ActionAbsorb). One person's users then end
// as the same user whatever the order of their logins.
//
// # Safety
//
// Linking by email is how accounts are pre-hijacked: someone registers the
// victim's email first and waits for the victim's login to be linked into
// their account. The rule links only when the login's email and the
// candidate's are both verified by connections the Policy trusts (by default
// Auth0 databases and passwordless email), compares emails exactly after
// NormalizeEmail, refuses candidates holding untrusted identities, never picks
// one of several candidates silently, never links a user to itself or makes a
// primary a secondary, and links only the identity that authenticated the
// login. A blocked user with the login's email denies the login, so that a
// ban is not evaded by signing in again. Options that weaken a rule are named
// Insecure. docs/security.md in the repository lists the rules with the
// tests that hold them.
//
// # Errors
//
// Stores and the Linker classify errors with ErrNotFound, ErrConflict,
// ErrUnavailable and ErrRateLimited (errors.Is). NormalizeEmail returns an
// *EmailError wrapping ErrInvalidEmail.
package linking
