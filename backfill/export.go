package backfill

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/idlink/linking"
)

// MaxLineBytes bounds one line of an export, a plan or a journal.
const MaxLineBytes = 32 << 20

// LineError is the error for an input line that cannot be used: a malformed
// or truncated export line, an unsafe plan line, a journal line that does not
// belong. Line is 1-based.
type LineError struct {
	// Input names what was read: "export", "plan" or "journal".
	Input string
	// Line is the line number; for an export given as a JSON array, the
	// position of the user in the array.
	Line int
	// Err says what is wrong.
	Err error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("backfill: %s line %d: %s", e.Input, e.Line, strings.TrimPrefix(e.Err.Error(), "backfill: "))
}

// Unwrap returns Err.
func (e *LineError) Unwrap() error { return e.Err }

// wireUser is a user as Auth0 exports it (users-exports job, one JSON object
// per line) and as GET /api/v2/users returns it. Metadata is kept as raw
// JSON until it is needed.
type wireUser struct {
	UserID        string          `json:"user_id"`
	Email         string          `json:"email,omitempty"`
	EmailVerified bool            `json:"email_verified"`
	Identities    []wireIdentity  `json:"identities"`
	CreatedAt     string          `json:"created_at,omitempty"`
	Blocked       bool            `json:"blocked,omitempty"`
	UserMetadata  json.RawMessage `json:"user_metadata,omitempty"`
	AppMetadata   json.RawMessage `json:"app_metadata,omitempty"`

	// norm is the normalized Email once normalize has run; "" when Email
	// is empty or invalid.
	norm string
}

// normalize sets w.norm to the normalized Email, or to "" when Email is
// empty or invalid.
func (w *wireUser) normalize() {
	w.norm, _ = linking.NormalizeEmail(w.Email)
}

// wireIdentity is one element of a user's identities. Auth0 sends user_id as
// a JSON number for some providers.
type wireIdentity struct {
	Provider    string          `json:"provider"`
	UserID      json.RawMessage `json:"user_id"`
	Connection  string          `json:"connection,omitempty"`
	IsSocial    bool            `json:"isSocial"`
	ProfileData map[string]any  `json:"profileData,omitempty"`
}

// user converts w, without its metadata, and checks that it names itself.
func (w *wireUser) user() (linking.User, error) {
	if w.UserID == "" {
		return linking.User{}, errors.New("no user_id")
	}
	u := linking.User{
		ID:            w.UserID,
		Email:         w.Email,
		EmailVerified: w.EmailVerified,
		Blocked:       w.Blocked,
		Identities:    make([]linking.Identity, 0, len(w.Identities)),
	}
	if w.CreatedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, w.CreatedAt)
		if err != nil {
			return linking.User{}, fmt.Errorf("created_at: %w", err)
		}
		u.CreatedAt = t
	}
	for i, wi := range w.Identities {
		id, err := identityUserID(wi.UserID)
		if err != nil {
			return linking.User{}, fmt.Errorf("identities[%d].user_id: %w", i, err)
		}
		if wi.Provider == "" || id == "" {
			return linking.User{}, fmt.Errorf("identities[%d]: no provider or user_id", i)
		}
		u.Identities = append(u.Identities, linking.Identity{
			Provider:    wi.Provider,
			UserID:      id,
			Connection:  wi.Connection,
			IsSocial:    wi.IsSocial,
			ProfileData: wi.ProfileData,
		})
	}
	if len(u.Identities) == 0 {
		return linking.User{}, fmt.Errorf("user %q has no identities", u.ID)
	}
	return u, nil
}

// identityUserID decodes an identity's user_id, a JSON string or number.
func identityUserID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", err
	}
	return n.String(), nil
}

// fullUser converts w with its metadata.
func (w *wireUser) fullUser() (linking.User, error) {
	u, err := w.user()
	if err != nil {
		return u, err
	}
	if u.UserMetadata, err = decodeMetadata(w.UserMetadata); err != nil {
		return u, fmt.Errorf("user_metadata: %w", err)
	}
	if u.AppMetadata, err = decodeMetadata(w.AppMetadata); err != nil {
		return u, fmt.Errorf("app_metadata: %w", err)
	}
	return u, nil
}

