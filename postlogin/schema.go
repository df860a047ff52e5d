package postlogin

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/idlink/linking"
)

// Version is the major version of the request and response schema that this
// package speaks.
const Version = 1

// ErrInvalidRequest is wrapped by the errors of Request.Login: the request
// does not describe one consistent login.
var ErrInvalidRequest = errors.New("postlogin: invalid request")

// Request is what the Action sends: the part of its event the rule needs.
// Fields unknown to this version are ignored when decoding.
type Request struct {
	// Version is the schema's major version, Version.
	Version int `json:"version"`
	// User is event.user: the user Auth0 made the subject of the login.
	User User `json:"user"`
	// Connection is event.connection: the connection the person
	// authenticated with.
	Connection Connection `json:"connection"`
	// TransactionID is event.transaction.id, for logs only. Optional.
	TransactionID string `json:"transaction_id,omitempty"`
	// Accept lists the actions beyond the first three that the Action can
	// carry out for this login: ActionConfirm when it can send the person
	// to the consent page (api.redirect.canRedirect() is true and it holds
	// the confirm secrets). The Handler sends no action that is not in it.
	// Optional.
	Accept []Action `json:"accept,omitempty"`
}

// User is the login's user as the Action sends it (event.user).
type User struct {
	// UserID is the Auth0 user id, e.g. "email|6f1c...". Required.
	UserID string `json:"user_id"`
	// Email is the user's email; empty when the user has none.
	Email string `json:"email,omitempty"`
	// EmailVerified reports whether Auth0 holds the email as verified.
	EmailVerified bool `json:"email_verified"`
	// Identities are the user's identities, as in event.user.identities.
	Identities []Identity `json:"identities"`
	// CreatedAt is event.user.created_at, for a Linker whose Selector
	// prefers the oldest user. Optional.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// AppMetadata and UserMetadata are whatever parts of
	// event.user.app_metadata and event.user.user_metadata the Action
	// chooses to pass, for a Linker whose MetadataPolicy moves the
	// secondary's metadata into the primary. Optional; the Action in this
	// package passes neither, which keeps requests small.
	AppMetadata  map[string]any `json:"app_metadata,omitempty"`
	UserMetadata map[string]any `json:"user_metadata,omitempty"`
}

// Identity is one of the user's identities (event.user.identities[i]).
type Identity struct {
	// Provider is the identity provider, e.g. "auth0", "email".
	Provider string `json:"provider"`
	// UserID is the user's id at the provider, without "provider|".
	UserID string `json:"user_id"`
	// Connection is the name of the identity's connection.
	Connection string `json:"connection"`
	// IsSocial reports whether the connection is a social one.
	IsSocial bool `json:"isSocial"`
	// Email is the email in a linked identity's profileData. The Handler
	// sets it in Response.Candidates, so that an offer carries what the
	// rule checks of an account; the Action sends none in its requests.
	Email string `json:"email,omitempty"`
}

// Connection is the connection of the login (event.connection).
type Connection struct {
	// Name is the connection's name, e.g. "email". Required.
	Name string `json:"name"`
	// Strategy is the connection's strategy, which is the provider of its
	// identities, e.g. "email", "auth0". Required.
	Strategy string `json:"strategy"`
}

// Login returns the login the request describes, for linking.Linker.Link.
// Its identity is the one identity of the user whose connection is
// Connection.Name and whose provider is Connection.Strategy: never any other
// identity of the request (rule 7 of docs/security.md). The error wraps
// ErrInvalidRequest when the user id or the connection is missing, or when no
// identity, or more than one, matches.
func (r Request) Login() (linking.Login, error) {
	switch {
	case r.User.UserID == "":
		return linking.Login{}, fmt.Errorf("%w: user.user_id is missing", ErrInvalidRequest)
	case r.Connection.Name == "" || r.Connection.Strategy == "":
		return linking.Login{}, fmt.Errorf("%w: connection.name and connection.strategy are required", ErrInvalidRequest)
	}
	u := r.User.linking()
	var login []linking.Identity
	for _, id := range u.Identities {
		if id.Connection == r.Connection.Name && id.Provider == r.Connection.Strategy {
			login = append(login, id)
		}
	}
	switch {
	case len(login) == 0:
		return linking.Login{}, fmt.Errorf("%w: no identity of the user matches connection %q (strategy %q)",
			ErrInvalidRequest, r.Connection.Name, r.Connection.Strategy)
	case len(login) > 1:
		return linking.Login{}, fmt.Errorf("%w: %d identities of the user match connection %q (strategy %q)",
			ErrInvalidRequest, len(login), r.Connection.Name, r.Connection.Strategy)
	case login[0].UserID == "":
		return linking.Login{}, fmt.Errorf("%w: the login identity has no user_id", ErrInvalidRequest)
	}
	return linking.Login{User: u, Identity: login[0]}, nil
}

// linking returns u as the rule sees it.
func (u User) linking() linking.User {
	lu := linking.User{
		ID:            u.UserID,
		Email:         u.Email,
		EmailVerified: u.EmailVerified,
		CreatedAt:     u.CreatedAt,
		AppMetadata:   u.AppMetadata,
		UserMetadata:  u.UserMetadata,
	}
	for _, id := range u.Identities {
		li := linking.Identity{Provider: id.Provider, UserID: id.UserID, Connection: id.Connection, IsSocial: id.IsSocial}
		if id.Email != "" {
			li.ProfileData = map[string]any{"email": id.Email}
		}
		lu.Identities = append(lu.Identities, li)
	}
	return lu
}

