package service

import (
	"os"

	"github.com/hoardcache/hoard/internal/ecapi"
)

// Keys is hoard's keyring: the stand-in for KMS that encrypts snapshot data at
// rest (internal/keyring implements it). A key is named as KMS keys are: by id,
// key ARN, alias or alias ARN.
type Keys interface {
	// Resolve returns the id of the key a reference names, or an error when the
	// keyring has no such key.
	Resolve(ref string) (id string, err error)
	// EncryptFile writes src encrypted under the key to a new file dst.
	EncryptFile(ref, src, dst string) error
	// DecryptFile writes the plaintext of an encrypted src to a new file dst and
	// returns the id of the key it was encrypted with.
	DecryptFile(src, dst string) (id string, err error)
}

// checkKmsKey refuses a KmsKeyId the keyring does not hold.
func (s *Service) checkKmsKey(ref string) error {
	if ref == "" {
		return nil
	}
	if s.cfg.Keys == nil {
		return ecapi.InvalidParameterValueException.Errorf("KMS key %s cannot be used: this hoard has no keyring.", ref)
	}
	if _, err := s.cfg.Keys.Resolve(ref); err != nil {
		return ecapi.InvalidParameterValueException.Errorf("KMS key %s is not in hoard's keyring (create keys with `hoard keys create`): %v", ref, err)
	}
	return nil
}

// encryptInPlace replaces a file by its encryption under a key and returns the
// new size.
func (s *Service) encryptInPlace(ref, path string) (int64, error) {
	if s.cfg.Keys == nil {
		return 0, ecapi.InvalidParameterValueException.Errorf("KMS key %s cannot be used: this hoard has no keyring.", ref)
	}
	tmp := path + ".enc"
	_ = os.Remove(tmp)
	if err := s.cfg.Keys.EncryptFile(ref, path, tmp); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return 0, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// stagePlain puts the plaintext of a stored snapshot file at to, after checking
// the stored bytes against their checksum: decrypted when the snapshot has a
// key, otherwise a hard link (instant, and independent of the snapshot's
// deletion). damaged is the error to give when the checksum does not match.
func (s *Service) stagePlain(from, to, wantSum, kmsKey string, damaged error) error {
	if sum, err := fileChecksum(from); err != nil || sum != wantSum {
		return damaged
	}
	_ = os.Remove(to)
	if kmsKey == "" {
		return linkOrCopy(from, to)
	}
	if s.cfg.Keys == nil {
		return ecapi.InvalidParameterValueException.Errorf("The snapshot is encrypted with KMS key %s, and this hoard has no keyring.", kmsKey)
	}
	if _, err := s.cfg.Keys.DecryptFile(from, to); err != nil {
		_ = os.Remove(to)
		return ecapi.InvalidParameterValueException.Errorf("The snapshot's data cannot be decrypted with KMS key %s: %v", kmsKey, err)
	}
	return nil
}

// copyData gives a snapshot copy its own file: the stored bytes as they are when
// both snapshots use the same key (checked against wantSum as they are copied),
// otherwise decrypted from the source's key and encrypted under the target's.
// It returns the checksum and size of what it wrote.
func (s *Service) copyData(from, to, wantSum, fromKey, toKey string, damaged error) (string, int64, error) {
	if fromKey == toKey {
		sum, err := copyFileSum(from, to)
		if err != nil {
			return "", 0, err
		}
		if sum != wantSum {
			return "", 0, damaged
		}
		return sum, fileSize(to), nil
	}
	plain := to + ".plain"
	if err := s.stagePlain(from, plain, wantSum, fromKey, damaged); err != nil {
		return "", 0, err
	}
	defer os.Remove(plain)
	var err error
	if toKey == "" {
		err = copyFile(plain, to)
	} else {
		err = s.cfg.Keys.EncryptFile(toKey, plain, to)
	}
	if err != nil {
		return "", 0, err
	}
	sum, err := fileChecksum(to)
	return sum, fileSize(to), err
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}
