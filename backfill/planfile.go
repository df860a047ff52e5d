package backfill

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/idlink/linking"
)

// ErrUnsafePlan is wrapped by the errors of Plan.Check: a line of the plan
// would link users that the rule does not link.
var ErrUnsafePlan = errors.New("backfill: unsafe plan")

// Plan is a plan read back for applying.
type Plan struct {
	// Lines are the plan's groups, and Numbers the line number of each.
	Lines   []PlanLine
	Numbers []int
	// Digest is "sha256:" and the hex SHA-256 of the plan as read. A
	// journal is bound to the digest of the plan it applies.
	Digest string
}

// ReadPlan reads a plan written by Planner.Plan (and maybe edited since). A
// line that is not a plan line is an error wrapping *LineError. ReadPlan
// does not check the plan against the rule: see Plan.Check.
func ReadPlan(r io.Reader) (*Plan, error) {
	h := sha256.New()
	pl := &Plan{}
	err := readLines(io.TeeReader(r, h), "plan", func(n int, b []byte) error {
		var l PlanLine
		if err := json.Unmarshal(b, &l); err != nil {
			return &LineError{Input: "plan", Line: n, Err: fmt.Errorf("not a plan line: %w", err)}
		}
		pl.Lines = append(pl.Lines, l)
		pl.Numbers = append(pl.Numbers, n)
		return nil
	})
	if err != nil {
		return nil, err
	}
	pl.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return pl, nil
}

// Links returns the number of secondaries in the plan.
func (pl *Plan) Links() int {
	n := 0
	for _, l := range pl.Lines {
		n += len(l.Secondaries)
	}
	return n
}

// Check checks every line of the plan again with the rule Planner.Plan
// applies, with the policy p and the primary policy choose (nil means
// DefaultPrimaryPolicy without p.Select; it must be nil with p.Select): the
// primary may be a primary for the line's email, and is the user the rule
// chooses among the line's primary and secondaries (p.Select, or else
// choose), by the preference the line's ChosenBy names; each secondary,
// decided as its own login with the line's users as candidates, is linked
// into that primary. It also checks that no user and no email appears in
// more than one line, and that every user names its main identity.
//
// The choice is made over the primary and the secondaries, the users the
// line holds in full; the skipped members are named only, and are left out.
// A primary swapped with a secondary is refused; Apply reads both users
// before each link and skips a pair whose live users choose otherwise.
//
// Check needs no store: it checks what the plan says. The first unsafe line
// is an error wrapping both *LineError, naming the line, and ErrUnsafePlan.
func (pl *Plan) Check(p linking.Policy, choose PrimaryPolicy) error {
	r, err := newRule(p, choose)
	if err != nil {
		return err
	}
	return pl.check(r)
}

// check checks the plan with the rule r: see Check.
func (pl *Plan) check(r rule) error {
	users := make(map[string]int)  // user id → line number
	emails := make(map[string]int) // email → line number
	for i, l := range pl.Lines {
		n := pl.Numbers[i]
		fail := func(format string, args ...any) error {
			return &LineError{Input: "plan", Line: n, Err: fmt.Errorf("%w: "+format, append([]any{ErrUnsafePlan}, args...)...)}
		}
		if err := r.checkLine(l); err != nil {
			return fail("%v", err)
		}
		if prev, ok := emails[l.Email]; ok {
			return fail("email %q is also the group of line %d", l.Email, prev)
		}
		emails[l.Email] = n
		for _, u := range append([]linking.User{l.Primary}, l.Secondaries...) {
			if prev, ok := users[u.ID]; ok {
				return fail("user %q is also in line %d", u.ID, prev)
			}
			users[u.ID] = n
		}
	}
	return nil
}

// checkLine checks one plan line with the rule.
func (r rule) checkLine(l PlanLine) error {
	if l.Reason != linking.ReasonLinked {
		return fmt.Errorf("reason %q is not %q", l.Reason, linking.ReasonLinked)
	}
	email, err := linking.NormalizeEmail(l.Email)
	if err != nil || email != l.Email {
		return fmt.Errorf("email %q is not a normalized email", l.Email)
	}
	if len(l.Secondaries) == 0 {
		return errors.New("no secondaries")
	}
	members := append([]linking.User{l.Primary}, l.Secondaries...)
	for _, u := range members {
		if _, ok := u.MainIdentity(); !ok {
			return fmt.Errorf("user %q holds no identity its id is made from", u.ID)
		}
		if got, err := linking.NormalizeEmail(u.Email); err != nil || got != email {
			return fmt.Errorf("user %q has email %q, not the group's %q", u.ID, u.Email, email)
		}
	}
	if why := primaryVerdict(email, l.Primary, r.policy); why != linking.ReasonEligible {
		return fmt.Errorf("primary %q cannot be a primary: %s", l.Primary.ID, why)
	}
	o, err := r.decide(email, members)
	if err != nil {
		return err
	}
	if o.primary.ID != l.Primary.ID || o.chosenBy != l.ChosenBy {
		return r.notChosen(l, o)
	}
	for _, m := range o.skipped {
		return fmt.Errorf("secondary %q would not be linked into %q: %s", m.UserID, l.Primary.ID, m.Reason)
	}
	return nil
}

// notChosen explains why the line l is refused when its primary, or the
// preference that chose it, is not what the rule, whose outcome on the
// line's users is o, says.
func (r rule) notChosen(l PlanLine, o outcome) error {
	switch {
	case len(r.policy.Select) == 0 && l.ChosenBy != "":
		return fmt.Errorf("%s: the line was planned with a selector (chosen_by %q); check and apply it with the plan's selector", ReasonNotChosen, l.ChosenBy)
	case len(r.policy.Select) == 0:
		return fmt.Errorf("%s: the primary policy chooses %q among the line's users, not %q (the line was edited, or the plan made with another primary policy)",
			ReasonNotChosen, o.primary.ID, l.Primary.ID)
	case l.ChosenBy == "":
		return fmt.Errorf("%s: the line was planned without a selector (no chosen_by); check and apply it without one, or plan again", ReasonNotChosen)
	case o.ambiguous:
		return fmt.Errorf("%s: the selector %q cannot choose among the line's users: %s", ReasonNotChosen, r.policy.Select, linking.ReasonAmbiguous)
	}
	return fmt.Errorf("%s: the selector %q chooses %q among the line's users by %q, not %q by %q (the line was edited, or the plan made with another selector)",
		ReasonNotChosen, r.policy.Select, o.primary.ID, o.chosenBy, l.Primary.ID, l.ChosenBy)
}
