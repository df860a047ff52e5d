package backfill

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ErrWrongJournal is wrapped by the error for a journal that belongs to
// another tenant or another plan, or whose links were undone: applying or
// undoing with it could link or unlink the wrong users.
var ErrWrongJournal = errors.New("backfill: journal does not match")

// journalVersion is the version of the journal format.
const journalVersion = 1

// Kinds of journal entries.
const (
	kindHeader     = "header"      // tenant and plan digest, first line
	kindIntent     = "intent"      // a link is about to be sent; holds the secondary as it was
	kindDone       = "done"        // the link is in place
	kindFailed     = "failed"      // the tenant refused the link, and it is not in place
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
	Line        int       `json:"line,omitempty"` // the plan line
	Primary     string    `json:"primary,omitempty"`
	SecondaryID string    `json:"secondary_id,omitempty"`
	Secondary   *wireUser `json:"secondary,omitempty"` // intent: the secondary before the link
	By          string    `json:"by,omitempty"`        // done, unlinked: "response" or "read_back"
	Error       string    `json:"error,omitempty"`     // failed, undo_failed
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
// tenant (and to the plan with digest plan, when plan is not empty). When
// write is set, it opens the journal for appending, creating it with a
// header when it does not exist, and drops a last line left incomplete by a
// crash (its step had not begun, or is confirmed by reading back).
func openJournal(path, tenant, plan string, write bool) (*journal, error) {
	if tenant == "" {
		return nil, errors.New("backfill: no tenant given for the journal")
	}
	j := &journal{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if plan == "" {
			return nil, fmt.Errorf("backfill: journal %s: %w", path, err)
		}
		j.header = entry{Kind: kindHeader, Version: journalVersion, Tenant: tenant, Plan: plan}
		if !write {
			return j, nil
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("backfill: create journal: %w", err)
		}
		j.f = f
		if err := j.append(j.header); err != nil {
			f.Close()
			return nil, err
		}
		return j, nil
	case err != nil:
		return nil, fmt.Errorf("backfill: read journal: %w", err)
	}

	complete := len(data)
	if i := bytes.LastIndexByte(data, '\n'); i < len(data)-1 {
		// The last line has no newline: a write cut short.
		complete = i + 1
	}
	if err := j.parse(data[:complete]); err != nil {
		return nil, err
	}
	if j.header.Kind != kindHeader {
		return nil, &LineError{Input: "journal", Line: 1, Err: fmt.Errorf("%w: the journal has no header", ErrWrongJournal)}
	}
	h := j.header
	switch {
	case h.Tenant != tenant:
		return nil, &LineError{Input: "journal", Line: 1, Err: fmt.Errorf("%w: it is the journal of tenant %q, not of %q", ErrWrongJournal, h.Tenant, tenant)}
	case plan != "" && h.Plan != plan:
		return nil, &LineError{Input: "journal", Line: 1, Err: fmt.Errorf("%w: it is the journal of plan %s, not of this plan (%s)", ErrWrongJournal, h.Plan, plan)}
	}
	if !write {
		return j, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("backfill: open journal: %w", err)
	}
	if complete < len(data) {
		if err := f.Truncate(int64(complete)); err != nil {
			f.Close()
			return nil, fmt.Errorf("backfill: repair journal: %w", err)
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("backfill: open journal: %w", err)
	}
	j.f = f
	return j, nil
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
	saved   *wireUser // from the first intent
	state   string    // the kind of the last entry
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
		if e.Kind == kindIntent && r.saved == nil {
			r.saved = e.Secondary
		}
		if e.Kind == kindDone {
			r.doneAt = i
			order = append(order, e.SecondaryID)
		}
		r.state = e.Kind
		r.number = j.numbers[i]
	}
	return recs, order
}
