package backfill

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/idlink/linking"
)

// ErrWrongJournal is wrapped by the error for a journal that belongs to
// another tenant or another plan, or whose links were undone: applying or
// undoing with it could link or unlink the wrong users.
var ErrWrongJournal = errors.New("backfill: journal does not match")

// ErrJournalLocked is wrapped by the error of Apply or Undo when another run,
// in this process or another, has the journal open for writing. The error
// names the file. Nothing was read or written: wait for the other run to end.
var ErrJournalLocked = errors.New("backfill: journal in use by another run")

// journalVersion is the version of the journal format.
const journalVersion = 1

// Kinds of journal entries.
const (
	kindHeader     = "header"      // tenant and plan digest, first line
	kindIntent     = "intent"      // a link is about to be sent; holds the secondary as read just before
	kindDone       = "done"        // the link is in place
	kindFailed     = "failed"      // the tenant refused the link, and it is not in place
	kindSkipped    = "skipped"     // the live users no longer qualify; final for this journal
	kindUndoIntent = "undo_intent" // an unlink is about to be sent
	kindUnlinked   = "unlinked"    // the identity is unlinked; metadata not yet restored
	kindUndone     = "undone"      // unlinked and metadata restored
	kindUndoFailed = "undo_failed" // the tenant refused the unlink or the restore
)

// entry is one line of a journal.
type entry struct {
	Kind string    `json:"kind"`
	Time time.Time `json:"time"`

	// Header.
	Version int    `json:"version,omitempty"`
	Tenant  string `json:"tenant,omitempty"`
	Plan    string `json:"plan,omitempty"`

	// Links and unlinks.
	Line        int            `json:"line,omitempty"` // the plan line
	Primary     string         `json:"primary,omitempty"`
	SecondaryID string         `json:"secondary_id,omitempty"`
	Secondary   *wireUser      `json:"secondary,omitempty"` // intent: the secondary before the link
	By          string         `json:"by,omitempty"`        // done, unlinked: "response" or "read_back"
	Error       string         `json:"error,omitempty"`     // failed, undo_failed
	Reason      linking.Reason `json:"reason,omitempty"`    // skipped: see Skip
	Verdict     linking.Reason `json:"verdict,omitempty"`   // skipped: see Skip
}

// journal is an append-only file of entries, each written and synced before
// the next step.
type journal struct {
	f       *os.File // nil in a dry run
	header  entry
	entries []entry
	numbers []int // line number of each entry
	lines   int   // lines in the file
}

// openJournal reads the journal at path and checks that it belongs to the
// tenant (and to the plan with digest plan, when plan is not empty).
//
// When write is set, it opens the journal for appending, creating it with a
// header when it does not exist (and plan is not empty), and takes an
// exclusive lock on it, held until close, before reading it: a journal open
// for writing elsewhere is an error wrapping ErrJournalLocked. Then it drops
// a last line left incomplete by a run killed while writing it (its step had
// not begun, or is confirmed by reading back). Without write, it reads the
// journal as it is, without the lock, and never writes.
func openJournal(path, tenant, plan string, write bool) (*journal, error) {
	if tenant == "" {
		return nil, errors.New("backfill: no tenant given for the journal")
	}
	j := &journal{header: entry{Kind: kindHeader, Version: journalVersion, Tenant: tenant, Plan: plan}}
	if !write {
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist) && plan != "":
			return j, nil
		case err != nil:
			return nil, fmt.Errorf("backfill: journal: %w", err)
		}
		if _, err := j.load(data, tenant, plan); err != nil {
			return nil, err
		}
		return j, nil
	}

	flags := os.O_RDWR | os.O_APPEND
	if plan != "" {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backfill: journal: %w", err)
	}
	if err := j.lockAndRead(f, path, tenant, plan); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

