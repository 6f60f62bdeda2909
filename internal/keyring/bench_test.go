package keyring

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

const benchSize = 256 << 20

// benchKeyring is a keyring with one key, "alias/bench".
func benchKeyring(b *testing.B) *Keyring {
	b.Helper()
	k, err := Open(filepath.Join(b.TempDir(), "keyring.json"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := k.Create("alias/bench", ""); err != nil {
		b.Fatal(err)
	}
	return k
}

func BenchmarkEncryptStream(b *testing.B) {
	k := benchKeyring(b)
	plain := randomBytes(benchSize, 1)
	b.SetBytes(benchSize)
	for b.Loop() {
		w, err := k.NewEncryptWriter(io.Discard, "alias/bench")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(w, bytes.NewReader(plain)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptStream(b *testing.B) {
	k := benchKeyring(b)
	var buf bytes.Buffer
	w, _ := k.NewEncryptWriter(&buf, "alias/bench")
	w.Write(randomBytes(benchSize, 1))
	w.Close()
	ct := buf.Bytes()
	b.SetBytes(benchSize)
	for b.Loop() {
		r, _, err := k.NewDecryptReader(bytes.NewReader(ct))
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != benchSize {
			b.Fatal(n, err)
		}
	}
}

// benchFile writes a 256 MiB file of random bytes.
func benchFile(b *testing.B, dir string) string {
	b.Helper()
	path := filepath.Join(dir, "plain")
	if err := os.WriteFile(path, randomBytes(benchSize, 2), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkCopyFile is the baseline for the file benchmarks: a plain io.Copy
// to a new file with the same fsync and rename as the encrypting helpers.
func BenchmarkCopyFile(b *testing.B) {
	dir := b.TempDir()
	src := benchFile(b, dir)
	b.SetBytes(benchSize)
	for b.Loop() {
		in, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		err = writeFileAtomic(filepath.Join(dir, "copy"), 0o600, func(out *os.File) error {
			_, err := io.Copy(out, in)
			return err
		})
		in.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncryptFile(b *testing.B) {
	k := benchKeyring(b)
	dir := b.TempDir()
	src := benchFile(b, dir)
	b.SetBytes(benchSize)
	for b.Loop() {
		if err := k.EncryptFile("alias/bench", src, filepath.Join(dir, "enc")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptFile(b *testing.B) {
	k := benchKeyring(b)
	dir := b.TempDir()
	src := benchFile(b, dir)
	enc := filepath.Join(dir, "enc")
	if err := k.EncryptFile("alias/bench", src, enc); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, err := k.DecryptFile(enc, filepath.Join(dir, "dec")); err != nil {
			b.Fatal(err)
		}
	}
}
