package blob

import (
	"errors"

	"golang.org/x/sys/unix"
)

// renameNoReplace moves oldpath to newpath unless newpath exists, in which case
// it returns errTargetExists. It is atomic: a concurrent writer of newpath either
// wins or gets errTargetExists, never overwrites.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return errTargetExists
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.ENOTSUP):
		// The file system has no RENAME_NOREPLACE: a hard link refuses to
		// overwrite just as well.
		return linkNoReplace(oldpath, newpath)
	}
	return err
}
