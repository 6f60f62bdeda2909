//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package keyring

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock(2) on path (creating it), blocking until it
// is free. flock locks belong to the open file, so two Keyrings in one process
// exclude each other just as two processes do.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}
