package service

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

// CopySnapshot copies a snapshot within hoard (an independent snapshot with its
// own files) or, with TargetBucket, exports it to a bucket as
// <TargetSnapshotName>-0001.rdb, -0002.rdb, ... (one RDB per node) that
// redis-server can load as they are.
func (s *Service) CopySnapshot(ctx context.Context, in *ecapi.CopySnapshotMessage) (*ecapi.CopySnapshotResult, error) {
	c := CallerOf(ctx)
	target := strings.ToLower(in.TargetSnapshotName)
	if in.TargetBucket == "" {
		if err := validateSnapshotName(target); err != nil {
			return nil, err
		}
	} else if target == "" {
		return nil, ecapi.InvalidParameterValueException.Errorf("The parameter TargetSnapshotName must be provided.")
	}
	if err := s.checkKmsKey(in.KmsKeyId); err != nil {
		return nil, err
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	var src *snapshot
	err := s.store.View(func(tx *store.Tx) (err error) {
		if src, err = loadSnapshot(tx, c, in.SourceSnapshotName); err != nil {
			return err
		}
		if src.Status != snapshotAvailable {
			return ecapi.InvalidSnapshotStateFault.Errorf("Snapshot %s is not available (it is %s).", src.Name, src.Status)
		}
		if in.TargetBucket == "" && tx.Has(tableSnapshots, c.scope()+target) {
			return ecapi.SnapshotAlreadyExistsFault.Errorf("Snapshot %s already exists.", target)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if in.TargetBucket != "" {
		if err := s.verifySnapshot(src); err != nil {
			return nil, err
		}
		return s.exportSnapshot(ctx, src, in.TargetBucket, in.TargetSnapshotName)
	}
	copied := *src
	copied.Name, copied.Source, copied.CreatedAt = target, sourceManual, s.now()
	if in.KmsKeyId != "" {
		copied.KmsKeyID = in.KmsKeyId
	}
	copied.Nodes = append([]nodeSnapshot(nil), src.Nodes...)
	// The name is reserved first, as CopyServerlessCacheSnapshot does.
	copied.Status = snapshotCreating
	s.snapshotJobs.begin(copied.key())
	defer s.snapshotJobs.end(copied.key())
	err = s.store.Update(func(tx *store.Tx) error {
		if tx.Has(tableSnapshots, copied.key()) {
			return ecapi.SnapshotAlreadyExistsFault.Errorf("Snapshot %s already exists.", target)
		}
		return tx.Put(tableSnapshots, copied.key(), &copied)
	})
	if err != nil {
		return nil, err
	}
	copyErr := s.copySnapshotFiles(src, &copied)
	err = s.store.Update(func(tx *store.Tx) error {
		if copyErr != nil {
			return tx.Delete(tableSnapshots, copied.key())
		}
		copied.Status = snapshotAvailable
		if err := tx.Put(tableSnapshots, copied.key(), &copied); err != nil {
			return err
		}
		return putTags(tx, c.arn("snapshot", target), in.Tags)
	})
	if copyErr != nil || err != nil {
		_ = os.RemoveAll(s.snapshotDir(&copied))
		return nil, cmp.Or(copyErr, err)
	}
	return &ecapi.CopySnapshotResult{Snapshot: s.snapshotShape(&copied)}, nil
}

// verifySnapshot checks every file of a snapshot against its recorded checksum.
func (s *Service) verifySnapshot(sn *snapshot) error {
	for _, ns := range sn.Nodes {
		sum, err := fileChecksum(s.nodeFile(sn, ns.NodeID))
		if err != nil || sum != ns.Checksum {
			return ecapi.InvalidSnapshotStateFault.Errorf("Snapshot %s is damaged: the data of node %s does not match its checksum.", sn.Name, ns.NodeID)
		}
	}
	return nil
}

// copySnapshotFiles gives the copy its own files: real copies, not links, so that
// either snapshot can be deleted or damaged without touching the other. Each file
// is checked against its recorded checksum as it is copied (one read, not two),
// and re-encrypted when the copy asks for another key.
func (s *Service) copySnapshotFiles(src, dst *snapshot) error {
	return s.copyNodeFiles(s.snapshotDir(dst), src.Engine, src.Nodes, dst.Nodes,
		func(ns nodeSnapshot) string { return s.nodeFile(src, ns.NodeID) }, src.KmsKeyID, dst.KmsKeyID,
		func(nodeID string) error {
			return ecapi.InvalidSnapshotStateFault.Errorf("Snapshot %s is damaged: the data of node %s does not match its checksum.", src.Name, nodeID)
		})
}

// copyFile makes a real, fsynced copy of a file (never a link).
func copyFile(from, to string) error {
	_, err := copyFileSum(from, to)
	return err
}

// copyFileSum copies a file as copyFile does and returns the checksum of the
// source. The copy runs in the kernel (io.Copy between files is
// copy_file_range, a reflink on XFS and btrfs) while a second reader checksums
// the source alongside: snapshot files never change once written, so the
// source's checksum is the copy's, and the caller compares it with the
// recorded one before using the copy.
func copyFileSum(from, to string) (string, error) {
	in, err := os.Open(from)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	type result struct {
		sum string
		err error
	}
	summed := make(chan result, 1)
	go func() {
		sum, err := fileChecksum(from)
		summed <- result{sum, err}
	}()
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	r := <-summed
	if err == nil {
		err = r.err
	}
	return r.sum, err
}

// exportSnapshot writes each node's RDB to the bucket; an export that fails on a
// later node leaves the earlier objects (each whole), and says which were written.
func (s *Service) exportSnapshot(ctx context.Context, src *snapshot, bucket, name string) (*ecapi.CopySnapshotResult, error) {
	if s.cfg.Buckets == nil {
		return nil, ecapi.InvalidParameterValueException.Errorf("Export needs bucket storage, which this hoard has not configured.")
	}
	var written []string
	for i, ns := range src.Nodes {
		key := fmt.Sprintf("%s-%04d.rdb", name, i+1)
		if err := s.exportFile(ctx, s.nodeFile(src, ns.NodeID), src.KmsKeyID, bucket, key); err != nil {
			msg := s.bucketMessage(err)
			if len(written) > 0 {
				msg += fmt.Sprintf(" (already exported: %s)", strings.Join(written, ", "))
			}
			return nil, ecapi.InvalidParameterValueException.Errorf("%s", msg)
		}
		written = append(written, key)
	}
	exported := *src
	exported.Name = name
	return &ecapi.CopySnapshotResult{Snapshot: s.snapshotShape(&exported)}, nil
}

// exportFile writes a stored snapshot file to bucket/key as plaintext, so that
// the engine can load the object as it is: an encrypted file is decrypted into
// a temporary file next to it first.
func (s *Service) exportFile(ctx context.Context, path, kmsKey, bucket, key string) error {
	if kmsKey == "" {
		return s.cfg.Buckets.Export(ctx, path, bucket, key)
	}
	if s.cfg.Keys == nil {
		return fmt.Errorf("the snapshot is encrypted with KMS key %s, and this hoard has no keyring", kmsKey)
	}
	// The plaintext goes to hoard's scratch area, swept at every start, never
	// next to the encrypted file.
	plain, err := s.scratchPath("export")
	if err != nil {
		return err
	}
	if _, err := s.cfg.Keys.DecryptFile(path, plain); err != nil {
		return fmt.Errorf("decrypting the snapshot: %w", err)
	}
	defer os.Remove(plain)
	return s.cfg.Buckets.Export(ctx, plain, bucket, key)
}

// scratchPath names a new file in <data-dir>/tmp, the scratch area that
// SweepOrphanFiles empties at start-up.
func (s *Service) scratchPath(prefix string) (string, error) {
	dir := filepath.Join(s.cfg.DataDir, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, prefix+"-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	f.Close()
	return name, os.Remove(name) // DecryptFile creates it anew
}
