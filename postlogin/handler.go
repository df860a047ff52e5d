package postlogin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/idlink/linking"
)

// Paths that Handler.Mux serves.
const (
	// Path is where the Action posts its requests.
	Path = "/v1/post-login"
	// HealthPath answers 200 while the process serves requests. It does not
	// call the store.
	HealthPath = "/healthz"
)

// Defaults of Config.
const (
	// DefaultTimeout is how long the Linker may take for one request. It
	// stays below the Action's default wait (6 s), itself well inside the
	// 20 s Auth0 gives an Action, so that the Handler answers first.
	DefaultTimeout = 4 * time.Second
	// MaxTimeout is the longest Config.Timeout accepted: the Action must
	// still be able to apply the answer within its 20 s.
	MaxTimeout = 15 * time.Second
	// DefaultMaxSkew is how far a request's timestamp may be from the
	// Handler's clock, either way.
	DefaultMaxSkew = 5 * time.Minute
	// DefaultMaxBodyBytes bounds the size of a request body.
	DefaultMaxBodyBytes = 64 << 10
)

// ErrWeakSecret is returned by NewHandler for a secret shorter than
// MinSecretLen bytes.
var ErrWeakSecret = fmt.Errorf("postlogin: secret shorter than %d bytes", MinSecretLen)

// Messages of deny answers: fixed texts, safe to show the person.
const (
	messageAmbiguous   = "We could not sign you in because more than one account uses this email address. Please contact support."
	messageUnavailable = "Sign-in is temporarily unavailable. Please try again in a moment."
	messageDenied      = "We could not sign you in. Please contact support."
)

// Config configures a Handler. Only Secret is required.
type Config struct {
	// Secret is the key shared with the Action (its LINKING_SECRET), at
	// least MinSecretLen bytes. Required.
	Secret []byte
	// PreviousSecrets are also accepted, so that the secret can be changed
	// without refusing logins: add the new secret as Secret and the old one
	// here, update the Action's LINKING_SECRET, then drop the old one.
	PreviousSecrets [][]byte
	// Timeout bounds the Linker's work for one request; it must not exceed
	// MaxTimeout. Zero means DefaultTimeout. When it runs out, the answer
	// follows the Linker's Policy.OnStoreError.
	Timeout time.Duration
	// MaxSkew is how far a request's timestamp may be from Now, either way.
	// Zero means DefaultMaxSkew.
	MaxSkew time.Duration
	// MaxBodyBytes bounds a request's body. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now is the Handler's clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives one record per request. Nil logs nothing. Internal
	// errors are logged here and never sent in a response.
	Logger *slog.Logger
	// Confirm configures confirm before linking (the consent page and the
	// proof login), required exactly when the Linker's Policy.Confirm is not
	// linking.ConfirmNever. Nil: the Handler answers only the Action's
	// requests.
	Confirm *ConfirmConfig
}

