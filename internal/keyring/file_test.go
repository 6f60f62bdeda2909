package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestEncryptDecryptFile(t *testing.T) {
	k, _ := openTemp(t)
	key := mustCreate(t, k, "alias/files", "")
	dir := t.TempDir()
	src, enc, dec := filepath.Join(dir, "plain.rdb"), filepath.Join(dir, "snap.enc"), filepath.Join(dir, "out.rdb")
	plain := randomBytes(2*ChunkSize+123, 5)
	if err := os.WriteFile(src, plain, 0o644); err != nil {
		t.Fatal(err)
	}

	if id, ok, err := Encrypted(src); err != nil || ok || id != "" {
		t.Errorf("Encrypted(plain file) = %q, %v, %v; want not encrypted", id, ok, err)
	}
	if err := k.EncryptFile("arn:aws:kms:us-east-1:123456789012:alias/files", src, enc); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(enc); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != EncryptedSize(int64(len(plain))) {
		t.Errorf("encrypted file: %v, %v", fi, err)
	}
	if id, ok, err := Encrypted(enc); err != nil || !ok || id != key.ID {
		t.Errorf("Encrypted(encrypted file) = %q, %v, %v; want %s, true", id, ok, err, key.ID)
	}
	id, err := k.DecryptFile(enc, dec)
	if err != nil || id != key.ID {
		t.Fatalf("DecryptFile = %q, %v", id, err)
	}
	if got, _ := os.ReadFile(dec); !bytes.Equal(got, plain) {
		t.Fatal("DecryptFile output differs from the original")
	}
	// Encrypting a file in place works: dst replaces src only when complete.
	if err := k.EncryptFile(key.ID, dec, dec); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := Encrypted(dec); !ok {
		t.Error("in-place EncryptFile did not produce an encrypted file")
	}
	assertNoTemps(t, dir)
}

func TestFileHelpersLeaveNoDstOnFailure(t *testing.T) {
	k, _ := openTemp(t)
	key := mustCreate(t, k, "", "")
	dir := t.TempDir()
	src, enc := filepath.Join(dir, "plain"), filepath.Join(dir, "enc")
	os.WriteFile(src, randomBytes(3*ChunkSize, 6), 0o600)
	if err := k.EncryptFile(key.ID, src, enc); err != nil {
		t.Fatal(err)
	}
	ct, _ := os.ReadFile(enc)

	// Corruption in the last chunk: found only after most was decrypted.
	bad := filepath.Join(dir, "bad")
	ct[len(ct)-5] ^= 1
	os.WriteFile(bad, ct, 0o600)
	dst := filepath.Join(dir, "out")
	if _, err := k.DecryptFile(bad, dst); !errors.Is(err, ErrCorrupt) {
		t.Errorf("DecryptFile of a corrupt file: %v; want ErrCorrupt", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DecryptFile left %s behind after failing: %v", dst, err)
	}
	// An existing dst keeps its contents when decryption fails.
	os.WriteFile(dst, []byte("previous"), 0o600)
	k.DecryptFile(bad, dst)
	if got, _ := os.ReadFile(dst); string(got) != "previous" {
		t.Errorf("failed DecryptFile changed the existing dst to %d bytes", len(got))
	}
	os.Remove(dst)

	// Unknown key: the id is still reported.
	other, _ := openTemp(t)
	if id, err := other.DecryptFile(enc, dst); !errors.Is(err, ErrUnknownKey) || id != key.ID {
		t.Errorf("DecryptFile without the key = %q, %v; want %s, ErrUnknownKey", id, err, key.ID)
	}
	if _, err := k.DecryptFile(src, dst); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("DecryptFile of a plain file: %v; want ErrNotEncrypted", err)
	}
	if err := k.EncryptFile("alias/none", src, dst); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("EncryptFile with an unknown key: %v; want ErrUnknownKey", err)
	}
	if err := k.EncryptFile(key.ID, filepath.Join(dir, "missing"), dst); err == nil {
		t.Error("EncryptFile of a missing source succeeded")
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed call left %s behind: %v", dst, err)
	}
	assertNoTemps(t, dir)
}

func TestEncryptedHeaderOnly(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		return p
	}
	if _, ok, err := Encrypted(write("empty", nil)); ok || err != nil {
		t.Errorf("Encrypted(empty) = %v, %v", ok, err)
	}
	if _, ok, err := Encrypted(write("short", []byte("HOAR"))); ok || err != nil {
		t.Errorf("Encrypted(magic prefix) = %v, %v", ok, err)
	}
	if _, ok, err := Encrypted(write("trunc", []byte(magic+"\x01\x14"))); !ok || !errors.Is(err, ErrCorrupt) {
		t.Errorf("Encrypted(truncated header) = %v, %v; want true, ErrCorrupt", ok, err)
	}
	if _, _, err := Encrypted(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Encrypted(missing) error = %v", err)
	}
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	for _, m := range matches {
		t.Errorf("temporary file %s left behind", m)
	}
}