// lockAndRead locks f, the journal at path open for appending, reads it and
// makes it j's file: a new (empty) file gets its header, a last line without
// its newline is cut off.
func (j *journal) lockAndRead(f *os.File, path, tenant, plan string) error {
	if err := lock(f); err != nil {
		if errors.Is(err, ErrJournalLocked) {
			return fmt.Errorf("%w: %s", ErrJournalLocked, path)
		}
		return fmt.Errorf("backfill: lock journal %s: %w", path, err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("backfill: read journal: %w", err)
	}
	fresh, err := j.load(data, tenant, plan)
	if err != nil {
		return err
	}
	if fresh {
		j.f = f
		return j.append(j.header)
	}
	if complete := completeLines(data); complete < len(data) {
		if err := f.Truncate(int64(complete)); err != nil {
			return fmt.Errorf("backfill: repair journal: %w", err)
		}
	}
	j.f = f
	return nil
}

// completeLines returns the length of data up to the end of its last
// complete line: a last line without its newline is a write cut short.
func completeLines(data []byte) int {
	return bytes.LastIndexByte(data, '\n') + 1
}

// load parses the complete lines of data, a journal, and checks its header
// against the tenant and plan (when not empty). An empty file is a new
// journal when a plan is given: load reports it fresh.
func (j *journal) load(data []byte, tenant, plan string) (fresh bool, err error) {
	if len(data) == 0 && plan != "" {
		return true, nil
	}
	if err := j.parse(data[:completeLines(data)]); err != nil {
		return false, err
	}
	if j.lines == 0 {
		return false, &LineError{Input: "journal", Line: 1, Err: fmt.Errorf("%w: the journal has no header", ErrWrongJournal)}
	}
	h := j.header
	switch {
	case h.Tenant != tenant:
		return false, &LineError{Input: "journal", Line: 1, Err: fmt.Errorf("%w: it is the journal of tenant %q, not of %q", ErrWrongJournal, h.Tenant, tenant)}
	case plan != "" && h.Plan != plan:
		return false, &LineError{Input: "journal", Line: 1, Err: fmt.Errorf("%w: it is the journal of plan %s, not of this plan (%s)", ErrWrongJournal, h.Plan, plan)}
	}
	return false, nil
}

// IsJournal reports whether r begins with a journal header, the first line
// of every journal Apply writes. A journal holds the only copy of the
// metadata Auth0 discards on link: a program that writes files can use
// IsJournal to never overwrite one.
func IsJournal(r io.Reader) bool {
	line, err := bufio.NewReaderSize(r, 4096).ReadSlice('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	var e entry
	return json.Unmarshal(line, &e) == nil && e.Kind == kindHeader && e.Version > 0
}

// parse reads the entries of a journal.
func (j *journal) parse(data []byte) error {
	seen := false
	return readLines(bytes.NewReader(data), "journal", func(n int, b []byte) error {
		j.lines = n
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return &LineError{Input: "journal", Line: n, Err: fmt.Errorf("not a journal entry: %w", err)}
		}
		if !seen {
			if e.Kind != kindHeader || e.Version != journalVersion {
				return &LineError{Input: "journal", Line: n, Err: fmt.Errorf("%w: not a journal header (version %d)", ErrWrongJournal, journalVersion)}
			}
			seen, j.header = true, e
			return nil
		}
		switch e.Kind {
		case kindIntent:
			if e.Secondary == nil {
				return &LineError{Input: "journal", Line: n, Err: errors.New("intent without the secondary user")}
			}
		case kindSkipped:
			if e.Reason == "" {
				return &LineError{Input: "journal", Line: n, Err: errors.New("skipped without a reason")}
			}
		case kindDone, kindFailed, kindUndoIntent, kindUnlinked, kindUndone, kindUndoFailed:
		default:
			return &LineError{Input: "journal", Line: n, Err: fmt.Errorf("unknown entry kind %q", e.Kind)}
		}
		if e.SecondaryID == "" || e.Primary == "" {
			return &LineError{Input: "journal", Line: n, Err: errors.New("entry without primary or secondary_id")}
		}
		j.entries = append(j.entries, e)
		j.numbers = append(j.numbers, n)
		return nil
	})
}

// append writes e as one line and syncs the file.
func (j *journal) append(e entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("backfill: journal: %w", err)
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("backfill: write journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("backfill: sync journal: %w", err)
	}
	j.lines++
	if e.Kind != kindHeader {
		j.entries = append(j.entries, e)
		j.numbers = append(j.numbers, j.lines)
	}
	return nil
}

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}

// record is what the journal says of one secondary.
type record struct {
	line    int // plan line
	primary string
	saved   *wireUser // from the last intent: the secondary as read just before the link
	state   string    // the kind of the last entry
	skip    Skip      // when state is kindSkipped
	doneAt  int       // index of the done entry in the journal, for the undo order
	number  int       // journal line number of the last entry
}

// records returns what the journal says of each secondary, by user id, and
// the ids of the secondaries in the order their links were done.
func (j *journal) records() (map[string]*record, []string) {
	recs := make(map[string]*record)
	var order []string
	for i, e := range j.entries {
		r := recs[e.SecondaryID]
		if r == nil {
			r = &record{line: e.Line, primary: e.Primary}
			recs[e.SecondaryID] = r
		}
		switch e.Kind {
		case kindIntent:
			r.saved = e.Secondary
		case kindDone:
			r.doneAt = i
			order = append(order, e.SecondaryID)
		case kindSkipped:
			r.skip = Skip{Line: e.Line, PrimaryID: e.Primary, SecondaryID: e.SecondaryID, Reason: e.Reason, Verdict: e.Verdict}
		}
		r.state = e.Kind
		r.number = j.numbers[i]
	}
	return recs, order
}
