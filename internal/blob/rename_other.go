//go:build !linux

package blob

// renameNoReplace moves oldpath to newpath unless newpath exists, in which case
// it returns errTargetExists, using a hard link, which never overwrites.
func renameNoReplace(oldpath, newpath string) error {
	return linkNoReplace(oldpath, newpath)
}
