// Package postlogin is the bridge between an Auth0 post-login Action and the
// linking rule: an http.Handler that answers the Action's signed requests
// with a linking.Linker, and the Action's JavaScript, embedded (see
// ActionSource).
//
// One login goes one way only:
//
//	Action (Node, in Auth0) --signed HTTPS POST--> Handler --> linking.Linker --> linking.UserStore
//
// and the Action applies the answer: api.authentication.setPrimaryUser,
// api.access.deny, or nothing.
//
// # Schema
//
// Requests and responses are JSON documents that carry a "version": the
// schema's major version, an integer, 1 today. Fields are added to a version
// without changing it, so both sides ignore fields they do not know; a change
// that an old reader would misread gets a new version, and the Handler answers
// a request of a version it does not know with 400 unsupported_version.
// SCHEMA.md, next to this file, describes every field.
//
// A request (Request) carries the part of the Action's event the rule needs:
//
//	{"version":1,
//	 "user":{"user_id":"email|6f1c","email":"jane@example.com","email_verified":true,
//	         "identities":[{"provider":"email","user_id":"6f1c","connection":"email","isSocial":false}]},
//	 "connection":{"name":"email","strategy":"email"},
//	 "transaction_id":"tx_123"}
//
// The identity that authenticated the login is the one identity of the user
// whose connection equals connection.name and whose provider equals
// connection.strategy; it is the only identity the Linker may link (rule 7 of
// docs/security.md). A request where none or several match is invalid.
//
// A response (Response) tells the Action what to do:
//
//	{"version":1,"action":"set_primary_user","primary_user_id":"auth0|63d1","reason":"linked",
//	 "failed_open":false,"remember":false}
//
// action is "set_primary_user" (call setPrimaryUser with primary_user_id),
// "none" (let the login go on) or "deny" (call api.access.deny with message).
// remember tells the Action it may write a marker into the user's
// app_metadata so that later logins with the same verified email skip the
// call. Errors (every 4xx) have the body ErrorResponse.
//
// # Authentication
//
// Every request is signed with a secret shared by the Action and the service,
// at least MinSecretLen bytes long:
//
//	X-Linking-Timestamp: <unix seconds>
//	X-Linking-Signature: v1=<hex of HMAC-SHA256(secret, timestamp + "." + body)>
//
// The Handler reads the body (at most Config.MaxBodyBytes) before it checks
// anything in it, compares signatures in constant time, refuses timestamps
// further than Config.MaxSkew from its clock, and parses JSON only once the
// signature holds. A request it refuses never reaches the Linker. Sign and
// NewRequest make such requests from Go.
//
// A signed request can be replayed within the skew window by whoever captures
// it; it only repeats the question for the same login, and the Linker's answer
// to a repeated question is the same (a link already in place is found by
// reading the primary back). HTTPS between the Action and the service keeps
// requests from being captured.
//
// # Confirm before linking
//
// With a linking.Policy.Confirm other than ConfirmNever (and Config.Confirm
// set), an account the automatic rule would not link into — an unverified or
// untrusted one, one of several — or, with ConfirmAlways, every account, is
// linked only after the person proves it, by a fresh login to exactly that
// account:
//
//	Action --confirm token--> GET ConfirmPath (consent page) --Link--> tenant /authorize (prompt=login, max_age=0, PKCE, nonce)
//	  --> GET CallbackPath (ID token: sub == the chosen account) --> Linker.LinkProven
//	  --> POST tenant /continue (continue token, bound to Auth0's state) --> onContinuePostLogin: setPrimaryUser
//
// The Handler answers ActionConfirm only to an Action whose request accepts
// it (Request.Accept), which the shipped Action sends only when
// api.redirect.canRedirect() is true; any other request is decided by the
// automatic rule alone. The Action's token to the consent page
// (ConfirmToken) and the service's token back to Auth0 (ContinueToken) are
// HS256 JWTs with a secret each (ConfirmConfig.ConfirmSecret, ContinueSecret),
// distinct from each other and from Config.Secret, and a "typ" each, so that
// neither is taken for the other. The consent page and the callback keep
// their state on the server (ConfirmConfig.Store), bound to a __Host- cookie;
// the form carries nothing but the choice and a CSRF token. A confirmed
// login costs what an automatic one does: one lookup, when the Action asks,
// and one link. SCHEMA.md describes both tokens and every check.
//
// # Time budget
//
// Auth0 gives an Action 20 seconds in all. The Handler runs the Linker under
// a deadline (Config.Timeout, 4 s by default) derived from the request's
// context, and the Action waits a little longer (6 s by default), so that a
// slow store ends in the Handler's answer (per linking.Policy.OnStoreError)
// rather than in the Action's timeout.
package postlogin

import _ "embed"

//go:embed action.js
var actionJS string

// ActionSource returns the JavaScript of the post-login Action that calls
// the Handler: the code to paste into the Action editor in the Auth0
// Dashboard. It reads the Action secrets LINKING_URL, LINKING_SECRET and,
// optionally, LINKING_FAIL_OPEN and LINKING_TIMEOUT_MS; for confirm before
// linking, LINKING_CONFIRM_SECRET, LINKING_CONTINUE_SECRET and
// LINKING_CLIENT_ID.
func ActionSource() string { return actionJS }
