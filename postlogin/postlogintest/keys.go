package postlogintest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// signingKey is one RS256 key of the tenant.
type signingKey struct {
	kid    string
	key    *rsa.PrivateKey
	signer jose.Signer
}

// newSigningKey returns a new 2048-bit RS256 key with a random kid.
func newSigningKey() (signingKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return signingKey{}, fmt.Errorf("postlogintest: signing key: %w", err)
	}
	kid := randomHex(8)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return signingKey{}, fmt.Errorf("postlogintest: signing key: %w", err)
	}
	return signingKey{kid: kid, key: key, signer: signer}, nil
}

// RotateKey adds a new signing key and signs every token with it from now
// on, as a signing key rotation does: the JWKS lists it at once, and keeps
// listing the keys before it until RetireKey. It returns the new key's kid.
func (e *Emulator) RotateKey() (string, error) {
	k, err := newSigningKey()
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys = append(e.keys, k)
	return k.kid, nil
}

// RetireKey removes the key kid from the JWKS, as revoking a previous
// signing key does; tokens it signed no longer verify. The signing key
// cannot be retired: RetireKey returns an error for it, and for a kid the
// tenant does not have.
func (e *Emulator) RetireKey(kid string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := slices.IndexFunc(e.keys, func(k signingKey) bool { return k.kid == kid })
	switch {
	case i < 0:
		return fmt.Errorf("postlogintest: retire key %q: no such key", kid)
	case i == len(e.keys)-1:
		return fmt.Errorf("postlogintest: retire key %q: it is the signing key; rotate first", kid)
	}
	e.keys = slices.Delete(e.keys, i, i+1)
	return nil
}

// KeyIDs returns the kids of the keys the JWKS lists, the signing key last.
func (e *Emulator) KeyIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	kids := make([]string, len(e.keys))
	for i, k := range e.keys {
		kids[i] = k.kid
	}
	return kids
}

// jwks returns the JSON Web Key Set of the tenant's public keys.
func (e *Emulator) jwks() jose.JSONWebKeySet {
	e.mu.Lock()
	defer e.mu.Unlock()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(e.keys))}
	for _, k := range e.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: string(jose.RS256), Use: "sig"})
	}
	return set
}

// sign returns claims as a JWT signed with the current signing key.
func (e *Emulator) sign(claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	signer := e.keys[len(e.keys)-1].signer
	e.mu.Unlock()
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
