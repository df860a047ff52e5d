package linking

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Action is what a decision asks for.
//
// The set may grow (a "confirm first" action is planned): a switch over Action
// should have a default case that treats an unknown action like ActionDeny.
type Action int

const (
	// ActionNone: nothing to link; the login goes on as it is.
	ActionNone Action = iota
	// ActionLink: link the login's identity into Decision.Primary, then end
	// the login as that user (setPrimaryUser).
	ActionLink
	// ActionDeny: refuse the login.
	ActionDeny
	// ActionAbsorb: link the other users of Decision.Absorb into the
	// login's own user, the primary the Policy's Selector chose; the login
	// goes on as itself (no setPrimaryUser).
	ActionAbsorb
	// ActionConfirm: link nothing yet; ask the person to prove one of the
	// accounts of Decision.Confirm (a fresh login to exactly that account),
	// then link with Linker.LinkProven. See Policy.Confirm.
	ActionConfirm
)

// String returns "none", "link", "deny", "absorb" or "confirm".
func (a Action) String() string {
	switch a {
	case ActionNone:
		return "none"
	case ActionLink:
		return "link"
	case ActionDeny:
		return "deny"
	case ActionAbsorb:
		return "absorb"
	case ActionConfirm:
		return "confirm"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// MarshalText encodes the action as its String.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Reason is a stable code that says why a decision, a result or a verdict is
// what it is. The codes are part of the API: they are safe to log, to count in
// metrics and to branch on.
type Reason string

// Reasons of a Decision or a Result.
const (
	// ReasonLinked: exactly one eligible candidate; link into it.
	ReasonLinked Reason = "linked"
	// ReasonAlreadyLinked: the link is already in place: a candidate holds
	// the login's identity (a repeated call for a login that was linked), or
	// the Linker found it on read-back after the link call failed. As a
	// verdict, it marks the candidate that holds the identity.
	ReasonAlreadyLinked Reason = "already_linked"
	// ReasonNoCandidate: no eligible candidate.
	ReasonNoCandidate Reason = "no_candidate"
	// ReasonAbsorbed: the Policy's Selector chose the login's own user as
	// the primary; the other eligible users are linked into it.
	ReasonAbsorbed Reason = "absorbed"
	// ReasonConfirm: the person is asked to prove an existing account
	// before it is linked (Policy.Confirm).
	ReasonConfirm Reason = "confirm"
	// ReasonConfirmed: the person proved the account the login is linked
	// into (DecideProven).
	ReasonConfirmed Reason = "confirmed"
	// ReasonProofRefused: the account the person proved is not one that
	// may be linked now (not offered, changed since, or no confirm mode).
	ReasonProofRefused Reason = "proof_refused"
	// ReasonAmbiguous: more than one eligible candidate and no Selector, or
	// a Selector that cannot tell the best two apart; none is picked.
	ReasonAmbiguous Reason = "ambiguous"
	// ReasonBlockedAccount: a blocked user that would otherwise be eligible
	// shares the login's email; the login is denied, so that a ban is not
	// evaded by signing up again (see Policy.InsecureIgnoreBlockedAccounts).
	ReasonBlockedAccount Reason = "blocked_account"
	// ReasonLoginEmailMissing: the login's user has no email.
	ReasonLoginEmailMissing Reason = "login_email_missing"
	// ReasonLoginEmailUnverified: the login's email is not verified.
	ReasonLoginEmailUnverified Reason = "login_email_unverified"
	// ReasonLoginEmailInvalid: the login's email is refused by NormalizeEmail.
	ReasonLoginEmailInvalid Reason = "login_email_invalid"
	// ReasonLoginUntrusted: the login's identity comes from a connection the
	// policy does not trust to verify emails.
	ReasonLoginUntrusted Reason = "login_connection_untrusted"
	// ReasonLoginIsPrimary: the login's user already holds several
	// identities; it is a primary and never becomes a secondary.
	ReasonLoginIsPrimary Reason = "login_is_primary"
	// ReasonInvalidLogin: the Login is inconsistent (no user id, or an
	// identity its user does not hold).
	ReasonInvalidLogin Reason = "invalid_login"
	// ReasonStoreError: the store failed before any link was sent; the
	// result follows Policy.OnStoreError when the store was unavailable, and
	// denies otherwise.
	ReasonStoreError Reason = "store_error"
	// ReasonRateBudget: the tenant's rate budget could not serve the
	// login's calls before its deadline, so none was sent; the result
	// follows Policy.OnStoreError, as for an unavailable store.
	ReasonRateBudget Reason = "rate_budget"
	// ReasonLinkUnconfirmed: a link request was sent and its outcome is not
	// known (its answer and the read-back both failed, or the caller stopped
	// waiting). The login is denied under every policy, to be tried again:
	// its identity may already belong to the primary.
	ReasonLinkUnconfirmed Reason = "link_unconfirmed"
	// ReasonMisconfigured: the Linker cannot work as configured (no Store,
	// an invalid Policy, a side effect its Store cannot perform); it denies.
	ReasonMisconfigured Reason = "misconfigured"
)

// Reasons of a Verdict on a candidate.
const (
	// ReasonEligible: the candidate may be the primary.
	ReasonEligible Reason = "eligible"
	// ReasonSelf: the candidate is the login's own user.
	ReasonSelf Reason = "self"
	// ReasonBlocked: the candidate is blocked; it would be eligible
	// otherwise.
	ReasonBlocked Reason = "blocked"
	// ReasonEmailUnverified: the candidate's email is not verified.
	ReasonEmailUnverified Reason = "email_unverified"
	// ReasonEmailMismatch: the candidate's stored email, normalized, differs
	// from the login's.
	ReasonEmailMismatch Reason = "email_mismatch"
	// ReasonEmailInvalid: the candidate's stored email is refused by
	// NormalizeEmail.
	ReasonEmailInvalid Reason = "email_invalid"
	// ReasonUntrustedConnection: the candidate's main identity comes from a
	// connection the policy does not trust to verify emails.
	ReasonUntrustedConnection Reason = "untrusted_connection"
	// ReasonUntrustedIdentity: the candidate already holds a linked identity
	// from a connection the policy does not trust.
	ReasonUntrustedIdentity Reason = "untrusted_identity"
	// ReasonIdentityEmailMismatch: one of the candidate's linked identities
	// carries a profile email that differs from the login's.
	ReasonIdentityEmailMismatch Reason = "identity_email_mismatch"
	// ReasonConflictingCopies: the candidate appeared more than once with
	// different contents.
	ReasonConflictingCopies Reason = "conflicting_copies"
)

// Verdict is what Decide made of one candidate.
type Verdict struct {
	UserID string
	// Eligible reports whether the candidate could be the primary.
	Eligible bool
	// Reason is ReasonEligible, ReasonAlreadyLinked (eligible, and already
	// holding the login's identity), or why the candidate was excluded.
	Reason Reason
}

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	// Reason says why.
	Reason Reason
	// Primary is the user the login must end as; set when Action is
	// ActionLink, and the login's own user with ActionAbsorb.
	Primary User
	// Secondary is the identity to link into Primary: always the identity
	// that authenticated the login. Set when Action is ActionLink.
	Secondary Identity
	// Absorb are the users to link into the login's user, sorted by user
	// id; set when Action is ActionAbsorb. Each is linked by its main
	// identity.
	Absorb []User
	// Confirm are the accounts the person may prove, sorted by user id;
	// set when Action is ActionConfirm.
	Confirm []User
	// ChosenBy names the Preference that made Primary the choice over the
	// user closest to it, when the Policy's Selector chose (see
	// Selector.Select); empty otherwise.
	ChosenBy string
	// Email is the login's normalized email, when it has a valid one.
	Email string
	// Candidates holds a verdict for every distinct candidate, sorted by
	// user id.
	Candidates []Verdict
}

// Decide applies the linking rule to a login and the users found with its
// email. It is pure: no I/O, no clock, no randomness, and the same decision
// for any order of candidates.
//
// The login is linked only when its email is present, verified, valid and
// vouched for by a trusted connection, and a candidate is eligible: not the
// login's user, not blocked, with an email that equals the login's after
// normalization and is verified and vouched for by a trusted connection,
// holding no identity that is untrusted or carries another email.
//
// Without a Selector in the Policy, the one eligible candidate is the
// primary, and more than one is never resolved: the decision is ActionDeny or
// ActionNone as p.OnAmbiguous says. With a Selector, the primary is the user
// it chooses among the login's user and every eligible candidate: another
// user (ActionLink, the login's identity is linked into it) or the login's
// own (ActionAbsorb, the others are linked into it); a tie it cannot break is
// ambiguous as above.
//
// An eligible candidate that already holds the login's identity means the
// link is in place: the decision is ActionLink with ReasonAlreadyLinked, and
// nothing needs writing. A blocked candidate that would otherwise be
// eligible denies the login with ReasonBlockedAccount, unless
// p.InsecureIgnoreBlockedAccounts.
func Decide(login Login, candidates []User, p Policy) Decision {
	d := Decision{Action: ActionNone}
	email, reason := checkLogin(login, p)
	d.Email = email
	if reason != "" {
		d.Reason = reason
		if reason == ReasonInvalidLogin {
			d.Action = ActionDeny
		}
		return d
	}

	cs := distinct(candidates)
	if len(cs) > 0 {
		d.Candidates = make([]Verdict, 0, len(cs))
	}
	// group is the login's user, then every eligible candidate: the users a
	// Selector chooses among.
	group := make([]User, 1, len(cs)+1)
	group[0] = login.User
	var holders, offer []User
	blocked := false
	for _, c := range cs {
		v := Verdict{UserID: c.user.ID, Reason: c.conflict}
		if v.Reason == "" {
			v.Reason = judge(login, email, c.user, p)
			if p.Confirm != ConfirmNever && provable(login, email, c.user, p) {
				offer = append(offer, c.user)
			}
		}
		switch v.Reason {
		case ReasonEligible:
			group = append(group, c.user)
		case ReasonAlreadyLinked:
			holders = append(holders, c.user)
		case ReasonBlocked:
			blocked = true
		}
		v.Eligible = v.Reason == ReasonEligible || v.Reason == ReasonAlreadyLinked
		d.Candidates = append(d.Candidates, v)
	}
	switch {
	case blocked && !p.InsecureIgnoreBlockedAccounts:
		d.Action, d.Reason = ActionDeny, ReasonBlockedAccount
		return d
	case len(holders) == 1:
		// The link is in place (a repeated call for a login that was
		// linked): the login ends as the user holding its identity.
		d.Action, d.Reason = ActionLink, ReasonAlreadyLinked
		d.Primary, d.Secondary = holders[0], login.Identity
		return d
	}
	group = append(group, holders...)
	eligible := group[1:]

	switch {
	case len(eligible) == 0:
		d.Reason = ReasonNoCandidate
	case len(p.Select) > 0:
		best, by, ok := p.Select.Select(group)
		switch {
		case !ok:
			d.ambiguous(p)
		case best == 0:
			d.Action, d.Reason = ActionAbsorb, ReasonAbsorbed
			d.Primary, d.Absorb, d.ChosenBy = login.User, eligible, by
		default:
			d.Action, d.Reason = ActionLink, ReasonLinked
			d.Primary, d.Secondary, d.ChosenBy = group[best], login.Identity, by
		}
	case len(eligible) == 1:
		d.Action, d.Reason = ActionLink, ReasonLinked
		d.Primary, d.Secondary = eligible[0], login.Identity
	default:
		d.ambiguous(p)
	}
	if len(offer) > 0 && (p.Confirm == ConfirmAlways ||
		p.Confirm == ConfirmRefused && d.Action != ActionLink && d.Action != ActionAbsorb) {
		d = Decision{Action: ActionConfirm, Reason: ReasonConfirm, Confirm: offer, Email: d.Email, Candidates: d.Candidates}
	}
	return d
}

// DecideProven decides a login whose person has just proven control of the
// account provenID, by a fresh login to exactly that account, after Decide
// answered ActionConfirm. It is pure, like Decide.
//
// The login is linked into provenID (ActionLink, ReasonConfirmed) when
// provenID is an account Decide would offer now under p with the confirm
// mode p has (not ConfirmNever): the login's email verified and trusted, the
// account with the same email, not blocked, holding no untrusted or
// mismatched linked identity. The link already in place answers as Decide
// does; any other account answers ActionNone with ReasonProofRefused, and
// nothing is linked.
func DecideProven(login Login, candidates []User, provenID string, p Policy) Decision {
	if p.Confirm == ConfirmNever {
		return Decision{Action: ActionNone, Reason: ReasonProofRefused}
	}
	p.Confirm = ConfirmAlways
	d := Decide(login, candidates, p)
	if d.Action != ActionConfirm {
		if d.Reason != ReasonAlreadyLinked && d.Action != ActionDeny {
			d.Action, d.Reason = ActionNone, ReasonProofRefused
		}
		return d
	}
	for _, u := range d.Confirm {
		if u.ID == provenID {
			d.Action, d.Reason = ActionLink, ReasonConfirmed
			d.Primary, d.Secondary = u, login.Identity
			d.Confirm = nil
			return d
		}
	}
	d.Action, d.Reason, d.Confirm = ActionNone, ReasonProofRefused, nil
	return d
}

// provable reports whether a fresh proof of control of c may stand in for
// what the automatic rule asks of a primary: c has the login's email, is not
// the login's user, is not blocked and does not hold the login's identity,
// and holds no linked identity that is untrusted or carries another email.
// Its own email may be unverified and its connection untrusted: the proof
// shows that the person who owns the login's verified email controls the
// account itself.
func provable(login Login, email string, c User, p Policy) bool {
	if c.ID == login.User.ID || c.Blocked || c.Holds(login.Identity) {
		return false
	}
	if got, err := NormalizeEmail(c.Email); err != nil || got != email {
		return false
	}
	main, ok := c.MainIdentity()
	if !ok {
		return false
	}
	for _, id := range c.Identities {
		if id.Is(main) {
			continue
		}
		if !p.Trusts(id) || !profileEmailAgrees(id, email) {
			return false
		}
	}
	return true
}

// ambiguous makes d the answer to an ambiguous email, per p.OnAmbiguous.
func (d *Decision) ambiguous(p Policy) {
	d.Reason = ReasonAmbiguous
	if p.OnAmbiguous == AmbiguousDeny {
		d.Action = ActionDeny
	}
}

// checkLogin returns the login's normalized email, or the reason the login is
// not to be linked at all. It needs no store: the Linker calls it before any
// lookup.
func checkLogin(login Login, p Policy) (string, Reason) {
	if login.User.ID == "" || !login.User.Holds(login.Identity) {
		return "", ReasonInvalidLogin
	}
	if len(login.User.Identities) > 1 {
		return "", ReasonLoginIsPrimary
	}
	if login.User.Email == "" {
		return "", ReasonLoginEmailMissing
	}
	if !login.User.EmailVerified {
		return "", ReasonLoginEmailUnverified
	}
	email, err := NormalizeEmail(login.User.Email)
	if err != nil {
		return "", ReasonLoginEmailInvalid
	}
	if !p.Trusts(login.Identity) {
		return email, ReasonLoginUntrusted
	}
	return email, ""
}

// judge returns ReasonEligible or why the candidate c cannot be the primary
// for a login whose normalized email is email. A blocked candidate is
// ReasonBlocked only when it would be eligible otherwise.
func judge(login Login, email string, c User, p Policy) Reason {
	if c.ID == login.User.ID {
		return ReasonSelf
	}
	// NormalizeEmail is idempotent (FuzzNormalizeEmail checks it): a stored
	// email that is already the login's normalized email needs no second
	// look.
	if c.Email != email {
		got, err := NormalizeEmail(c.Email)
		if err != nil {
			return ReasonEmailInvalid
		}
		if got != email {
			return ReasonEmailMismatch
		}
	}
	if !c.EmailVerified {
		return ReasonEmailUnverified
	}
	main, ok := c.MainIdentity()
	if !ok || !p.Trusts(main) {
		return ReasonUntrustedConnection
	}
	for _, id := range c.Identities {
		if !p.Trusts(id) {
			return ReasonUntrustedIdentity
		}
		if !profileEmailAgrees(id, email) {
			return ReasonIdentityEmailMismatch
		}
	}
	switch {
	case c.Blocked:
		return ReasonBlocked
	case c.Holds(login.Identity):
		return ReasonAlreadyLinked
	}
	return ReasonEligible
}

// profileEmailAgrees reports whether a linked identity's profile email, when
// it has one, equals email after normalization.
func profileEmailAgrees(id Identity, email string) bool {
	v, ok := id.ProfileData["email"]
	if !ok {
		return true
	}
	s, ok := v.(string)
	if !ok {
		return false
	}
	got, err := NormalizeEmail(s)
	return err == nil && got == email
}

type candidate struct {
	user     User
	conflict Reason
}

// distinct returns the candidates once per user id, sorted by id. A user id
// that appears with different contents is marked ReasonConflictingCopies, so
// that the result does not depend on which copy came first.
func distinct(users []User) []candidate {
	sorted := make([]User, len(users))
	copy(sorted, users)
	slices.SortStableFunc(sorted, func(a, b User) int { return strings.Compare(a.ID, b.ID) })
	out := make([]candidate, 0, len(sorted))
	for _, u := range sorted {
		if n := len(out); n > 0 && out[n-1].user.ID == u.ID {
			if !reflect.DeepEqual(out[n-1].user, u) {
				out[n-1].conflict = ReasonConflictingCopies
			}
			continue
		}
		out = append(out, candidate{user: u})
	}
	return out
}