// Handler answers the post-login Action's signed requests with a
// linking.Linker. It serves one path (mount it at Path, or use Mux).
//
// A Handler is safe for concurrent use.
type Handler struct {
	// linker decides the requests that accept ActionConfirm; auto, the
	// same Linker without confirm mode, decides the others.
	linker  *linking.Linker
	auto    *linking.Linker
	confirm *confirmer
	secrets [][]byte
	timeout time.Duration
	maxSkew time.Duration
	maxBody int64
	now     func() time.Time
	logger  *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a Handler that decides with l. It returns ErrWeakSecret
// when a secret is shorter than MinSecretLen, and an error for a nil Linker,
// for negative or too long durations, and for a confirm mode without
// c.Confirm (or the reverse) or a ConfirmConfig that is incomplete.
//
// A request that does not accept ActionConfirm is decided by the rule alone,
// as if l's Policy.Confirm were linking.ConfirmNever.
func NewHandler(l *linking.Linker, c Config) (*Handler, error) {
	if l == nil {
		return nil, errors.New("postlogin: nil Linker")
	}
	h := &Handler{
		linker:  l,
		auto:    l,
		timeout: cmp.Or(c.Timeout, DefaultTimeout),
		maxSkew: cmp.Or(c.MaxSkew, DefaultMaxSkew),
		maxBody: cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes),
		now:     c.Now,
		logger:  c.Logger,
	}
	for _, s := range append([][]byte{c.Secret}, c.PreviousSecrets...) {
		if len(s) < MinSecretLen {
			return nil, ErrWeakSecret
		}
		h.secrets = append(h.secrets, append([]byte(nil), s...))
	}
	switch {
	case h.timeout < 0 || h.timeout > MaxTimeout:
		return nil, fmt.Errorf("postlogin: Timeout %v is outside (0, %v]", h.timeout, MaxTimeout)
	case h.maxSkew < time.Second:
		return nil, fmt.Errorf("postlogin: MaxSkew %v is below one second", h.maxSkew)
	case h.maxBody < 0:
		return nil, fmt.Errorf("postlogin: MaxBodyBytes %d is negative", h.maxBody)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Confirm != nil:
		var err error
		if h.confirm, err = newConfirmer(l, *c.Confirm, h.secrets, h.now, h.logger, h.timeout); err != nil {
			return nil, err
		}
		h.auto = automatic(l)
	case l.Policy.Confirm != linking.ConfirmNever:
		return nil, errors.New("postlogin: the Linker's Policy.Confirm asks for proofs, which needs Config.Confirm")
	}
	return h, nil
}

// automatic returns a Linker that does what l does, without confirm mode.
func automatic(l *linking.Linker) *linking.Linker {
	p := l.Policy
	p.Confirm = linking.ConfirmNever
	return &linking.Linker{
		Store: l.Store, Policy: p, Logger: l.Logger, Observe: l.Observe,
		Metadata: l.Metadata, RevokeSessions: l.RevokeSessions, Notifier: l.Notifier,
		SearchCaseVariants: l.SearchCaseVariants, Timeout: l.Timeout, ReadBackTimeout: l.ReadBackTimeout,
	}
}

// Mux returns a mux that serves h at Path, a liveness check at HealthPath,
// and, when Config.Confirm is set, the consent page at ConfirmPath and the
// proof's return at CallbackPath.
func (h *Handler) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	if h.confirm != nil {
		mux.HandleFunc(ConfirmPath, h.confirm.serveConfirm)
		mux.HandleFunc(CallbackPath, h.confirm.serveCallback)
	}
	mux.HandleFunc(HealthPath, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Version, CodeMethodNotAllowed, "use GET"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// ServeHTTP answers one request of the Action. A request that is not a POST
// of application/json, is larger than MaxBodyBytes, is not correctly signed,
// is stale, or is not a valid request of this schema version gets a 4xx with
// an ErrorResponse, and the Linker is not called. Otherwise the answer is 200
// with a Response made from the Linker's result; a store that fails or
// outlives Timeout yields the Linker's Policy.OnStoreError answer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, rerr := h.readRequest(w, r)
	if rerr != nil {
		h.logger.LogAttrs(r.Context(), slog.LevelWarn, "postlogin: request refused",
			slog.Int("status", rerr.status), slog.String("error", rerr.code),
			slog.String("detail", rerr.message), slog.String("remote_addr", r.RemoteAddr))
		writeJSON(w, rerr.status, ErrorResponse{Version, rerr.code, rerr.message})
		return
	}
	login, err := req.Login()
	if err != nil {
		h.logger.LogAttrs(r.Context(), slog.LevelWarn, "postlogin: request refused",
			slog.Int("status", http.StatusBadRequest), slog.String("error", CodeInvalidRequest),
			slog.String("detail", err.Error()), slog.String("transaction_id", req.TransactionID))
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Version, CodeInvalidRequest, err.Error()})
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	linker := h.auto
	if h.confirm != nil && slices.Contains(req.Accept, ActionConfirm) {
		linker = h.linker
	}
	result, err := linker.Link(ctx, login)
	resp := respond(login, result, err)
	if linker != h.linker {
		// A login that could not be sent to the consent page may have an
		// account to prove at the next one: nothing is final.
		resp.Remember = false
	}

	level, attrs := slog.LevelInfo, []slog.Attr{
		slog.String("transaction_id", req.TransactionID),
		slog.String("user_id", login.User.ID),
		slog.String("identity", login.Identity.UserIDOf()),
		slog.String("action", string(resp.Action)),
		slog.String("reason", string(resp.Reason)),
		slog.Bool("failed_open", resp.FailedOpen),
		slog.Bool("remember", resp.Remember),
	}
	if resp.PrimaryUserID != "" {
		attrs = append(attrs, slog.String("primary_user_id", resp.PrimaryUserID))
	}
	if err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if result.SideEffectErr != nil {
		// The link stands; what failed after it is for the operator.
		level = max(level, slog.LevelWarn)
		attrs = append(attrs, slog.String("side_effect_error", result.SideEffectErr.Error()))
	}
	h.logger.LogAttrs(r.Context(), level, "postlogin: answered", attrs...)
	writeJSON(w, http.StatusOK, resp)
}

