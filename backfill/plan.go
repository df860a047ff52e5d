package backfill

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"

	"github.com/idlink/linking"
)

// PlanLine is one line of a plan: a group of users that share an email, the
// primary to keep and the secondaries to link into it (one at most without a
// Selector, every other eligible member with one). It carries everything
// Applier needs to check it again offline and to undo it: the primary's
// identity and email, and each secondary as exported, metadata included.
type PlanLine struct {
	// Email is the group's normalized email.
	Email string
	// Reason is linking.ReasonLinked.
	Reason linking.Reason
	// ChosenBy names the preference of the Policy's Selector that made
	// Primary the choice over the member closest to it (see
	// linking.Selector.Select): "established", "oldest",
	// "connection:NAME", ...; empty without a Selector.
	ChosenBy string
	// Primary is the user the secondaries are linked into. Its metadata is
	// not kept.
	Primary linking.User
	// Secondaries are the users to link into Primary, as exported.
	Secondaries []linking.User
	// Skipped are the other members of the group, not linked, with why.
	Skipped []Member
}

// planLineJSON is a PlanLine as it is written.
type planLineJSON struct {
	Email       string         `json:"email"`
	Reason      linking.Reason `json:"reason"`
	ChosenBy    string         `json:"chosen_by,omitempty"`
	Primary     wireUser       `json:"primary"`
	Secondaries []wireUser     `json:"secondaries"`
	Skipped     []Member       `json:"skipped,omitempty"`
}

