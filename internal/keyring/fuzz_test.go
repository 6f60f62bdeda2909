package keyring

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzDecrypt feeds arbitrary bytes to the decrypting reader: it must never
// panic, and must either reproduce an authenticated plaintext or fail with
// one of the package's errors. Seeds are real files with small chunks, so
// mutations reach the chunk code only when they keep the header intact.
func FuzzDecrypt(f *testing.F) {
	k, err := Open(f.TempDir() + "/keyring.json")
	if err != nil {
		f.Fatal(err)
	}
	key, err := k.Create("alias/fuzz", "")
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range []int{0, 1, 1 << minChunkExp, 2<<minChunkExp + 9} {
		f.Add(encrypt(f, k, key, randomBytes(n, 11), minChunkExp, 0))
	}
	f.Add([]byte(magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _, err := k.NewDecryptReader(bytes.NewReader(data))
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotEncrypted) && !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
