// Package backfill merges the duplicate users an Auth0 tenant already has:
// users who signed up more than once with the same email, e.g. with a
// password and later with a passwordless code, before the linking rule ran at
// login.
//
// The work is split so that a person reviews it before anything is written:
//
//  1. Read an Auth0 user export (ReadExport): gzipped or plain
//     newline-delimited JSON, or a JSON array of users.
//  2. Plan (Planner.Plan): group the users by normalized email and decide
//     each group with the rule a login uses (linking.Decide), never a weaker
//     one. The plan is one JSON line per group to merge; groups that are
//     refused or ambiguous are reported in the Summary with their reasons.
//  3. Review the plan, then apply it (Applier.Apply) at a configured rate,
//     on the tenant as it is: just before each link, read both users and
//     decide the pair again with the plan's rule, and skip it, with its
//     reason, when it no longer qualifies; then link (three calls per link
//     when nothing fails), confirmed by reading the primary back when a call
//     fails, recorded in an append-only journal, locked for one run at a
//     time, that lets a rerun resume without linking twice.
//  4. Undo (Applier.Undo) from the journal: unlink in reverse order and
//     restore the metadata Auth0 discarded when it linked.
//
// # The rule
//
// Users are grouped by linking.NormalizeEmail of their email; users without
// an email, or with one NormalizeEmail refuses, are never grouped. In a
// group, every member other than the primary is decided exactly as its own
// login would be, with the whole group as candidates: linking.Decide must
// answer ActionLink into the chosen primary. A member for which it does not
// (unverified or untrusted, blocked, already a primary, ...) is not linked.
// A group where a member's decision is ambiguous is not linked at all: the
// rule never picks among several accounts that could each be the person's.
//
// With a Selector in the policy (linking.Policy.Select), the one the login
// rule uses, the primary is the user the Selector chooses among the members
// that may be a primary (those Decide finds eligible: verified email,
// trusted connection, not blocked), as it does at login, and every other
// such member is linked into it: N−1 links for N of them. The plan line
// names the preference that made the choice (PlanLine.ChosenBy). A tie the
// Selector cannot break makes the group ambiguous. A blocked member that
// would otherwise be eligible denies the others' logins, so nothing of its
// group is linked (unless the policy's InsecureIgnoreBlockedAccounts).
//
// Without a Selector, a PrimaryPolicy chooses the primary among all the
// members, and the primary must be a user a login could be linked into;
// otherwise the group is refused. Since Decide without a Selector links
// only into a single eligible candidate, a group links at most one secondary
// user: two members that could both be linked are each an eligible primary
// for the other. Such groups are reported as ambiguous for a person to
// resolve, or merged with a Selector.
//
// Apply checks every line of the plan again with the same rule (the same
// Selector, or PrimaryPolicy) before it makes any call, so a plan edited by
// hand into something unsafe, or against the rule (a primary swapped with a
// secondary, a preference that did not choose it), is refused as a whole,
// naming the line. The Applier is the only retry layer: give it
// a Store that does not retry (see Store).
package backfill
