package mgmt

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auth0/go-auth0/management"
	"golang.org/x/oauth2"

	"github.com/idlink/linking"
)

// ErrConfig means the Store is not set up to reach its tenant: wrong
// credentials, a domain, port or scheme that is not the tenant's, a
// certificate that is not trusted, or a token without a scope the call
// needs. Trying again does not help, so it never wraps
// linking.ErrUnavailable: no retry waits on it and no policy fails open on
// it. Store.CheckAccess reports it at startup.
var ErrConfig = errors.New("mgmt: configuration error")

// ErrUnauthorized means the Management API or its token endpoint refused the
// client's credentials or token (HTTP 401), or the token lacks a scope the
// call needs (HTTP 403). It wraps ErrConfig.
var ErrUnauthorized error = &wrapError{"mgmt: unauthorized", ErrConfig}

// wrapError is a sentinel error that wraps another.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

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
	// any other status of the API, which the Linker treats as fatal for the
	// login. The token endpoint's other 4xx answers are ErrConfig.
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

// classify turns an error of go-auth0 into one of a class callers branch on:
// an *APIError for an error answer of the API or of its token endpoint;
// ErrConfig for a transport error that says the client is not set up to
// reach the tenant (see configTransportError); linking.ErrUnavailable for any
// other transport error, a timeout or a canceled context. A response that
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
	// A refused token request: oauth2 reports it as a RetrieveError, inside
	// the transport error of the API call.
	var tokenErr *oauth2.RetrieveError
	if errors.As(err, &tokenErr) && tokenErr.Response != nil {
		status := tokenErr.Response.StatusCode
		return &APIError{
			Status:    status,
			ErrorCode: tokenErr.ErrorCode,
			Message:   "token request refused: " + tokenRefusal(tokenErr),
			Err:       tokenSentinel(status),
		}
	}
	if errors.Is(err, ErrConfig) || errors.Is(err, linking.ErrUnavailable) {
		return err // classified where it arose (see tokenSource.token, shared)
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntaxErr) || errors.As(err, &typeErr) {
		return fmt.Errorf("malformed response: %w", err)
	}
	if configTransportError(err) {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	// Other transport errors, timeouts and canceled contexts alike.
	return fmt.Errorf("%w: %w", linking.ErrUnavailable, err)
}

// tokenSentinel returns the sentinel for an error status of the token
// endpoint: 429 and 5xx may pass; 401 and 403 refuse the credentials; any
// other status says the domain is not an Auth0 tenant's (e.g. 400 for plain
// HTTP sent to an HTTPS port, 404 for a path that is no token endpoint).
func tokenSentinel(status int) error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrUnauthorized
	case status == http.StatusTooManyRequests:
		return linking.ErrRateLimited
	case status >= 500:
		return linking.ErrUnavailable
	}
	return ErrConfig
}

// maxRefusal bounds how much of a token answer without an OAuth2 error an
// error message quotes.
const maxRefusal = 200

// tokenRefusal returns what a refused token request says: its OAuth2 error
// description, or else the start of its body (e.g. "Client sent an HTTP
// request to an HTTPS server.").
func tokenRefusal(e *oauth2.RetrieveError) string {
	if e.ErrorDescription != "" {
		return e.ErrorDescription
	}
	body := strings.TrimSpace(string(e.Body))
	if len(body) > maxRefusal {
		body = body[:maxRefusal] + "..."
	}
	if body == "" {
		return http.StatusText(e.Response.StatusCode)
	}
	return body
}

// configTransportError reports whether a transport error says the client is
// not set up to reach the tenant, rather than that the tenant is out of
// reach for now: a host name that does not exist, a certificate that is not
// trusted or not the host's, or a server that does not speak TLS. Connection
// refused or reset, timeouts and DNS failures other than "no such host" are
// not: a wrong port is told apart from a tenant that is down by nothing.
func configTransportError(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsNotFound
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	// An HTTPS client that reached a plain HTTP server: the Transport
	// returns the RecordHeaderError, the Client turns it into
	// ErrSchemeMismatch.
	var recordErr tls.RecordHeaderError
	return errors.As(err, &certErr) || errors.As(err, &unknownAuthority) ||
		errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &recordErr) || errors.Is(err, http.ErrSchemeMismatch)
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

// A callRecord is what the transport learns of one Store call that go-auth0
// does not report: the last error answer, and a configuration error that
// ended the call. A call puts one in its request context (see
// withCallRecord); the transport that New installs fills it in.
type callRecord struct {
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	last   errorAnswer
	config error
}

type callRecordKey struct{}

// withCallRecord returns a context for one Store call, with a record that
// the transport fills in, and the cancel function of the context.
func withCallRecord(ctx context.Context) (context.Context, *callRecord, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	rec := &callRecord{cancel: cancel}
	return context.WithValue(ctx, callRecordKey{}, rec), rec, cancel
}

// callRecordOf returns the record of the Store call that sends req, or nil.
func callRecordOf(req *http.Request) *callRecord {
	rec, _ := req.Context().Value(callRecordKey{}).(*callRecord)
	return rec
}

// fail notes err, an error of an attempt of the call. A configuration error,
// or a request the rate budget refused, ends the call at once: go-auth0's
// retries (which try again on every transport error but an untrusted
// certificate, and would send the refused credentials again) stop waiting
// when the call's context is canceled.
func (r *callRecord) fail(err error) {
	if r == nil {
		return
	}
	c := err
	if !errors.Is(err, linking.ErrRateBudget) {
		if c = classify(err, errorAnswer{}, false); !errors.Is(c, ErrConfig) {
			return
		}
	}
	r.mu.Lock()
	r.config = c
	r.mu.Unlock()
	r.cancel(c)
}

// answered notes an error answer.
func (r *callRecord) answered(a errorAnswer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = a
}

// result returns the last error answer, or the zero errorAnswer, and the
// error that ended the call (a configuration error, or the rate budget's),
// or nil.
func (r *callRecord) result() (errorAnswer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.config
}

// maxErrorBody bounds how much of an error answer the transport reads.
const maxErrorBody = 64 << 10

// readErrorAnswer reads Auth0's errorCode and, on a 429, the rate limit
// reset of an error answer, and leaves the answer readable.
func readErrorAnswer(res *http.Response) errorAnswer {
	var a errorAnswer
	body, readErr := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	rest := res.Body
	res.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), rest}
	if readErr != nil {
		return a
	}
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
	return a
}
