package backfill

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/idlink/linking"
	"github.com/idlink/linking/internal/auth0wire"
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
// per line) and as GET /api/v2/users returns it, with its normalized email
// once normalize has run.
type wireUser struct {
	auth0wire.User

	// norm is the normalized Email once normalize has run; "" when Email
	// is empty or invalid.
	norm string
}

// normalize sets w.norm to the normalized Email, or to "" when Email is
// empty or invalid.
func (w *wireUser) normalize() {
	w.norm, _ = linking.NormalizeEmail(w.Email)
}

// user converts w without its metadata.
func (w *wireUser) user() (linking.User, error) {
	bare := w.User
	bare.UserMetadata, bare.AppMetadata = nil, nil
	return bare.ToUser()
}

// fullUser converts w with its metadata.
func (w *wireUser) fullUser() (linking.User, error) {
	return w.ToUser()
}

// toWire converts u to its exported form, and refuses a user that would not
// read back (without a user_id or identities).
func toWire(u linking.User) (wireUser, error) {
	w := wireUser{User: auth0wire.FromUser(u)}
	if _, err := w.user(); err != nil {
		return w, fmt.Errorf("user %q: %w", u.ID, err)
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
	br, err := auth0wire.Gunzip(r)
	if err != nil {
		return &LineError{Input: "export", Line: 1, Err: err}
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
		return &LineError{Input: "export", Line: 1, Err: auth0wire.Explain(err)}
	}
	for n := 1; d.More(); n++ {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return &LineError{Input: "export", Line: n, Err: auth0wire.Explain(err)}
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