// decodeMetadata decodes a metadata object, keeping numbers as json.Number so
// that they are written back exactly. Absent or null is nil.
func decodeMetadata(raw json.RawMessage) (map[string]any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// toWire converts u to its exported form.
func toWire(u linking.User) (wireUser, error) {
	w := wireUser{
		UserID:        u.ID,
		Email:         u.Email,
		EmailVerified: u.EmailVerified,
		Blocked:       u.Blocked,
		Identities:    make([]wireIdentity, 0, len(u.Identities)),
	}
	if !u.CreatedAt.IsZero() {
		w.CreatedAt = u.CreatedAt.UTC().Format(time.RFC3339Nano)
	}
	for _, id := range u.Identities {
		w.Identities = append(w.Identities, wireIdentity{
			Provider:    id.Provider,
			UserID:      json.RawMessage(strconv.Quote(id.UserID)),
			Connection:  id.Connection,
			IsSocial:    id.IsSocial,
			ProfileData: id.ProfileData,
		})
	}
	var err error
	if len(u.UserMetadata) > 0 {
		if w.UserMetadata, err = json.Marshal(u.UserMetadata); err != nil {
			return w, fmt.Errorf("user_metadata of %q: %w", u.ID, err)
		}
	}
	if len(u.AppMetadata) > 0 {
		if w.AppMetadata, err = json.Marshal(u.AppMetadata); err != nil {
			return w, fmt.Errorf("app_metadata of %q: %w", u.ID, err)
		}
	}
	return w, nil
}

// ReadExport returns the users of an Auth0 user export read from r, in the
// order of the export: newline-delimited JSON (one user per line, as Auth0's
// users-exports job writes it), gzipped or not (told by gzip's magic bytes),
// or a JSON array of users (as GET /api/v2/users returns a page). Blank lines
// are skipped. Numbers in metadata are json.Number values, so that they
// survive a round trip exactly.
//
// A line that is not a user (malformed or truncated JSON, a user without
// user_id or identities, a bad created_at), or a truncated gzip stream,
// yields one *LineError naming the line, and the sequence ends.
func ReadExport(r io.Reader) iter.Seq2[linking.User, error] {
	return func(yield func(linking.User, error) bool) {
		err := readWire(r, decodeFull, func(line int, _ []byte, w *wireUser) error {
			u, err := w.fullUser()
			if err != nil {
				return &LineError{Input: "export", Line: line, Err: err}
			}
			if !yield(u, nil) {
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop {
			yield(linking.User{}, err)
		}
	}
}

// errStop ends a read early without an error.
var errStop = errors.New("backfill: stop")

// readWire decodes the users of an export with decode, maybe on other
// goroutines, and calls fn for each, with its line number (or position in a
// JSON array), and the line as read. An error of decode is the line's. fn
// must not keep raw or w. An error of fn ends the read and is returned as it
// is.
func readWire(r io.Reader, decode decoder, fn func(line int, raw []byte, w *wireUser) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return &LineError{Input: "export", Line: 1, Err: fmt.Errorf("gzip: %w", err)}
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<16)
	}
	first, err := firstByte(br)
	if err != nil {
		if err == io.EOF {
			return nil
		}
		return &LineError{Input: "export", Line: 1, Err: readProblem(err)}
	}
	if first == '[' {
		return readArray(br, decode, fn)
	}
	return decodeLines(br, decode, fn)
}

// firstByte returns the first byte of br that is not white space, without
// consuming it.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

// readArray decodes a JSON array of users.
func readArray(r io.Reader, decode decoder, fn func(line int, raw []byte, w *wireUser) error) error {
	d := json.NewDecoder(r)
	if _, err := d.Token(); err != nil {
		return &LineError{Input: "export", Line: 1, Err: jsonProblem(err)}
	}
	for n := 1; d.More(); n++ {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return &LineError{Input: "export", Line: n, Err: jsonProblem(err)}
		}
		var w wireUser
		if err := decode(raw, &w); err != nil {
			return lineError(n, err)
		}
		if err := fn(n, raw, &w); err != nil {
			return err
		}
	}
	return nil
}

// readLines calls fn with every line of r that is not blank, without its end
// of line, and its 1-based number. A final line without a newline is read
// like the others.
func readLines(r io.Reader, input string, fn func(line int, b []byte) error) error {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 1<<16), MaxLineBytes)
	line := 0
	for s.Scan() {
		line++
		b := bytes.TrimSpace(s.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := fn(line, b); err != nil {
			return err
		}
	}
	if err := s.Err(); err != nil {
		return &LineError{Input: input, Line: line + 1, Err: readProblem(err)}
	}
	return nil
}

// readProblem words a read error.
func readProblem(err error) error {
	switch {
	case errors.Is(err, bufio.ErrTooLong):
		return fmt.Errorf("longer than %d bytes", MaxLineBytes)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("truncated input: %w", err)
	}
	return err
}

// jsonProblem words a JSON decoding error.
func jsonProblem(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated JSON: %w", err)
	}
	return fmt.Errorf("malformed JSON: %w", err)
}