// candidate returns the account u as an offer carries it: its id, email,
// creation time and identities (with their profile emails), and no
// metadata.
func candidate(u linking.User) User {
	c := User{UserID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified, CreatedAt: u.CreatedAt}
	for _, id := range u.Identities {
		e, _ := id.ProfileData["email"].(string)
		c.Identities = append(c.Identities, Identity{
			Provider: id.Provider, UserID: id.UserID, Connection: id.Connection, IsSocial: id.IsSocial, Email: e,
		})
	}
	return c
}

// Action is what a Response asks the Action to do.
//
// The set may grow; the Handler sends an action beyond the first three only
// to an Action whose request lists it in Request.Accept.
type Action string

// Actions of a Response.
const (
	// ActionSetPrimaryUser: the login's identity is linked into
	// Response.PrimaryUserID; call
	// api.authentication.setPrimaryUser(primary_user_id).
	ActionSetPrimaryUser Action = "set_primary_user"
	// ActionNone: let the login go on as it is.
	ActionNone Action = "none"
	// ActionDeny: refuse the login with api.access.deny(message).
	ActionDeny Action = "deny"
	// ActionConfirm: nothing is linked yet; send the person to the consent
	// page (ConfirmPath) with the accounts of Response.Candidates that they
	// have not declined, to prove one of them (see ConfirmConfig). Sent
	// only to an Action whose request lists it in Request.Accept.
	ActionConfirm Action = "confirm"
)

// Response is the Handler's answer to a valid request (HTTP 200).
type Response struct {
	// Version is the schema's major version, Version.
	Version int `json:"version"`
	// Action is what the Action must do.
	Action Action `json:"action"`
	// PrimaryUserID is the user the login must end as; set exactly when
	// Action is ActionSetPrimaryUser.
	PrimaryUserID string `json:"primary_user_id,omitempty"`
	// Candidates are the accounts the person may prove, sorted by user id,
	// at most MaxCandidates; set exactly when Action is ActionConfirm.
	Candidates []User `json:"candidates,omitempty"`
	// Reason is the linking.Reason code of the result, for logs.
	Reason linking.Reason `json:"reason"`
	// Message is a fixed text, safe to show the person; set exactly when
	// Action is ActionDeny.
	Message string `json:"message,omitempty"`
	// FailedOpen reports that the login goes on only because the store
	// failed and the policy fails open (linking.Result.FailedOpen).
	FailedOpen bool `json:"failed_open"`
	// Remember tells the Action it may record in app_metadata that the
	// user's verified email was checked, so that later logins with that
	// email skip the call. It is true only for final "nothing to do"
	// answers, never with ActionSetPrimaryUser, never after a store error,
	// and never for a login whose email is missing or unverified.
	Remember bool `json:"remember"`
}

// Error codes of an ErrorResponse.
const (
	CodeMethodNotAllowed     = "method_not_allowed"     // 405: not a POST
	CodeUnsupportedMediaType = "unsupported_media_type" // 415: not application/json
	CodeBodyTooLarge         = "body_too_large"         // 413: over Config.MaxBodyBytes
	CodeUnauthorized         = "unauthorized"           // 401: missing or wrong signature, bad timestamp
	CodeStaleRequest         = "stale_request"          // 401: timestamp outside Config.MaxSkew
	CodeInvalidRequest       = "invalid_request"        // 400: not a valid request of this version
	CodeUnsupportedVersion   = "unsupported_version"    // 400: a major version this package does not speak
)

// ErrorResponse is the body of every 4xx answer of the Handler.
type ErrorResponse struct {
	// Version is the schema's major version, Version.
	Version int `json:"version"`
	// Error is one of the Code constants.
	Error string `json:"error"`
	// Message says what is wrong, for the operator.
	Message string `json:"message"`
}

// requestError is a refused request: the status and body to answer with.
type requestError struct {
	status  int
	code    string
	message string
}

func (e *requestError) Error() string {
	return fmt.Sprintf("postlogin: %d %s: %s", e.status, e.code, e.message)
}

// decodeRequest decodes a request body whose signature has been checked. It
// reads the version first, so that a request of another major version is
// told so whatever the rest of it looks like.
func decodeRequest(body []byte) (Request, *requestError) {
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Request{}, &requestError{400, CodeInvalidRequest, "the body is not a JSON request object"}
	}
	switch {
	case probe.Version == nil:
		return Request{}, &requestError{400, CodeInvalidRequest, "version is missing"}
	case *probe.Version != Version:
		return Request{}, &requestError{400, CodeUnsupportedVersion,
			fmt.Sprintf("version %d is not supported; this service speaks version %d", *probe.Version, Version)}
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		msg := "the body does not match the version 1 schema"
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			msg = fmt.Sprintf("%s: field %s must be a JSON %s", msg, te.Field, jsonKind(te.Type.Kind()))
		}
		return Request{}, &requestError{400, CodeInvalidRequest, msg}
	}
	return req, nil
}

// jsonKind names the JSON type that a Go value of kind k decodes from.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return "number"
}
