package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// writeRandom writes n random bytes to a new file in dir and returns its path
// and contents.
func writeRandom(t testing.TB, dir string, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "src.rdb")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// tree lists every file and directory under root, relative to it.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel != "." {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func newLocalTest(t *testing.T) (st *local, root, src string, data []byte) {
	t.Helper()
	root = t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "my-bucket"), 0o755); err != nil {
		t.Fatal(err)
	}
	src, data = writeRandom(t, t.TempDir(), 3<<20+17)
	return NewLocal(root).(*local), root, src, data
}

func TestLocalExport(t *testing.T) {
	st, root, src, data := newLocalTest(t)
	ctx := context.Background()
	if err := st.Export(ctx, src, "my-bucket", "snap-0001.rdb"); err != nil {
		t.Fatal(err)
	}
	if err := st.Export(ctx, src, "my-bucket", "folder/sub/snap-0001.rdb"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"snap-0001.rdb", "folder/sub/snap-0001.rdb"} {
		got, err := os.ReadFile(filepath.Join(root, "my-bucket", k))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("object %s: err %v, equal %v", k, err, bytes.Equal(got, data))
		}
	}
	want := []string{"my-bucket", "my-bucket/folder", "my-bucket/folder/sub", "my-bucket/folder/sub/snap-0001.rdb", "my-bucket/snap-0001.rdb"}
	if got := tree(t, root); !equal(got, want) {
		t.Fatalf("tree = %v, want %v (no temporary files)", got, want)
	}
}

func TestLocalExportKeyExists(t *testing.T) {
	st, root, src, _ := newLocalTest(t)
	ctx := context.Background()
	obj := filepath.Join(root, "my-bucket", "snap-0001.rdb")
	if err := os.WriteFile(obj, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := st.Export(ctx, src, "my-bucket", "snap-0001.rdb")
	if !errors.Is(err, ErrKeyExists) {
		t.Fatalf("err = %v, want ErrKeyExists", err)
	}
	if m := Message(err); m != "The S3 bucket my-bucket already contains an object with key snap-0001.rdb." {
		t.Errorf("Message = %q", m)
	}
	if got, _ := os.ReadFile(obj); string(got) != "original" {
		t.Errorf("object changed: %q", got)
	}
	// A key that is a "folder" of other objects is not overwritten either.
	if err := st.Export(ctx, src, "my-bucket", "dir/a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Export(ctx, src, "my-bucket", "dir"); err == nil {
		t.Fatal("export onto a prefix succeeded")
	}
	want := []string{"my-bucket", "my-bucket/dir", "my-bucket/dir/a", "my-bucket/snap-0001.rdb"}
	if got := tree(t, root); !equal(got, want) {
		t.Fatalf("tree = %v, want %v", got, want)
	}
}

// The existence check before the copy can be raced; the final no-replace rename
// cannot: of concurrent exports to one key exactly one wins.
func TestLocalExportConcurrentSameKey(t *testing.T) {
	st, root, src, data := newLocalTest(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.Export(context.Background(), src, "my-bucket", "race/snap-0001.rdb")
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrKeyExists):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d exports succeeded, want 1", ok)
	}
	got, _ := os.ReadFile(filepath.Join(root, "my-bucket", "race", "snap-0001.rdb"))
	if !bytes.Equal(got, data) {
		t.Fatal("object content differs")
	}
	if got := tree(t, root); len(got) != 3 {
		t.Fatalf("tree = %v (temporary files left?)", got)
	}
}

