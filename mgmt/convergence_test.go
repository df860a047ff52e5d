package mgmt_test

import (
	"testing"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// TestConvergence: primary selection through go-auth0 and the emulator, for
// a few of the people of linkingtest.TestConvergence.
func TestConvergence(t *testing.T) {
	t.Parallel()
	linkingtest.TestConvergence(t, 12, func(t *testing.T, tenant *linkingtest.Tenant) linking.UserStore {
		srv := mgmttest.NewServer(tenant)
		t.Cleanup(srv.Close)
		return srv.Store(t)
	})
}
