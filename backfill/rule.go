package backfill

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/idlink/linking"
)

// Reasons of the backfill, beside those of linking.Decide.
const (
	// ReasonPrimaryIneligible: the user the PrimaryPolicy chose cannot be a
	// primary (its verdict is in GroupReport.PrimaryVerdict); nothing of
	// the group is linked. Only without a Selector: a Selector chooses
	// among the users that may be a primary.
	ReasonPrimaryIneligible linking.Reason = "primary_ineligible"
	// ReasonNothingToLink: no member of the group other than the primary
	// may be linked; each member's reason is in GroupReport.Members.
	ReasonNothingToLink linking.Reason = "nothing_to_link"
	// ReasonLoginBlocked: the member is blocked; a blocked user cannot log
	// in, so it is never linked.
	ReasonLoginBlocked linking.Reason = "login_blocked"
	// ReasonOtherPrimary: the member's decision links it into another user
	// than the chosen primary.
	ReasonOtherPrimary linking.Reason = "other_primary"
	// ReasonNotChosen: the line's primary is not the user the rule chooses
	// among the line's users (the Selector, or else the PrimaryPolicy), or
	// the line's ChosenBy is not the preference that chooses it.
	ReasonNotChosen linking.Reason = "primary_not_chosen"
	// ReasonPrimaryGone and ReasonSecondaryGone: the user does not exist
	// when Apply reads it before the link. A secondary is gone when it was
	// deleted, or linked into another user.
	ReasonPrimaryGone   linking.Reason = "primary_gone"
	ReasonSecondaryGone linking.Reason = "secondary_gone"
)

// PrimaryPolicy chooses the primary of a group of users that share a
// normalized email when the linking.Policy has no Selector, and returns its
// index in group. group holds at least two users, sorted by user id. The
// policy only chooses, among every member: the rule then refuses the group
// when the chosen user cannot be a primary, rather than falling back to
// another member.
//
// With Policy.Select set, the Selector chooses instead, among the members
// that may be a primary, as at login; a PrimaryPolicy is then an error.
type PrimaryPolicy func(group []linking.User) int

// DefaultPrimaryPolicy chooses the oldest user (by CreatedAt), then the
// smallest user id: PreferConnections with no connection.
var DefaultPrimaryPolicy PrimaryPolicy = PreferConnections()

// PreferConnections returns a PrimaryPolicy that chooses the user whose main
// identity's connection comes first in names (linking.PreferConnection for
// each name, in order), then the oldest user, then the smallest user id. The
// choice does not depend on the order of the group.
func PreferConnections(names ...string) PrimaryPolicy {
	prefs := make([]linking.Preference, len(names))
	for i, name := range names {
		prefs[i] = linking.PreferConnection(name)
	}
	compare := func(a, b linking.User) int {
		for _, p := range prefs {
			if c := p.Compare(a, b); c != 0 {
				return c
			}
		}
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	}
	return func(group []linking.User) int {
		best := 0
		for i := 1; i < len(group); i++ {
			if compare(group[i], group[best]) < 0 {
				best = i
			}
		}
		return best
	}
}

// rule is the rule of a group: the linking policy, and the PrimaryPolicy
// when the policy has no Selector.
type rule struct {
	policy  linking.Policy
	primary PrimaryPolicy
}

// newRule checks the policy and returns the rule of p and primary (nil
// means DefaultPrimaryPolicy, without a Selector).
func newRule(p linking.Policy, primary PrimaryPolicy) (rule, error) {
	if err := p.Validate(); err != nil {
		return rule{}, fmt.Errorf("backfill: %w", err)
	}
	if len(p.Select) > 0 {
		if primary != nil {
			return rule{}, errors.New("backfill: a PrimaryPolicy and Policy.Select are both set: with a Selector, the Selector chooses the primary")
		}
		return rule{policy: p}, nil
	}
	if primary == nil {
		primary = DefaultPrimaryPolicy
	}
	return rule{policy: p, primary: primary}, nil
}

// Member is what the rule made of one member of a group that is not linked.
type Member struct {
	UserID string `json:"user_id"`
	// Reason is the reason of the member's decision, or
	// ReasonLoginBlocked, ReasonOtherPrimary.
	Reason linking.Reason `json:"reason"`
	// Candidates are the verdicts of the member's decision on the other
	// members, when it got that far.
	Candidates []Verdict `json:"candidates,omitempty"`
}

// Verdict is a linking.Verdict as it is written in plans and summaries.
type Verdict struct {
	UserID   string         `json:"user_id"`
	Eligible bool           `json:"eligible"`
	Reason   linking.Reason `json:"reason"`
}

// outcome is what the rule made of one group.
type outcome struct {
	primary     linking.User   // zero when no member is chosen
	primaryWhy  linking.Reason // the primary's verdict, when chosen
	chosenBy    string         // the preference of the Selector that chose it
	secondaries []linking.User
	skipped     []Member
	ambiguous   bool
}

