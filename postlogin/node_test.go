package postlogin_test

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/idlink/linking/postlogin/postlogintest"
)

// TestActionJS runs the Action's Node tests (action.test.js).
func TestActionJS(t *testing.T) {
	cmd := exec.Command(postlogintest.RequireNode(t), "--test", "--test-reporter=tap", "action.test.js")
	cmd.Env = append(os.Environ(), "NODE_OPTIONS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test action.test.js: %v\n%s", err, out)
	}
	pass := regexp.MustCompile(`(?m)^# pass (\d+)$`).FindSubmatch(out)
	if pass == nil {
		t.Fatalf("node --test printed no pass count:\n%s", out)
	}
	if n, _ := strconv.Atoi(string(pass[1])); n == 0 {
		t.Fatalf("node --test ran no test:\n%s", out)
	}
	t.Logf("node: %s tests passed", pass[1])
}
