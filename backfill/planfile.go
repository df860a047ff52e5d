package backfill

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

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
// DefaultPrimaryPolicy): the primary is the user choose names among the
// line's primary and secondaries, and may be a primary for the line's email;
// each secondary, decided as its own login with the line's users as
// candidates, is linked into that primary. It also checks that no user and
// no email appears in more than one line, and that every user names its main
// identity.
//
// The choice is made over the primary and the secondaries, the users the
// line holds in full; the skipped members are named only, and are left out.
// A primary swapped with a secondary is refused; Apply reads both users
// before each link and skips a pair whose live users choose otherwise.
//
// Check needs no store: it checks what the plan says. The first unsafe line
// is an error wrapping both *LineError, naming the line, and ErrUnsafePlan.
func (pl *Plan) Check(p linking.Policy, choose PrimaryPolicy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	users := make(map[string]int)  // user id → line number
	emails := make(map[string]int) // email → line number
	for i, l := range pl.Lines {
		n := pl.Numbers[i]
		fail := func(format string, args ...any) error {
			return &LineError{Input: "plan", Line: n, Err: fmt.Errorf("%w: "+format, append([]any{ErrUnsafePlan}, args...)...)}
		}
		if err := checkLine(l, p, choose); err != nil {
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
func checkLine(l PlanLine, p linking.Policy, choose PrimaryPolicy) error {
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
		if _, ok := mainIdentity(u); !ok {
			return fmt.Errorf("user %q holds no identity its id is made from", u.ID)
		}
		if got, err := linking.NormalizeEmail(u.Email); err != nil || got != email {
			return fmt.Errorf("user %q has email %q, not the group's %q", u.ID, u.Email, email)
		}
	}
	o := decideGroup(email, l.Primary, members, p)
	if o.primaryWhy != linking.ReasonEligible {
		return fmt.Errorf("primary %q cannot be a primary: %s", l.Primary.ID, o.primaryWhy)
	}
	for _, m := range o.skipped {
		return fmt.Errorf("secondary %q would not be linked into %q: %s", m.UserID, l.Primary.ID, m.Reason)
	}
	chosen, err := choosePrimary(choose, slices.Clone(members))
	if err != nil {
		return err
	}
	if chosen.ID != l.Primary.ID {
		return fmt.Errorf("%s: the primary policy chooses %q among the line's users, not %q (the line was edited, or the plan made with another primary policy)",
			ReasonNotChosen, chosen.ID, l.Primary.ID)
	}
	return nil
}
