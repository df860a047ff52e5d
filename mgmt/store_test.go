package mgmt_test

import (
	"testing"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// TestConformance runs the UserStore conformance suite against mgmt.Store,
// through the real go-auth0 SDK, over HTTP, against the emulator: the same
// suite the in-memory tenant passes.
func TestConformance(t *testing.T) {
	linkingtest.TestStore(t, func(t *testing.T, users []linking.User) linking.UserStore {
		return newServer(t, users).Store(t)
	})
}

// TestSideEffects: metadata moves and session revocation through go-auth0
// and the emulator, with the metadata updates counted by the emulator.
func TestSideEffects(t *testing.T) {
	linkingtest.TestSideEffects(t, func(t *testing.T, tenant *linkingtest.Tenant) (linking.UserStore, func() int) {
		srv := mgmttest.NewServer(tenant)
		t.Cleanup(srv.Close)
		return srv.Store(t), func() int { return srv.Requests(mgmttest.RouteUpdateUser) }
	})
}
