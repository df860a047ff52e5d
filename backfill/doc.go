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
// group, a PrimaryPolicy chooses the primary among the members. The primary
// must be a user a login could be linked into (its verdict from
// linking.Decide is eligible: verified email, trusted connection, not
// blocked); otherwise the group is refused. Then every other member is
// decided exactly as its own login would be, with the whole group as
// candidates: linking.Decide must answer ActionLink into the chosen primary.
// A member for which it does not (unverified or untrusted, blocked, already a
// primary, ...) is not linked. A group where a member's decision is
// ambiguous (several eligible primaries) is not linked at all: the rule never
// picks among several accounts that could each be the person's.
//
// A consequence: a group links at most one secondary user per run, since two
// members that could both be linked are each an eligible primary for the
// other. Such groups are reported as ambiguous for a person to resolve.
//
// Apply checks every line of the plan again with the same rule, and the same
// PrimaryPolicy, before it makes any call, so a plan edited by hand into
// something unsafe (a primary swapped with a secondary included) is refused
// as a whole, naming the line. The Applier is the only retry layer: give it
// a Store that does not retry (see Store).
package backfill
