package service

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

// CopyServerlessCacheSnapshot copies a snapshot within hoard: an independent
// snapshot with its own data file, re-encrypted when KmsKeyId asks for another key.
func (s *Service) CopyServerlessCacheSnapshot(ctx context.Context, in *ecapi.CopyServerlessCacheSnapshotRequest) (*ecapi.CopyServerlessCacheSnapshotResponse, error) {
	c := CallerOf(ctx)
	target := strings.ToLower(in.TargetServerlessCacheSnapshotName)
	if err := validateServerlessSnapshotName(target); err != nil {
		return nil, err
	}
	if err := s.checkKmsKey(in.KmsKeyId); err != nil {
		return nil, err
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	var src *serverlessSnapshot
	err := s.store.View(func(tx *store.Tx) (err error) {
		if src, err = loadAvailableServerlessSnapshot(tx, c, in.SourceServerlessCacheSnapshotName); err != nil {
			return err
		}
		if tx.Has(tableServerlessSnapshots, c.scope()+target) {
			return ecapi.ServerlessCacheSnapshotAlreadyExistsFault.Errorf("Serverless cache snapshot %s already exists.", target)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	copied := *src
	// A copy is a manual snapshot: it never expires.
	copied.Name, copied.Type, copied.CreatedAt, copied.ExpiresAt = target, snapshotTypeManual, s.now(), time.Time{}
	if in.KmsKeyId != "" {
		copied.KmsKeyID = in.KmsKeyId
	}
	copied.Nodes = append([]nodeSnapshot(nil), src.Nodes...)
	// The name is reserved first (a creating record, with its job registered so
	// recovery leaves it alone): two requests for one name must not share the
	// staging directory, nor one remove the other's files.
	copied.Status = snapshotCreating
	s.snapshotJobs.begin(copied.jobKey())
	defer s.snapshotJobs.end(copied.jobKey())
	err = s.store.Update(func(tx *store.Tx) error {
		if tx.Has(tableServerlessSnapshots, copied.key()) {
			return ecapi.ServerlessCacheSnapshotAlreadyExistsFault.Errorf("Serverless cache snapshot %s already exists.", target)
		}
		return tx.Put(tableServerlessSnapshots, copied.key(), &copied)
	})
	if err != nil {
		return nil, err
	}
	copyErr := s.copyServerlessFiles(src, &copied)
	err = s.store.Update(func(tx *store.Tx) error {
		if copyErr != nil {
			return tx.Delete(tableServerlessSnapshots, copied.key())
		}
		copied.Status = snapshotAvailable
		if err := tx.Put(tableServerlessSnapshots, copied.key(), &copied); err != nil {
			return err
		}
		return putTags(tx, copied.arn(), in.Tags)
	})
	if copyErr != nil || err != nil {
		_ = os.RemoveAll(s.serverlessSnapshotDir(&copied))
		return nil, cmp.Or(copyErr, err)
	}
	return &ecapi.CopyServerlessCacheSnapshotResponse{ServerlessCacheSnapshot: serverlessSnapshotShape(&copied)}, nil
}

func loadAvailableServerlessSnapshot(tx *store.Tx, c Caller, name string) (*serverlessSnapshot, error) {
	sn, err := loadServerlessSnapshot(tx, c, name)
	if err == nil && sn.Status != snapshotAvailable {
		err = ecapi.InvalidServerlessCacheSnapshotStateFault.Errorf("Serverless cache snapshot %s is not available (it is %s).", sn.Name, sn.Status)
	}
	return sn, err
}

// copyServerlessFiles gives a copy its own files, staged and renamed into place.
func (s *Service) copyServerlessFiles(src, dst *serverlessSnapshot) error {
	return s.copyNodeFiles(s.serverlessSnapshotDir(dst), src.Engine, src.Nodes, dst.Nodes,
		func(ns nodeSnapshot) string { return s.serverlessSnapshotFile(src, ns) }, src.KmsKeyID, dst.KmsKeyID,
		func(string) error {
			return ecapi.InvalidServerlessCacheSnapshotStateFault.Errorf("Serverless cache snapshot %s is damaged: its data does not match its checksum.", src.Name)
		})
}

// ExportServerlessCacheSnapshot writes a snapshot's data to a bucket as
// <snapshot>-0001.rdb (redis, valkey: loadable by the engine as it is) or
// <snapshot>-0001.mcdump (memcached: hoard's dump format, which
// SnapshotArnsToRestore reads back), decrypted. An existing key is refused and
// a failed export leaves no object, with the messages ElastiCache gives.
func (s *Service) ExportServerlessCacheSnapshot(ctx context.Context, in *ecapi.ExportServerlessCacheSnapshotRequest) (*ecapi.ExportServerlessCacheSnapshotResponse, error) {
	c := CallerOf(ctx)
	if in.S3BucketName == "" {
		return nil, ecapi.InvalidParameterValueException.Errorf("The parameter S3BucketName must be provided.")
	}
	if s.cfg.Buckets == nil {
		return nil, ecapi.InvalidParameterValueException.Errorf("Export needs bucket storage, which this hoard has not configured.")
	}
	var sn *serverlessSnapshot
	err := s.store.View(func(tx *store.Tx) (err error) {
		sn, err = loadAvailableServerlessSnapshot(tx, c, in.ServerlessCacheSnapshotName)
		return err
	})
	if err != nil {
		return nil, err
	}
	ext := "rdb"
	if sn.Engine == catalog.Memcached {
		ext = "mcdump"
	}
	var written []string
	for i, ns := range sn.Nodes {
		path := s.serverlessSnapshotFile(sn, ns)
		if sum, err := fileChecksum(path); err != nil || sum != ns.Checksum {
			return nil, ecapi.InvalidServerlessCacheSnapshotStateFault.Errorf("Serverless cache snapshot %s is damaged: its data does not match its checksum.", sn.Name)
		}
		key := fmt.Sprintf("%s-%04d.%s", sn.Name, i+1, ext)
		if err := s.exportFile(ctx, path, sn.KmsKeyID, in.S3BucketName, key); err != nil {
			msg := s.bucketMessage(err)
			if len(written) > 0 {
				msg += fmt.Sprintf(" (already exported: %s)", strings.Join(written, ", "))
			}
			return nil, ecapi.InvalidParameterValueException.Errorf("%s", msg)
		}
		written = append(written, key)
	}
	return &ecapi.ExportServerlessCacheSnapshotResponse{ServerlessCacheSnapshot: serverlessSnapshotShape(sn)}, nil
}
