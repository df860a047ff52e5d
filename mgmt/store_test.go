package mgmt_test

import (
	"testing"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

// TestConformance runs the UserStore conformance suite against mgmt.Store,
// through the real go-auth0 SDK, over HTTP, against the emulator: the same
// suite the in-memory tenant passes.
func TestConformance(t *testing.T) {
	linkingtest.TestStore(t, func(t *testing.T, users []linking.User) linking.UserStore {
		return newServer(t, users).Store(t)
	})
}