// MarshalJSON writes the line with users in Auth0's export form.
func (l PlanLine) MarshalJSON() ([]byte, error) {
	primary := l.Primary
	primary.UserMetadata, primary.AppMetadata = nil, nil
	j := planLineJSON{Email: l.Email, Reason: l.Reason, ChosenBy: l.ChosenBy, Skipped: l.Skipped}
	var err error
	if j.Primary, err = toWire(primary); err != nil {
		return nil, err
	}
	for _, s := range l.Secondaries {
		w, err := toWire(s)
		if err != nil {
			return nil, err
		}
		j.Secondaries = append(j.Secondaries, w)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads a line written by MarshalJSON.
func (l *PlanLine) UnmarshalJSON(b []byte) error {
	var j planLineJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	primary, err := j.Primary.user()
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	*l = PlanLine{Email: j.Email, Reason: j.Reason, ChosenBy: j.ChosenBy, Primary: primary, Skipped: j.Skipped}
	for i := range j.Secondaries {
		s, err := j.Secondaries[i].fullUser()
		if err != nil {
			return fmt.Errorf("secondaries[%d]: %w", i, err)
		}
		l.Secondaries = append(l.Secondaries, s)
	}
	return nil
}

// GroupReport is a group the plan does not link, with why.
type GroupReport struct {
	// Email is the group's normalized email.
	Email string `json:"email"`
	// Reason is linking.ReasonAmbiguous, ReasonPrimaryIneligible or
	// ReasonNothingToLink.
	Reason linking.Reason `json:"reason"`
	// PrimaryID is the user the rule chose as the primary, and
	// PrimaryVerdict its verdict as a primary (linking.ReasonEligible or
	// why not). With a Selector, the primary is chosen among the members
	// that may be one: none are set when no member may be, or when the
	// group is ambiguous; ChosenBy names the preference that chose it (see
	// PlanLine.ChosenBy).
	PrimaryID      string         `json:"primary_id,omitempty"`
	PrimaryVerdict linking.Reason `json:"primary_verdict,omitempty"`
	ChosenBy       string         `json:"chosen_by,omitempty"`
	// UserIDs are the group's members, sorted.
	UserIDs []string `json:"user_ids"`
	// Members are the decisions on the members other than the primary,
	// unless the PrimaryPolicy's choice cannot be a primary.
	Members []Member `json:"members,omitempty"`
}

// Summary counts what Planner.Plan read and decided.
type Summary struct {
	// Users is the number of users read.
	Users int `json:"users"`
	// NoEmail counts the users without an email, and InvalidEmail those
	// whose email linking.NormalizeEmail refuses: neither is ever grouped.
	NoEmail      int `json:"no_email"`
	InvalidEmail int `json:"invalid_email"`
	// Emails is the number of distinct normalized emails; Singles the
	// number held by one user only.
	Emails  int `json:"emails"`
	Singles int `json:"singles"`
	// Groups is the number of emails held by several users.
	Groups int `json:"groups"`
	// Planned is the number of groups with a plan line, Links the number
	// of secondaries in the plan, and Skipped the number of members of
	// planned groups left unlinked (each named in its plan line).
	Planned int `json:"planned"`
	Links   int `json:"links"`
	Skipped int `json:"skipped"`
	// Reasons counts the unlinked groups and members by reason.
	Reasons map[linking.Reason]int `json:"reasons,omitempty"`
	// Refused are the groups with nothing to link or an ineligible
	// primary; Ambiguous the groups with several eligible primaries that
	// the rule does not choose among (without a Selector), or that the
	// Selector cannot tell apart.
	Refused   []GroupReport `json:"refused,omitempty"`
	Ambiguous []GroupReport `json:"ambiguous,omitempty"`
}

// Planner decides which duplicate users of an export to link.
//
// The zero value is usable: the default linking.Policy and
// DefaultPrimaryPolicy. Give the Applier the same Policy and Primary: it
// checks every line with them.
type Planner struct {
	// Policy is the linking rule's configuration, as for logins. With
	// Policy.Select set, the Selector chooses each group's primary among
	// the members that may be one, as it does at login, and every other
	// such member is linked into it.
	Policy linking.Policy
	// Primary chooses each group's primary when Policy.Select is not set;
	// nil means DefaultPrimaryPolicy. It must be nil with Policy.Select.
	Primary PrimaryPolicy
}

// Plan reads an export twice, from the readers open returns (see
// ReadExport for the formats), and writes the plan to w: one JSON line per
// group to link (see PlanLine), in the order in which the export completes
// the groups. It returns what it read and decided, with every group it does
// not link and why.
//
// The first read counts the users of each normalized email; the second keeps
// the users of emails held by several users until their group is complete,
// decides it, writes its line and forgets it. So memory grows with the number
// of distinct emails and with the size of groups still open, not with the
// size of the export.
//
// The first read checks that every line is valid JSON with a user_id, and
// reads its email; the second decodes in full only the users of shared
// emails, and checks them (identities, created_at, types). A line that fails
// is an error wrapping *LineError; a malformed or truncated line is found by
// the first read, before anything is written. An export that changes
// between the two reads is an error. On error, w may hold part of a plan:
// discard it.
func (p Planner) Plan(ctx context.Context, open func() (io.ReadCloser, error), w io.Writer) (Summary, error) {
	r, err := newRule(p.Policy, p.Primary)
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Reasons: make(map[linking.Reason]int)}
	seed := maphash.MakeSeed()

	// First read: how many users hold each email (by hash; emails whose
	// hashes collide are told apart when their groups are decided).
	counts := make(map[uint64]int32)
	err = readFile(ctx, open, checkExportLine, func(_ int, _ []byte, wu *wireUser) error {
		s.Users++
		switch {
		case wu.Email == "":
			s.NoEmail++
		case wu.norm == "":
			s.InvalidEmail++
		default:
			counts[maphash.String(seed, wu.norm)]++
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	for _, n := range counts {
		if n == 1 {
			s.Emails++
			s.Singles++
		}
	}

	// Second read: gather the users of shared hashes, decide each complete
	// group.
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	pending := make(map[uint64][]linking.User)
	users := 0
	changed := errors.New("the export changed between the two reads")
	err = readFile(ctx, open, decodeEmail, func(line int, raw []byte, wu *wireUser) error {
		users++
		if wu.norm == "" {
			return nil
		}
		h := maphash.String(seed, wu.norm)
		n := counts[h]
		if n < 2 {
			if n == 0 {
				return &LineError{Input: "export", Line: line, Err: changed}
			}
			return nil
		}
		var full wireUser
		if err := decodeFull(raw, &full); err != nil {
			return &LineError{Input: "export", Line: line, Err: err}
		}
		u, err := full.fullUser()
		if err != nil {
			return &LineError{Input: "export", Line: line, Err: err}
		}
		if email, _ := linking.NormalizeEmail(u.Email); email != wu.norm {
			return &LineError{Input: "export", Line: line, Err: changed}
		}
		group := append(pending[h], u)
		if int32(len(group)) < n {
			pending[h] = group
			return nil
		}
		delete(pending, h)
		delete(counts, h)
		return r.plan(group, &s, enc)
	})
	if err != nil {
		return s, err
	}
	if users != s.Users || len(pending) > 0 {
		return s, fmt.Errorf("backfill: %w", changed)
	}
	if err := bw.Flush(); err != nil {
		return s, fmt.Errorf("backfill: write plan: %w", err)
	}
	return s, nil
}

// readFile opens an export and reads it with readWire, checking ctx every
// few thousand users.
func readFile(ctx context.Context, open func() (io.ReadCloser, error), decode decoder, fn func(line int, raw []byte, w *wireUser) error) error {
	rc, err := open()
	if err != nil {
		return fmt.Errorf("backfill: open export: %w", err)
	}
	defer rc.Close()
	n := 0
	return readWire(rc, decode, func(line int, raw []byte, w *wireUser) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("backfill: plan: %w", err)
			}
		}
		if err := fn(line, raw, w); err != nil {
			var le *LineError
			if errors.As(err, &le) {
				return err
			}
			return &LineError{Input: "export", Line: line, Err: err}
		}
		return nil
	})
}

// plan splits users, whose emails share a hash, into groups by normalized
// email, decides each group and records it.
func (r rule) plan(users []linking.User, s *Summary, enc *json.Encoder) error {
	byEmail := make(map[string][]linking.User, 1)
	for _, u := range users {
		email, _ := linking.NormalizeEmail(u.Email)
		byEmail[email] = append(byEmail[email], u)
	}
	emails := make([]string, 0, len(byEmail))
	for e := range byEmail {
		emails = append(emails, e)
	}
	slices.Sort(emails)
	for _, email := range emails {
		group := byEmail[email]
		s.Emails++
		if len(group) == 1 {
			s.Singles++
			continue
		}
		s.Groups++
		o, err := r.decide(email, group)
		if err != nil {
			return err
		}
		reason := o.reason()
		for _, m := range o.skipped {
			s.Reasons[m.Reason]++
		}
		if reason != linking.ReasonLinked {
			s.Reasons[reason]++
			r := GroupReport{
				Email: email, Reason: reason, PrimaryID: o.primary.ID, PrimaryVerdict: o.primaryWhy,
				ChosenBy: o.chosenBy, Members: o.skipped,
			}
			for _, u := range group {
				r.UserIDs = append(r.UserIDs, u.ID)
			}
			if reason == linking.ReasonAmbiguous {
				s.Ambiguous = append(s.Ambiguous, r)
			} else {
				s.Refused = append(s.Refused, r)
			}
			continue
		}
		s.Planned++
		s.Links += len(o.secondaries)
		s.Skipped += len(o.skipped)
		line := PlanLine{Email: email, Reason: reason, ChosenBy: o.chosenBy, Primary: o.primary, Secondaries: o.secondaries, Skipped: o.skipped}
		if err := enc.Encode(line); err != nil {
			return fmt.Errorf("backfill: write plan: %w", err)
		}
	}
	return nil
}
