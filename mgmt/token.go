package mgmt

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/sync/singleflight"

	"github.com/idlink/linking"
)

// tokenSource gets the access token of a client credentials grant and keeps
// it until shortly before it expires. Concurrent callers that find no valid
// token share one token request, which runs on its own (see shared).
type tokenSource struct {
	cfg *clientcredentials.Config
	// ctx holds the values of the ctx given to New, without its
	// cancellation, and the client for token requests (oauth2.HTTPClient).
	ctx context.Context

	group singleflight.Group
	mu    sync.Mutex
	tok   *oauth2.Token
}

// newTokenSource returns the token source of the tenant at baseURL (e.g.
// "https://example.eu.auth0.com"), for the audience of its Management API,
// sending its token requests with client.
func newTokenSource(ctx context.Context, baseURL, clientID, clientSecret string, client *http.Client) *tokenSource {
	return &tokenSource{
		cfg: &clientcredentials.Config{
			ClientID:       clientID,
			ClientSecret:   clientSecret,
			TokenURL:       baseURL + "/oauth/token",
			EndpointParams: url.Values{"audience": {baseURL + "/api/v2/"}},
		},
		ctx: context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, client),
	}
}

// token returns a valid token, from the cache or from a token request. It
// waits for the request as long as ctx allows. A token answer that holds no
// token is an error wrapping ErrConfig.
func (s *tokenSource) token(ctx context.Context) (*oauth2.Token, error) {
	if tok := s.cached(); tok != nil {
		return tok, nil
	}
	return shared(ctx, &s.group, func() (*oauth2.Token, error) {
		if tok := s.cached(); tok != nil {
			return tok, nil // got by a request that ended since the check above
		}
		ctx, cancel := context.WithTimeout(s.ctx, DefaultTimeout)
		defer cancel()
		tok, err := s.cfg.Token(ctx)
		if err != nil {
			var retrieveErr *oauth2.RetrieveError
			var urlErr *url.Error
			if !errors.As(err, &retrieveErr) && !errors.As(err, &urlErr) {
				// A 2xx answer that is not a token, which oauth2 gives no
				// type (nor to a body cut short, taken for one too): the
				// domain serves something else than an Auth0 tenant.
				return nil, fmt.Errorf("%w: the token endpoint %s answered no token: %w", ErrConfig, s.cfg.TokenURL, err)
			}
			return nil, err
		}
		s.mu.Lock()
		s.tok = tok
		s.mu.Unlock()
		return tok, nil
	})
}

// cached returns the cached token while it is valid, or nil.
func (s *tokenSource) cached() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok.Valid() {
		return s.tok
	}
	return nil
}

// shared runs fn once for all the callers that call shared with g while it
// runs, and returns its result to each, waiting for it as long as ctx
// allows (then the error wraps linking.ErrUnavailable and the cause of
// ctx). fn runs on its own: a caller that gives up does not end it for the
// others.
func shared[T any](ctx context.Context, g *singleflight.Group, fn func() (T, error)) (T, error) {
	ch := g.DoChan("", func() (any, error) { return fn() })
	select {
	case r := <-ch:
		v, _ := r.Val.(T)
		return v, r.Err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%w: %w", linking.ErrUnavailable, context.Cause(ctx))
	}
}

// scopesOf returns the scopes granted to tok: the scope of the token answer,
// as Auth0 sends it, or else the scope claim of the access token when it is
// a JWT. ok is false when neither tells.
func scopesOf(tok *oauth2.Token) (scopes []string, ok bool) {
	if s, isString := tok.Extra("scope").(string); isString {
		return strings.Fields(s), true
	}
	parts := strings.Split(tok.AccessToken, ".")
	if len(parts) != 3 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims struct {
		Scope *string `json:"scope"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Scope == nil {
		return nil, false
	}
	return strings.Fields(*claims.Scope), true
}

// Scopes returns the scopes the Store's linking needs: read:users and
// update:users, and read:connections when ResolveConnectionIDs is set.
func (s *Store) Scopes() []string {
	need := []string{"read:users", "update:users"}
	if s.ResolveConnectionIDs {
		need = append(need, "read:connections")
	}
	return need
}

// CheckAccess gets the Store's access token now, the one its calls then use
// until it expires, and checks that it grants scopes: those given, or, with
// none, Scopes (a program that also revokes sessions adds
// delete:refresh_tokens and delete:sessions to Scopes; one that only exports
// users asks for read:users). It is what a program calls at startup, with a
// short deadline, to stop on a mistake before serving rather than refuse
// every later call.
//
// The error wraps ErrConfig for a configuration error: credentials refused
// (ErrUnauthorized), a domain that does not exist or is no Auth0 tenant, a
// scheme or certificate that does not match, a missing scope (named in the
// error). It wraps linking.ErrUnavailable when the tenant is merely out of
// reach (connection refused, timeout, 5xx): the program may start and call
// CheckAccess again later. It makes one token request, or none while the
// Store holds a valid token. A Store not built by New cannot tell: the
// error wraps ErrConfig.
func (s *Store) CheckAccess(ctx context.Context, scopes ...string) error {
	if s.tokens == nil {
		return fmt.Errorf("mgmt: check access: %w: the Store was not built by New", ErrConfig)
	}
	tok, err := s.tokens.token(ctx)
	if err != nil {
		return fmt.Errorf("mgmt: check access: %w", classify(err, errorAnswer{}, false))
	}
	granted, ok := scopesOf(tok)
	if !ok {
		return fmt.Errorf("mgmt: check access: %w: the token answer names no scope", ErrConfig)
	}
	need := scopes
	if len(need) == 0 {
		need = s.Scopes()
	}
	var missing []string
	for _, scope := range need {
		if !slices.Contains(granted, scope) {
			missing = append(missing, scope)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("mgmt: check access: %w: the client's token lacks the scopes %s (granted: %s); grant them to the application for the Auth0 Management API",
			ErrConfig, strings.Join(missing, " "), strings.Join(granted, " "))
	}
	return nil
}
