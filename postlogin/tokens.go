package postlogin

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Token types: the "typ" claim of each direction's token, so that a token of
// one direction is never taken for one of the other, even by a verifier given
// the wrong key.
const (
	// TokenTypeConfirm is the type of a ConfirmToken: from the Action to
	// the consent page.
	TokenTypeConfirm = "linking.confirm"
	// TokenTypeContinue is the type of a ContinueToken: from the service
	// back to the Action, through Auth0's /continue.
	TokenTypeContinue = "linking.continue"
)

// Lifetimes of the tokens.
const (
	// MaxConfirmTokenLifetime is the longest a ConfirmToken may still be
	// valid when it arrives: the Action asks for 120 seconds; a token whose
	// expiry lies further ahead is refused.
	MaxConfirmTokenLifetime = 15 * time.Minute
	// ContinueTokenLifetime is how long a ContinueToken is valid: the
	// browser posts it at once, or when the person presses the button.
	ContinueTokenLifetime = 2 * time.Minute
	// tokenLeeway absorbs the clock difference between Auth0 and the
	// service when checking iat and exp.
	tokenLeeway = 10 * time.Second
	// maxTokenLen bounds a token before it is parsed.
	maxTokenLen = 16 << 10
)

// Outcomes of a ContinueToken.
const (
	// OutcomeLinked: the person proved the account, the login's identity is
	// linked into it; the Action calls setPrimaryUser(primary_user_id).
	OutcomeLinked = "linked"
	// OutcomeNotNow: nothing linked; the login goes on, and the person is
	// asked again at a later login.
	OutcomeNotNow = "not_now"
	// OutcomeDeclined: the person said the accounts are not theirs; the
	// login goes on and the Action remembers the declined accounts.
	OutcomeDeclined = "declined"
	// OutcomeDenied: the link could not be made or confirmed; the Action
	// denies the login with the token's message, to be tried again.
	OutcomeDenied = "denied"
)

// ConfirmToken is the payload of the token the Action makes with
// api.redirect.encodeToken (HS256, keyed with LINKING_CONFIRM_SECRET) and
// sends with the person to ConfirmPath as the session_token query parameter.
// Auth0 sets iss, sub, iat and exp; the Action sets the rest.
type ConfirmToken struct {
	// Issuer is the tenant's domain, as encodeToken writes it, e.g.
	// "tenant.eu.auth0.com": the host of ConfirmConfig.Issuer.
	Issuer string `json:"iss"`
	// Subject is the login's user id; it must equal Login.User.UserID.
	Subject string `json:"sub"`
	// IssuedAt and Expiry are unix seconds.
	IssuedAt int64 `json:"iat"`
	Expiry   int64 `json:"exp"`
	// Type is TokenTypeConfirm.
	Type string `json:"typ"`
	// Login is the request the Action sent for this login (without Accept).
	Login Request `json:"login"`
	// Candidates are the accounts offered, as Response.Candidates had them,
	// less those the person declined before: 1 to MaxCandidates.
	Candidates []User `json:"candidates"`
}

// ContinueToken is the payload of the token the service signs (HS256, keyed
// with LINKING_CONTINUE_SECRET) and the browser posts to the tenant's
// /continue as session_token. The Action reads it with
// api.redirect.validateToken, which checks the signature, exp and state, and
// then checks Type and that Subject is the login's user.
type ContinueToken struct {
	// Issuer is the service's BaseURL.
	Issuer string `json:"iss"`
	// Subject is the login's user id (event.user.user_id).
	Subject string `json:"sub"`
	// State is Auth0's state of the login transaction.
	State string `json:"state"`
	// IssuedAt and Expiry are unix seconds.
	IssuedAt int64 `json:"iat"`
	Expiry   int64 `json:"exp"`
	// ID is unique to each token.
	ID string `json:"jti"`
	// Type is TokenTypeContinue.
	Type string `json:"typ"`
	// Outcome is one of the Outcome constants.
	Outcome string `json:"outcome"`
	// PrimaryUserID is set with OutcomeLinked: the user the login must end
	// as.
	PrimaryUserID string `json:"primary_user_id,omitempty"`
	// Declined are the declined accounts' user ids, with OutcomeDeclined.
	Declined []string `json:"declined,omitempty"`
	// Reason is the linking.Reason of the result, for logs.
	Reason string `json:"reason,omitempty"`
	// Message is a fixed text, safe to show the person, with OutcomeDenied.
	Message string `json:"message,omitempty"`
}

// errToken is wrapped by every refusal of a ConfirmToken.
var errToken = errors.New("postlogin: invalid confirm token")

// verifyConfirmToken returns the payload of raw when it is a ConfirmToken
// signed with HS256 and secret (no other algorithm is accepted), issued by
// issuer, not expired nor valid for longer than MaxConfirmTokenLifetime, and
// consistent.
func verifyConfirmToken(raw string, secret []byte, issuer string, now time.Time) (ConfirmToken, error) {
	var t ConfirmToken
	if len(raw) > maxTokenLen {
		return t, fmt.Errorf("%w: longer than %d bytes", errToken, maxTokenLen)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		return t, fmt.Errorf("%w: %w", errToken, err)
	}
	if err := tok.Claims(secret, &t); err != nil {
		return t, fmt.Errorf("%w: %w", errToken, err)
	}
	exp, iat := time.Unix(t.Expiry, 0), time.Unix(t.IssuedAt, 0)
	switch {
	case t.Type != TokenTypeConfirm:
		return t, fmt.Errorf("%w: typ %q, want %q", errToken, t.Type, TokenTypeConfirm)
	case t.Issuer != issuer:
		return t, fmt.Errorf("%w: iss %q, want %q", errToken, t.Issuer, issuer)
	case t.Expiry == 0 || !now.Before(exp.Add(tokenLeeway)):
		return t, fmt.Errorf("%w: expired or without exp", errToken)
	case exp.Sub(now) > MaxConfirmTokenLifetime:
		return t, fmt.Errorf("%w: valid for %v, longer than %v", errToken, exp.Sub(now), MaxConfirmTokenLifetime)
	case t.IssuedAt == 0 || iat.After(now.Add(tokenLeeway)):
		return t, fmt.Errorf("%w: iat missing or in the future", errToken)
	case t.Subject == "" || t.Subject != t.Login.User.UserID:
		return t, fmt.Errorf("%w: sub %q is not the login's user %q", errToken, t.Subject, t.Login.User.UserID)
	case len(t.Candidates) == 0 || len(t.Candidates) > MaxCandidates:
		return t, fmt.Errorf("%w: %d candidates, want 1 to %d", errToken, len(t.Candidates), MaxCandidates)
	}
	if _, err := t.Login.Login(); err != nil {
		return t, fmt.Errorf("%w: %w", errToken, err)
	}
	for _, c := range t.Candidates {
		if c.UserID == "" || c.UserID == t.Subject {
			return t, fmt.Errorf("%w: candidate %q", errToken, c.UserID)
		}
	}
	return t, nil
}

// signContinueToken returns t signed with HS256 and secret, as a compact JWT.
func signContinueToken(secret []byte, t ContinueToken) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("postlogin: continue token: %w", err)
	}
	s, err := jwt.Signed(signer).Claims(t).Serialize()
	if err != nil {
		return "", fmt.Errorf("postlogin: continue token: %w", err)
	}
	return s, nil
}
