package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auth0/go-auth0/management"
	"golang.org/x/oauth2"

	"github.com/idlink/linking"
)

// ErrUnauthorized means the Management API refused the client's credentials
// or token (HTTP 401), or the token lacks a scope the call needs (HTTP 403).
// It is a configuration error: trying again does not help, so it is not
// linking.ErrUnavailable.
var ErrUnauthorized = errors.New("mgmt: unauthorized")

// APIError is an error answer of the Management API (or of its token
// endpoint): an HTTP status of 400 or more.
//
// Store methods return it wrapped, with the operation that failed; use
// errors.As to read it. Unwrap returns Err, so errors.Is sees the sentinel.
type APIError struct {
	// Status is the HTTP status, e.g. 404 or 429.
	Status int
	// ErrorCode is Auth0's errorCode, e.g. "inexistent_user". go-auth0 does
	// not report it: it is known only when the Management client was built
	// by New or NewManagement, and empty otherwise.
	ErrorCode string
	// Message is Auth0's message, e.g. "The user does not exist.".
	Message string
	// Reset is when the rate limit resets, from the X-RateLimit-Reset
	// header of a 429; like ErrorCode, known only for clients built by New
	// or NewManagement. Zero when unknown.
	Reset time.Time
	// Err classifies the error: linking.ErrNotFound (404), linking.ErrConflict
	// (409, or 400 from the link route), linking.ErrRateLimited (429),
	// linking.ErrUnavailable (5xx), ErrUnauthorized (401, 403), or nil for
	// any other status, which the Linker treats as fatal for the login.
	Err error
}

// Error returns the status, its text and Auth0's message and errorCode.
func (e *APIError) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	if e.ErrorCode != "" {
		s += " (" + e.ErrorCode + ")"
	}
	return s
}

// Unwrap returns Err.
func (e *APIError) Unwrap() error { return e.Err }

// RateLimitReset returns Reset: when a caller that was refused for the rate
// limit may try again.
func (e *APIError) RateLimitReset() time.Time { return e.Reset }

// sentinel returns the linking sentinel for an HTTP status. onLink reports
// whether the status answers the link route, where Auth0 refuses a link that
// is already in place or impossible with 400.
func sentinel(status int, onLink bool) error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrUnauthorized
	case status == http.StatusNotFound:
		return linking.ErrNotFound
	case status == http.StatusConflict:
		return linking.ErrConflict
	case status == http.StatusBadRequest && onLink:
		return linking.ErrConflict
	case status == http.StatusTooManyRequests:
		return linking.ErrRateLimited
	case status >= 500:
		return linking.ErrUnavailable
	}
	return nil
}

// errorCodeInexistentUser is Auth0's errorCode for a user that does not
// exist.
const errorCodeInexistentUser = "inexistent_user"

// classify turns an error of go-auth0 into one that carries the linking
// sentinels: an *APIError for an HTTP error status, linking.ErrUnavailable
// for a transport error, a timeout or a canceled context. A response that
// cannot be decoded is returned as it is: it is not the store being
// unavailable. last is what the transport recorded of the call's last error
// answer, if anything.
func classify(err error, last errorAnswer, onLink bool) error {
	var apiErr management.Error
	if errors.As(err, &apiErr) {
		status := apiErr.Status()
		e := &APIError{Status: status, ErrorCode: last.code, Message: messageOf(apiErr),
			Err: sentinel(status, onLink), Reset: last.reset}
		if onLink && status == http.StatusBadRequest && last.code == errorCodeInexistentUser {
			e.Err = linking.ErrNotFound
		}
		return e
	}
	// A failed token request: oauth2 reports it as a RetrieveError, inside
	// the transport error of the API call.
	var tokenErr *oauth2.RetrieveError
	if errors.As(err, &tokenErr) && tokenErr.Response != nil {
		status := tokenErr.Response.StatusCode
		return &APIError{
			Status:    status,
			ErrorCode: tokenErr.ErrorCode,
			Message:   "token request refused: " + tokenErr.ErrorDescription,
			Err:       sentinel(status, false),
		}
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntaxErr) || errors.As(err, &typeErr) {
		return fmt.Errorf("malformed response: %w", err)
	}
	// Transport errors, timeouts and canceled contexts alike.
	return fmt.Errorf("%w: %w", linking.ErrUnavailable, err)
}

// messageOf returns Auth0's message of a go-auth0 error, whose text is
// "<status> <error>: <message>".
func messageOf(err management.Error) string {
	s := err.Error()
	if _, msg, ok := strings.Cut(s, ": "); ok {
		return msg
	}
	return s
}

// errorAnswer is what the transport keeps of an error answer that go-auth0
// drops: Auth0's errorCode and, on a 429, X-RateLimit-Reset.
type errorAnswer struct {
	code  string
	reset time.Time
}

// An errorAnswers records the last error answer the transport sees for one
// Store call. A call puts one in its request context (see withErrorAnswers);
// the transport that New installs fills it in.
type errorAnswers struct {
	mu   sync.Mutex
	last errorAnswer
}

func (c *errorAnswers) set(a errorAnswer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = a
}

// get returns the last error answer, or the zero errorAnswer.
func (c *errorAnswers) get() errorAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

type errorAnswersKey struct{}

func withErrorAnswers(ctx context.Context) (context.Context, *errorAnswers) {
	c := new(errorAnswers)
	return context.WithValue(ctx, errorAnswersKey{}, c), c
}

// maxErrorBody bounds how much of an error answer errorCodeTransport reads.
const maxErrorBody = 64 << 10

// errorCodeTransport records the errorCode and rate limit reset of error
// answers into the errorAnswers of the request's context, and leaves the
// answer readable.
type errorCodeTransport struct {
	base http.RoundTripper
}

func (t errorCodeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	answers, _ := req.Context().Value(errorAnswersKey{}).(*errorAnswers)
	if err != nil || answers == nil || res.StatusCode < http.StatusBadRequest {
		return res, err
	}
	body, readErr := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	rest := res.Body
	res.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), rest}
	if readErr != nil {
		return res, nil
	}
	var a errorAnswer
	var e struct {
		ErrorCode string `json:"errorCode"`
	}
	if json.Unmarshal(body, &e) == nil {
		a.code = e.ErrorCode
	}
	if res.StatusCode == http.StatusTooManyRequests {
		if sec, err := strconv.ParseInt(res.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			a.reset = time.Unix(sec, 0)
		}
	}
	answers.set(a)
	return res, nil
}
