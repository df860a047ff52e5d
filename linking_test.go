package linking_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/idlink/linking"
)

func TestUserMainIdentity(t *testing.T) {
	db := linking.Identity{Provider: "auth0", UserID: "63d17c6a", Connection: "Username-Password-Authentication"}
	otp := linking.Identity{Provider: "email", UserID: "6f1c2b3a", Connection: "email"}
	tests := []struct {
		name   string
		user   linking.User
		want   linking.Identity
		wantOK bool
	}{
		{"the only identity", linking.User{ID: "auth0|63d17c6a", Identities: []linking.Identity{db}}, db, true},
		{"a primary, main identity first", linking.User{ID: "auth0|63d17c6a", Identities: []linking.Identity{db, otp}}, db, true},
		{"a primary, main identity second", linking.User{ID: "email|6f1c2b3a", Identities: []linking.Identity{db, otp}}, otp, true},
		{"no identity the id is made from: none, not the first", linking.User{ID: "auth0|other", Identities: []linking.Identity{db, otp}}, linking.Identity{}, false},
		{"no identities", linking.User{ID: "auth0|63d17c6a"}, linking.Identity{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.user.MainIdentity()
			if ok != tt.wantOK {
				t.Errorf("ok: got %v, want %v", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("MainIdentity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrRateLimitedIsUnavailable(t *testing.T) {
	err := fmt.Errorf("mgmt: look up users by email: 429: %w", linking.ErrRateLimited)
	if !errors.Is(err, linking.ErrRateLimited) || !errors.Is(err, linking.ErrUnavailable) {
		t.Errorf("%v: want errors.Is ErrRateLimited and ErrUnavailable", err)
	}
	if errors.Is(linking.ErrUnavailable, linking.ErrRateLimited) {
		t.Error("ErrUnavailable must not be ErrRateLimited")
	}
}
