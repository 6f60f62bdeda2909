package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// copyChunk is how much copyCtx moves between two looks at the context. On
// Linux a file-to-file chunk is one copy_file_range call.
const copyChunk = 8 << 20

// copyCtx copies src to dst until EOF, stopping with ctx's error when ctx ends.
func copyCtx(ctx context.Context, dst *os.File, src io.Reader) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := io.CopyN(dst, src, copyChunk)
		total += n
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// syncDir fsyncs a directory, making the entries created or renamed in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// errTargetExists is what renameNoReplace returns when newpath is taken.
var errTargetExists = fs.ErrExist

// linkNoReplace puts oldpath at newpath with a hard link, which fails rather than
// overwrite, then removes oldpath.
func linkNoReplace(oldpath, newpath string) error {
	if err := os.Link(oldpath, newpath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errTargetExists
		}
		return err
	}
	return os.Remove(oldpath)
}

// writeFileAtomic streams src into a temporary file beside path, fsyncs it,
// renames it onto path and fsyncs the directory. On any failure (including a
// short body when want >= 0) it removes the temporary file and leaves path as it
// was.
func writeFileAtomic(ctx context.Context, path string, src io.Reader, want int64) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, base+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := copyCtx(ctx, tmp, src)
	if err != nil {
		return err
	}
	if want >= 0 && n != want {
		return fmt.Errorf("short download: got %d bytes of %d", n, want)
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}
