package backfill

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/idlink/linking"
)

// Reasons of the backfill, beside those of linking.Decide.
const (
	// ReasonPrimaryIneligible: the user the PrimaryPolicy chose cannot be a
	// primary (its verdict is in GroupReport.PrimaryVerdict); nothing of
	// the group is linked.
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
	// ReasonNotChosen: the line's primary is not the user the PrimaryPolicy
	// chooses among the line's users.
	ReasonNotChosen linking.Reason = "primary_not_chosen"
	// ReasonPrimaryGone and ReasonSecondaryGone: the user does not exist
	// when Apply reads it before the link. A secondary is gone when it was
	// deleted, or linked into another user.
	ReasonPrimaryGone   linking.Reason = "primary_gone"
	ReasonSecondaryGone linking.Reason = "secondary_gone"
)

// PrimaryPolicy chooses the primary of a group of users that share a
// normalized email, and returns its index in group. group holds at least two
// users, sorted by user id. The policy only chooses: the rule then refuses
// the group when the chosen user cannot be a primary, rather than falling
// back to another member.
type PrimaryPolicy func(group []linking.User) int

// DefaultPrimaryPolicy chooses the oldest user (by CreatedAt), then the
// smallest user id: PreferConnections with no connection.
var DefaultPrimaryPolicy PrimaryPolicy = PreferConnections()

// PreferConnections returns a PrimaryPolicy that chooses the user whose main
// identity's connection comes first in names (e.g. the database connection
// people sign in to with a password), then the oldest user, then the
// smallest user id. The choice does not depend on the order of the group.
func PreferConnections(names ...string) PrimaryPolicy {
	names = slices.Clone(names)
	rank := func(u linking.User) int {
		main, _ := u.MainIdentity()
		if i := slices.Index(names, main.Connection); i >= 0 {
			return i
		}
		return len(names)
	}
	return func(group []linking.User) int {
		best := 0
		for i := 1; i < len(group); i++ {
			a, b := group[i], group[best]
			c := cmp.Compare(rank(a), rank(b))
			if c == 0 {
				c = a.CreatedAt.Compare(b.CreatedAt)
			}
			if c == 0 {
				c = strings.Compare(a.ID, b.ID)
			}
			if c < 0 {
				best = i
			}
		}
		return best
	}
}

// choosePrimary sorts group by user id, as PrimaryPolicy expects, and
// returns the user choose names; nil means DefaultPrimaryPolicy.
func choosePrimary(choose PrimaryPolicy, group []linking.User) (linking.User, error) {
	if choose == nil {
		choose = DefaultPrimaryPolicy
	}
	slices.SortFunc(group, func(a, b linking.User) int { return strings.Compare(a.ID, b.ID) })
	i := choose(group)
	if i < 0 || i >= len(group) {
		return linking.User{}, fmt.Errorf("backfill: the primary policy chose %d in a group of %d", i, len(group))
	}
	return group[i], nil
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
	email       string
	primary     linking.User
	primaryWhy  linking.Reason // the primary's verdict
	secondaries []linking.User
	skipped     []Member
	ambiguous   bool
}

// reason is the reason of the group as a whole: ReasonLinked,
// linking.ReasonAmbiguous, ReasonPrimaryIneligible or ReasonNothingToLink.
func (o *outcome) reason() linking.Reason {
	switch {
	case o.primaryWhy != linking.ReasonEligible:
		return ReasonPrimaryIneligible
	case o.ambiguous:
		return linking.ReasonAmbiguous
	case len(o.secondaries) == 0:
		return ReasonNothingToLink
	}
	return linking.ReasonLinked
}

// decideGroup applies the rule to the members of a group whose normalized
// email is email, with primary the member to link the others into. members
// must hold primary.
func decideGroup(email string, primary linking.User, members []linking.User, p linking.Policy) outcome {
	o := outcome{email: email, primary: primary, primaryWhy: primaryVerdict(email, primary, p)}
	if o.primaryWhy != linking.ReasonEligible {
		return o
	}
	for _, m := range members {
		if m.ID == primary.ID {
			continue
		}
		if m.Blocked {
			o.skipped = append(o.skipped, Member{UserID: m.ID, Reason: ReasonLoginBlocked})
			continue
		}
		main, ok := mainIdentity(m)
		if !ok {
			o.skipped = append(o.skipped, Member{UserID: m.ID, Reason: linking.ReasonInvalidLogin})
			continue
		}
		d := linking.Decide(linking.Login{User: m, Identity: main}, members, p)
		switch {
		case d.Action == linking.ActionLink && d.Reason == linking.ReasonLinked && d.Primary.ID == primary.ID:
			o.secondaries = append(o.secondaries, m)
			continue
		case d.Reason == linking.ReasonAmbiguous:
			o.ambiguous = true
		}
		why := d.Reason
		if d.Action == linking.ActionLink {
			why = ReasonOtherPrimary
		}
		o.skipped = append(o.skipped, Member{UserID: m.ID, Reason: why, Candidates: verdicts(d.Candidates)})
	}
	return o
}

// mainIdentity returns the identity the user's id is made from. Unlike
// linking.User.MainIdentity it does not fall back to another identity: a
// link must name the secondary user exactly.
func mainIdentity(u linking.User) (linking.Identity, bool) {
	for _, id := range u.Identities {
		if id.UserIDOf() == u.ID {
			return id, true
		}
	}
	return linking.Identity{}, false
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
// itself, so that the primary is held to exactly the rule of a login.
func primaryVerdict(email string, user linking.User, p linking.Policy) linking.Reason {
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
