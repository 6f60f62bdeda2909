package keyring

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EncryptFile encrypts the file src under the key keyRef names into dst
// (mode 0600). dst appears only complete and fsynced: on any failure it is
// left as it was (absent, or its previous contents).
func (k *Keyring) EncryptFile(keyRef, src, dst string) error {
	e, err := k.resolve(keyRef)
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer in.Close()
	err = writeFileAtomic(dst, 0o600, func(out *os.File) error {
		ew, err := newEncryptWriter(out, e, defaultChunkExp)
		if err != nil {
			return err
		}
		if _, err := ew.ReadFrom(in); err != nil {
			return fmt.Errorf("keyring: reading %s: %w", src, err)
		}
		return ew.Close()
	})
	if err != nil {
		return fmt.Errorf("keyring: encrypting %s to %s: %w", src, dst, err)
	}
	return nil
}

// DecryptFile decrypts the encrypted file src into dst (mode 0600) and returns
// the id of the key it was encrypted under (also on ErrUnknownKey, to name the
// missing key). dst appears only once the whole file has authenticated: on any
// failure, including ErrCorrupt partway through, it is left as it was.
func (k *Keyring) DecryptFile(src, dst string) (keyID string, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	defer in.Close()
	dr, keyID, err := k.newDecryptReader(in)
	if err != nil {
		return keyID, fmt.Errorf("keyring: decrypting %s: %w", src, err)
	}
	err = writeFileAtomic(dst, 0o600, func(out *os.File) error {
		_, err := dr.WriteTo(out)
		return err
	})
	if err != nil {
		return keyID, fmt.Errorf("keyring: decrypting %s to %s: %w", src, dst, err)
	}
	return keyID, nil
}

// Encrypted reports whether the file at path is a hoard encrypted file, and if
// so the id of its key, reading only the header. ok is false (with a nil
// error) for any file that does not start with the magic, including an empty
// one. A file that has the magic but a malformed header is ok with an
// ErrCorrupt error. The key id is not authenticated here; decryption does that.
func Encrypted(path string) (keyID string, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	h, err := parseHeader(f)
	switch {
	case errors.Is(err, ErrNotEncrypted):
		return "", false, nil
	case errors.Is(err, ErrCorrupt):
		return "", true, fmt.Errorf("keyring: %s: %w", path, err)
	case err != nil:
		return "", false, fmt.Errorf("keyring: %s: %w", path, err)
	}
	return h.keyID, true, nil
}

// writeFileAtomic creates path with the given mode holding what fill writes:
// it fills a temporary file beside path, fsyncs it, renames it onto path and
// fsyncs the directory. On any failure it removes the temporary file and
// leaves path untouched.
func writeFileAtomic(path string, mode os.FileMode, fill func(*os.File) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
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

// syncDir fsyncs a directory, making the entries renamed into it durable.
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