// readRequest checks everything about a request that does not need the
// Linker, in this order: method, content type, size (the body is read in
// full), signature and timestamp, and only then the JSON.
func (h *Handler) readRequest(w http.ResponseWriter, r *http.Request) (Request, *requestError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return Request{}, &requestError{405, CodeMethodNotAllowed, "use POST"}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return Request{}, &requestError{415, CodeUnsupportedMediaType, "the body must be application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		if tooLarge := new(http.MaxBytesError); errors.As(err, &tooLarge) {
			return Request{}, &requestError{413, CodeBodyTooLarge, fmt.Sprintf("the body is larger than %d bytes", h.maxBody)}
		}
		return Request{}, &requestError{400, CodeInvalidRequest, "the body could not be read"}
	}
	if rerr := verify(h.secrets, r.Header, body, h.now(), h.maxSkew); rerr != nil {
		return Request{}, rerr
	}
	return decodeRequest(body)
}

// respond turns the Linker's result for login into the Action's answer.
func respond(login linking.Login, r linking.Result, err error) Response {
	resp := Response{Version: Version, Reason: r.Reason, FailedOpen: r.FailedOpen()}
	switch {
	case r.Action == linking.ActionLink && r.PrimaryUserID != "":
		resp.Action = ActionSetPrimaryUser
		resp.PrimaryUserID = r.PrimaryUserID
	case r.Action == linking.ActionConfirm && len(r.Decision.Confirm) > 0:
		resp.Action = ActionConfirm
		for _, u := range r.Decision.Confirm[:min(len(r.Decision.Confirm), MaxCandidates)] {
			resp.Candidates = append(resp.Candidates, candidate(u))
		}
	case r.Action == linking.ActionNone, r.Action == linking.ActionAbsorb:
		// After absorbing others, the login goes on as its own user.
		resp.Action = ActionNone
		resp.Remember = err == nil && !r.Stale && isFinal(r.Reason) &&
			login.User.Email != "" && login.User.EmailVerified
	default:
		// ActionDeny, and anything this package does not know.
		resp.Action = ActionDeny
		resp.FailedOpen = false
		resp.Message = denyMessage(r.Reason)
	}
	return resp
}

// isFinal reports whether a "nothing to do" reason will stay the answer for
// later logins with the same verified email, so that the Action may stop
// asking.
func isFinal(reason linking.Reason) bool {
	return reason == linking.ReasonNoCandidate || reason == linking.ReasonLoginIsPrimary
}

func denyMessage(reason linking.Reason) string {
	switch reason {
	case linking.ReasonAmbiguous:
		return messageAmbiguous
	case linking.ReasonStoreError, linking.ReasonLinkUnconfirmed, linking.ReasonRateBudget:
		return messageUnavailable
	}
	return messageDenied
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
