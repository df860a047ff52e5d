package postlogin

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers that carry a request's signature.
const (
	// HeaderTimestamp holds the time of signing, in unix seconds.
	HeaderTimestamp = "X-Linking-Timestamp"
	// HeaderSignature holds "v1=" and the hex HMAC-SHA256 of the timestamp,
	// a ".", and the raw body, keyed with the shared secret.
	HeaderSignature = "X-Linking-Signature"
)

// MinSecretLen is the shortest shared secret accepted, in bytes.
const MinSecretLen = 32

const signaturePrefix = "v1="

// Sign returns the value of the X-Linking-Signature header for body sent at
// ts with the shared secret: "v1=" followed by the lowercase hex
// HMAC-SHA256(secret, timestamp + "." + body), where timestamp is ts in unix
// seconds, in decimal, exactly as sent in X-Linking-Timestamp.
func Sign(secret []byte, ts time.Time, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// NewRequest returns a signed POST of req to url, timestamped now, as the
// Action sends it. A zero req.Version is sent as Version.
func NewRequest(ctx context.Context, url string, secret []byte, req Request) (*http.Request, error) {
	if req.Version == 0 {
		req.Version = Version
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("postlogin: encode request: %w", err)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("postlogin: %w", err)
	}
	now := time.Now()
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	r.Header.Set(HeaderSignature, Sign(secret, now, body))
	return r, nil
}

// verify checks the signature and the timestamp of a request whose body has
// been read in full, against every accepted secret, in constant time.
func verify(secrets [][]byte, h http.Header, body []byte, now time.Time, maxSkew time.Duration) *requestError {
	ts, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if ts == "" || sig == "" {
		return &requestError{401, CodeUnauthorized, "the request is not signed"}
	}
	hexSig, ok := strings.CutPrefix(sig, signaturePrefix)
	if !ok {
		return &requestError{401, CodeUnauthorized, "the signature is not of the form v1=<hex>"}
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return &requestError{401, CodeUnauthorized, "the signature is not of the form v1=<hex>"}
	}
	match := false
	for _, s := range secrets {
		// Every secret is tried, so that the time taken does not tell
		// which one matched.
		if hmac.Equal(got, mac(s, ts, body)) {
			match = true
		}
	}
	if !match {
		return &requestError{401, CodeUnauthorized, "the signature does not match"}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return &requestError{401, CodeUnauthorized, "the timestamp is not a positive number of unix seconds"}
	}
	// sec > 0 and now after 1970, so the difference cannot overflow.
	skew, limit := now.Unix()-sec, int64(maxSkew/time.Second)
	switch {
	case skew > limit:
		return &requestError{401, CodeStaleRequest,
			fmt.Sprintf("the timestamp is %ds in the past; at most %ds is accepted", skew, limit)}
	case -skew > limit:
		return &requestError{401, CodeStaleRequest,
			fmt.Sprintf("the timestamp is %ds in the future; at most %ds is accepted", -skew, limit)}
	}
	return nil
}
