// Package auth0wire decodes and encodes users in Auth0's JSON form, the one
// of its users-exports job (one user per line) and of the Management API
// (GET /api/v2/users/{id}), and converts them to and from linking.User.
//
// Its errors say what is wrong with one user, naming the member
// ("email: got a JSON number, want a string", "identities[1].provider:
// missing"); the caller wraps them with what it read.
package auth0wire

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/idlink/linking"
)

// User is a user in Auth0's JSON form, with the members the linking library
// reads.
type User struct {
	UserID        string     `json:"user_id"`
	Email         string     `json:"email,omitempty"`
	EmailVerified bool       `json:"email_verified"`
	Identities    []Identity `json:"identities"`
	// CreatedAt is an RFC 3339 time; see FormatTime.
	CreatedAt    string   `json:"created_at,omitempty"`
	Blocked      bool     `json:"blocked,omitempty"`
	UserMetadata Metadata `json:"user_metadata,omitempty"`
	AppMetadata  Metadata `json:"app_metadata,omitempty"`
}

// Identity is one element of a user's identities.
type Identity struct {
	Provider    string         `json:"provider"`
	UserID      IdentityUserID `json:"user_id"`
	Connection  string         `json:"connection"`
	IsSocial    bool           `json:"isSocial"`
	ProfileData map[string]any `json:"profileData,omitempty"`
}

// IdentityUserID is an identity's user_id. Auth0 sends it as a JSON string,
// or as a JSON number for some providers; a number keeps its exact text,
// however large. It is written as a JSON string.
type IdentityUserID string

// UnmarshalJSON accepts a JSON string or number; null leaves id as it is.
func (id *IdentityUserID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = IdentityUserID(s)
	case len(b) > 0 && (b[0] == '-' || '0' <= b[0] && b[0] <= '9') && json.Valid(b):
		*id = IdentityUserID(b)
	case string(b) == "null":
	default:
		return &json.UnmarshalTypeError{Value: kindOf(b), Type: reflect.TypeFor[IdentityUserID]()}
	}
	return nil
}

// Metadata is a user's user_metadata or app_metadata. Its numbers decode as
// json.Number, so that they are written back exactly; null decodes as nil.
type Metadata map[string]any

// UnmarshalJSON decodes a JSON object, numbers as json.Number.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		return err
	}
	*m = v
	return nil
}

// Decode decodes one user from raw into w. Its error says what is wrong, as
// Explain words it.
func Decode(raw []byte, w *User) error {
	err := json.Unmarshal(raw, w)
	if se := (*json.SyntaxError)(nil); errors.As(err, &se) && se.Offset >= int64(len(raw)) {
		return fmt.Errorf("truncated JSON: %w", err)
	}
	if err != nil {
		return Explain(err)
	}
	return nil
}

// Explain words an error of encoding/json for a person: a member of the
// wrong type by its name and what it should be, truncated JSON, or
// malformed JSON.
func Explain(err error) error {
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		got := "got a JSON " + te.Value + ", want " + want(te.Type)
		if te.Field == "" {
			return errors.New(got)
		}
		return fmt.Errorf("%s: %s", te.Field, got)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("truncated JSON: %w", err)
	}
	return fmt.Errorf("malformed JSON: %w", err)
}

// want names the JSON values a Go type of this package decodes.
func want(t reflect.Type) string {
	if t == reflect.TypeFor[IdentityUserID]() {
		return "a string or a number"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// kindOf names the kind of the JSON value b, as encoding/json does in its
// errors.
func kindOf(b []byte) string {
	switch {
	case len(b) == 0:
		return "nothing"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case b[0] == 't', b[0] == 'f':
		return "bool"
	}
	return "value"
}

// ToUser converts w to a linking.User, and checks that it is one: it has a
// user_id and at least one identity, each identity has a provider and a
// user_id, and created_at, when present, is an RFC 3339 time. The metadata
// maps are w's own, not copies.
func (w *User) ToUser() (linking.User, error) {
	if w.UserID == "" {
		return linking.User{}, errors.New("user_id: missing")
	}
	if len(w.Identities) == 0 {
		return linking.User{}, fmt.Errorf("user %q: identities: missing", w.UserID)
	}
	u := linking.User{
		ID:            w.UserID,
		Email:         w.Email,
		EmailVerified: w.EmailVerified,
		Blocked:       w.Blocked,
		Identities:    make([]linking.Identity, 0, len(w.Identities)),
		UserMetadata:  w.UserMetadata,
		AppMetadata:   w.AppMetadata,
	}
	if w.CreatedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, w.CreatedAt)
		if err != nil {
			return linking.User{}, fmt.Errorf("created_at: got %q, want an RFC 3339 time", w.CreatedAt)
		}
		u.CreatedAt = t.UTC()
	}
	for i, id := range w.Identities {
		switch {
		case id.Provider == "":
			return linking.User{}, fmt.Errorf("identities[%d].provider: missing", i)
		case id.UserID == "":
			return linking.User{}, fmt.Errorf("identities[%d].user_id: missing", i)
		}
		u.Identities = append(u.Identities, linking.Identity{
			Provider:    id.Provider,
			UserID:      string(id.UserID),
			Connection:  id.Connection,
			IsSocial:    id.IsSocial,
			ProfileData: id.ProfileData,
		})
	}
	return u, nil
}

// FromUser returns u in Auth0's JSON form. The metadata maps are u's own,
// not copies.
func FromUser(u linking.User) User {
	w := User{
		UserID:        u.ID,
		Email:         u.Email,
		EmailVerified: u.EmailVerified,
		Blocked:       u.Blocked,
		Identities:    make([]Identity, 0, len(u.Identities)),
		UserMetadata:  u.UserMetadata,
		AppMetadata:   u.AppMetadata,
	}
	if !u.CreatedAt.IsZero() {
		w.CreatedAt = FormatTime(u.CreatedAt)
	}
	for _, id := range u.Identities {
		w.Identities = append(w.Identities, Identity{
			Provider:    id.Provider,
			UserID:      IdentityUserID(id.UserID),
			Connection:  id.Connection,
			IsSocial:    id.IsSocial,
			ProfileData: id.ProfileData,
		})
	}
	return w
}

// FormatTime writes t as Auth0 does, in UTC with milliseconds
// ("2023-01-25T19:00:58.788Z"); a time finer than a millisecond keeps
// every digit (RFC 3339 with nanoseconds), so that it reads back exactly.
func FormatTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()%int(time.Millisecond) == 0 {
		return t.Format("2006-01-02T15:04:05.000Z07:00")
	}
	return t.Format(time.RFC3339Nano)
}

// Gunzip returns a reader of what r holds, decompressed when it starts with
// gzip's magic bytes (1f 8b), as Auth0's export files do.
func Gunzip(r io.Reader) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, _ := br.Peek(2); len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return bufio.NewReaderSize(zr, 1<<16), nil
}
