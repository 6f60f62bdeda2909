package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// local keeps buckets as directories under root.
type local struct {
	root string
	// open opens the source of an export; a test seam for failing readers.
	open func(path string) (io.ReadCloser, error)
}

// NewLocal returns the Storage that keeps each bucket as the directory
// root/<bucket>: a bucket exists when its directory exists (Export never creates
// one), an object is the file root/<bucket>/<key>, and the "/" in a key makes
// subdirectories. Exports are written to a temporary file beside the target and
// moved into place, without overwriting, only once complete and fsynced.
func NewLocal(root string) Storage {
	return &local{root: root, open: func(p string) (io.ReadCloser, error) { return os.Open(p) }}
}

// bucketDir returns the directory of bucket, or an ErrBucketNotFound *Error.
func (l *local) bucketDir(bucket, key string) (string, error) {
	dir := filepath.Join(l.root, bucket)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		if err == nil {
			err = fmt.Errorf("%s is not a directory", dir)
		}
		return "", &Error{Err: ErrBucketNotFound, Bucket: bucket, Key: key, Cause: err}
	}
	return dir, nil
}

func (l *local) Export(ctx context.Context, path, bucket, key string) (err error) {
	if err := checkNames(bucket, key, true); err != nil {
		return err
	}
	bdir, err := l.bucketDir(bucket, key)
	if err != nil {
		return err
	}
	target := filepath.Join(bdir, filepath.FromSlash(key))
	if fi, err := os.Lstat(target); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("blob: export to %s/%s: the key is a prefix of other objects", bucket, key)
		}
		return &Error{Err: ErrKeyExists, Bucket: bucket, Key: key}
	}

	src, err := l.open(path)
	if err != nil {
		return fmt.Errorf("blob: export %s to %s/%s: %w", path, bucket, key, err)
	}
	defer src.Close()

	// Make the key's directories, remembering the ones made so that a failed
	// export removes them again (an empty "folder" would otherwise be left).
	var created []string
	defer func() {
		if err != nil {
			for i := len(created) - 1; i >= 0; i-- {
				os.Remove(created[i])
			}
		}
	}()
	dir := filepath.Dir(target)
	var tmp *os.File
	for attempt := 0; ; attempt++ {
		var made []string
		made, err = mkdirs(bdir, strings.Split(key, "/"))
		created = append(created, made...)
		if err == nil {
			tmp, err = os.CreateTemp(dir, "."+filepath.Base(target)+".hoard-*.tmp")
		}
		// A directory just made may be removed by a concurrent export that
		// failed; make it again.
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("blob: export to %s/%s: %w", bucket, key, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err = copyCtx(ctx, tmp, src); err != nil {
		return fmt.Errorf("blob: export %s to %s/%s: %w", path, bucket, key, err)
	}
	if err = tmp.Sync(); err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Close()
	}
	if err != nil {
		return fmt.Errorf("blob: export to %s/%s: %w", bucket, key, err)
	}
	if err = renameNoReplace(tmpName, target); err != nil {
		if errors.Is(err, errTargetExists) {
			return &Error{Err: ErrKeyExists, Bucket: bucket, Key: key}
		}
		return fmt.Errorf("blob: export to %s/%s: %w", bucket, key, err)
	}
	// The object is in place: from here on a failure must not remove it.
	if serr := syncDir(dir); serr != nil {
		return fmt.Errorf("blob: export to %s/%s: %w", bucket, key, serr)
	}
	for _, d := range created {
		if serr := syncDir(filepath.Dir(d)); serr != nil {
			return fmt.Errorf("blob: export to %s/%s: %w", bucket, key, serr)
		}
	}
	return nil
}

// mkdirs makes the directories for the key segments (all but the last) under
// base, and returns those it created. A segment that exists must be a real
// directory, not a file (an object) nor a symbolic link, which could lead out of
// the bucket.
func mkdirs(base string, segs []string) (created []string, err error) {
	dir := base
	for _, seg := range segs[:len(segs)-1] {
		dir = filepath.Join(dir, seg)
		fi, err := os.Lstat(dir)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return created, fmt.Errorf("%s exists and is not a directory", dir)
		case !errors.Is(err, fs.ErrNotExist):
			return created, err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) {
				// Made concurrently by another export; check it again.
				if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
					continue
				}
			}
			return created, err
		}
		created = append(created, dir)
	}
	return created, nil
}

func (l *local) Fetch(ctx context.Context, bucket, key, path string) error {
	if err := checkNames(bucket, key, false); err != nil {
		return err
	}
	bdir, err := l.bucketDir(bucket, key)
	if err != nil {
		return err
	}
	name := filepath.Join(bdir, filepath.FromSlash(key))
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			e := ErrNoSuchKey
			if errors.Is(err, fs.ErrPermission) {
				e = ErrNoRead
			}
			return &Error{Err: e, Bucket: bucket, Key: key, Cause: err}
		}
		return fmt.Errorf("blob: fetch %s/%s: %w", bucket, key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("blob: fetch %s/%s: %w", bucket, key, err)
	}
	if !fi.Mode().IsRegular() {
		return &Error{Err: ErrNoSuchKey, Bucket: bucket, Key: key, Cause: fmt.Errorf("%s is not a file", name)}
	}
	if err := writeFileAtomic(ctx, path, f, fi.Size()); err != nil {
		return fmt.Errorf("blob: fetch %s/%s to %s: %w", bucket, key, path, err)
	}
	return nil
}
