//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package backfill

import (
	"fmt"
	"os"
	"runtime"
)

// lock refuses: without flock(2), one writer per journal cannot be
// guaranteed, and Apply and Undo write only under that guarantee.
func lock(*os.File) error {
	return fmt.Errorf("no journal lock on %s", runtime.GOOS)
}
