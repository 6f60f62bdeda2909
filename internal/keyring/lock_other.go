//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package keyring

// lockFile is a no-op where flock(2) is unavailable: Create is then serialised
// only within one Keyring, and concurrent creators in separate processes may
// lose a key.
func lockFile(string) (unlock func(), err error) {
	return func() {}, nil
}