// reason is the reason of the group as a whole: ReasonLinked,
// linking.ReasonAmbiguous, ReasonPrimaryIneligible or ReasonNothingToLink.
func (o *outcome) reason() linking.Reason {
	switch {
	case o.ambiguous:
		return linking.ReasonAmbiguous
	case o.primaryWhy != "" && o.primaryWhy != linking.ReasonEligible:
		return ReasonPrimaryIneligible
	case len(o.secondaries) == 0:
		return ReasonNothingToLink
	}
	return linking.ReasonLinked
}

// decide applies the rule to the members of a group whose normalized email
// is email: it chooses the primary, then decides every other member as its
// own login, with the members as candidates. It sorts members by user id.
//
// Without a Selector, the PrimaryPolicy chooses among every member, and
// nothing is linked when its choice cannot be a primary. With one, the
// Selector chooses among the members that may be a primary (those a login's
// Decide finds eligible), the group the login rule chooses among; a tie it
// cannot break makes the group ambiguous. Either way a member is linked only
// when linking.Decide, for its login, links it into the chosen primary.
func (r rule) decide(email string, members []linking.User) (outcome, error) {
	slices.SortFunc(members, func(a, b linking.User) int { return strings.Compare(a.ID, b.ID) })
	var o outcome
	if len(r.policy.Select) == 0 {
		i := r.primary(members)
		if i < 0 || i >= len(members) {
			return o, fmt.Errorf("backfill: the primary policy chose %d in a group of %d", i, len(members))
		}
		o.primary = members[i]
		o.primaryWhy = primaryVerdict(email, o.primary, r.policy)
		if o.primaryWhy != linking.ReasonEligible {
			return o, nil
		}
	} else {
		var eligible []linking.User
		for _, m := range members {
			if primaryVerdict(email, m, r.policy) == linking.ReasonEligible {
				eligible = append(eligible, m)
			}
		}
		if len(eligible) > 0 {
			best, by, ok := r.policy.Select.Select(eligible)
			if ok {
				o.primary, o.primaryWhy, o.chosenBy = eligible[best], linking.ReasonEligible, by
			}
			o.ambiguous = !ok
		}
	}
	for _, m := range members {
		if m.ID == o.primary.ID {
			continue
		}
		if m.Blocked {
			o.skipped = append(o.skipped, Member{UserID: m.ID, Reason: ReasonLoginBlocked})
			continue
		}
		main, ok := m.MainIdentity()
		if !ok {
			o.skipped = append(o.skipped, Member{UserID: m.ID, Reason: linking.ReasonInvalidLogin})
			continue
		}
		d := linking.Decide(linking.Login{User: m, Identity: main}, members, r.policy)
		switch {
		case d.Action == linking.ActionLink && d.Reason == linking.ReasonLinked && d.Primary.ID == o.primary.ID:
			o.secondaries = append(o.secondaries, m)
			continue
		case d.Reason == linking.ReasonAmbiguous:
			o.ambiguous = true
		}
		why := d.Reason
		if d.Action == linking.ActionLink || d.Action == linking.ActionAbsorb {
			why = ReasonOtherPrimary
		}
		o.skipped = append(o.skipped, Member{UserID: m.ID, Reason: why, Candidates: verdicts(d.Candidates)})
	}
	return o, nil
}

func verdicts(vs []linking.Verdict) []Verdict {
	out := make([]Verdict, len(vs))
	for i, v := range vs {
		out[i] = Verdict{UserID: v.UserID, Eligible: v.Eligible, Reason: v.Reason}
	}
	return out
}

// probeConnection names the connection of the probe login primaryVerdict
// uses. No Auth0 connection can have this name (it holds a NUL byte), so
// trusting it trusts no real identity.
const probeConnection = "\x00backfill-probe"

// primaryVerdict returns the verdict linking.Decide gives user as a candidate
// primary for a login with the verified email email from a trusted
// connection: linking.ReasonEligible, or why user cannot be a primary
// (unverified, untrusted, blocked, another email, ...). It asks Decide
// itself, so that the primary is held to exactly the rule of a login. The
// Selector plays no part in a verdict.
func primaryVerdict(email string, user linking.User, p linking.Policy) linking.Reason {
	p.Select = nil
	probe := linking.Identity{Provider: "backfill-probe", UserID: "probe", Connection: probeConnection}
	login := linking.Login{
		User: linking.User{
			ID:            probe.UserIDOf(),
			Email:         email,
			EmailVerified: true,
			Identities:    []linking.Identity{probe},
		},
		Identity: probe,
	}
	p.TrustedConnections = append(slices.Clip(p.TrustedConnections), probeConnection)
	d := linking.Decide(login, []linking.User{user}, p)
	if len(d.Candidates) != 1 {
		return linking.ReasonInvalidLogin
	}
	if d.Candidates[0].Reason == linking.ReasonAlreadyLinked {
		return linking.ReasonInvalidLogin
	}
	return d.Candidates[0].Reason
}
