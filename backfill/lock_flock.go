//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package backfill

import (
	"errors"
	"os"
	"syscall"
)

// lock takes an exclusive flock(2) lock on f without waiting; it is released
// when f is closed or the process ends, killed or not. It returns
// ErrJournalLocked when another open file holds the lock.
func lock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return ErrJournalLocked
		}
		return err
	}
}