func TestLocalExportMissingBucket(t *testing.T) {
	st, root, src, _ := newLocalTest(t)
	err := st.Export(context.Background(), src, "no-such-bucket", "k")
	if !errors.Is(err, ErrBucketNotFound) {
		t.Fatalf("err = %v, want ErrBucketNotFound", err)
	}
	if m := Message(err); m != "The S3 bucket no-such-bucket does not exist." {
		t.Errorf("Message = %q", m)
	}
	// A file is not a bucket.
	if err := os.WriteFile(filepath.Join(root, "file-bucket"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.Export(context.Background(), src, "file-bucket", "k"); !errors.Is(err, ErrBucketNotFound) {
		t.Fatalf("err = %v, want ErrBucketNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(root, "no-such-bucket")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("export created the bucket")
	}
}

func TestLocalExportBadNames(t *testing.T) {
	st, root, src, _ := newLocalTest(t)
	// A directory that a bad name might reach.
	if err := os.Mkdir(filepath.Join(root, "My_Bucket"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"My_Bucket", "..", "ab", "a/b", "../my-bucket"} {
		err := st.Export(context.Background(), src, b, "k")
		if !errors.Is(err, ErrBucketNotFound) || !errors.Is(err, ErrInvalidBucketName) {
			t.Errorf("bucket %q: err = %v", b, err)
		}
	}
	for _, k := range []string{"", "../escape", "a/../../escape", "/abs", "a//b", "dir/", "."} {
		err := st.Export(context.Background(), src, "my-bucket", k)
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("key %q: err = %v", k, err)
		}
	}
	want := []string{"My_Bucket", "my-bucket"}
	if got := tree(t, root); !equal(got, want) {
		t.Fatalf("tree = %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "escape")); err == nil {
		t.Fatal("escaped the root")
	}
}

// A symbolic link inside a bucket is not followed by an export.
func TestLocalExportSymlinkComponent(t *testing.T) {
	st, root, src, _ := newLocalTest(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "my-bucket", "link")); err != nil {
		t.Fatal(err)
	}
	if err := st.Export(context.Background(), src, "my-bucket", "link/snap.rdb"); err == nil {
		t.Fatal("export through a symlink succeeded")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside the bucket: %v", ents)
	}
}

// failingReader returns n bytes, then an error, as a disk failing mid-read would.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("injected read failure")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func (f *failingReader) Close() error { return nil }

func TestLocalExportReadFailsMidway(t *testing.T) {
	st, root, src, data := newLocalTest(t)
	st.open = func(string) (io.ReadCloser, error) {
		return &failingReader{r: bytes.NewReader(data), n: len(data) / 2}, nil
	}
	err := st.Export(context.Background(), src, "my-bucket", "deep/er/snap-0001.rdb")
	if err == nil {
		t.Fatal("export succeeded")
	}
	if Message(err) != "" {
		t.Errorf("an I/O failure got an ElastiCache message: %q", Message(err))
	}
	// No object, no temporary file, no directory made for the key.
	if got := tree(t, root); !equal(got, []string{"my-bucket"}) {
		t.Fatalf("tree = %v, want only the bucket", got)
	}
	// A directory that existed before stays.
	if err := os.Mkdir(filepath.Join(root, "my-bucket", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := st.Export(context.Background(), src, "my-bucket", "deep/er/snap-0001.rdb"); err == nil {
		t.Fatal("export succeeded")
	}
	if got := tree(t, root); !equal(got, []string{"my-bucket", "my-bucket/deep"}) {
		t.Fatalf("tree = %v", got)
	}
}

func TestLocalExportSourceMissingOrCancelled(t *testing.T) {
	st, root, src, _ := newLocalTest(t)
	if err := st.Export(context.Background(), filepath.Join(t.TempDir(), "nope"), "my-bucket", "k"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := st.Export(ctx, src, "my-bucket", "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if got := tree(t, root); !equal(got, []string{"my-bucket"}) {
		t.Fatalf("tree = %v", got)
	}
}

func TestLocalFetch(t *testing.T) {
	st, _, src, data := newLocalTest(t)
	ctx := context.Background()
	if err := st.Export(ctx, src, "my-bucket", "seed/backup.rdb"); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	p := filepath.Join(dst, "seed.rdb")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.Fetch(ctx, "my-bucket", "seed/backup.rdb", p); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Fatal("fetched content differs")
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 1 {
		t.Fatalf("destination dir has %d entries, want 1", len(ents))
	}

	miss := filepath.Join(dst, "missing.rdb")
	err := st.Fetch(ctx, "my-bucket", "seed/none.rdb", miss)
	if !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("err = %v, want ErrNoSuchKey", err)
	}
	if err := st.Fetch(ctx, "my-bucket", "seed", miss); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("fetch of a folder: err = %v, want ErrNoSuchKey", err)
	}
	if err := st.Fetch(ctx, "other-bucket", "seed/backup.rdb", miss); !errors.Is(err, ErrBucketNotFound) {
		t.Fatalf("err = %v, want ErrBucketNotFound", err)
	}
	if err := st.Fetch(ctx, "my-bucket", "../my-bucket/seed/backup.rdb", miss); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("err = %v, want ErrInvalidKey", err)
	}
	if _, err := os.Stat(miss); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a failed fetch left a file")
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 1 {
		t.Fatalf("destination dir has %d entries, want 1", len(ents))
	}
}

func TestWriteFileAtomicShortAndCancelled(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := writeFileAtomic(context.Background(), p, bytes.NewReader([]byte("abc")), 10); err == nil {
		t.Fatal("short body accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := writeFileAtomic(ctx, p, bytes.NewReader([]byte("abc")), -1); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

func TestRenameNoReplace(t *testing.T) {
	for name, fn := range map[string]func(string, string) error{"rename": renameNoReplace, "link": linkNoReplace} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			os.WriteFile(a, []byte("A"), 0o644)
			os.WriteFile(b, []byte("B"), 0o644)
			if err := fn(a, b); !errors.Is(err, errTargetExists) {
				t.Fatalf("err = %v, want exists", err)
			}
			if got, _ := os.ReadFile(b); string(got) != "B" {
				t.Fatal("target overwritten")
			}
			c := filepath.Join(dir, "c")
			if err := fn(a, c); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(c); string(got) != "A" {
				t.Fatal("content")
			}
			if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) {
				t.Fatal("source left")
			}
		})
	}
}
