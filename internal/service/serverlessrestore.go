package service

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/mcdump"
	"github.com/hoardcache/hoard/internal/store"
)

// stageServerlessRestore stages the data a new serverless cache starts from.
// SnapshotArnsToRestore may name a serverless cache snapshot, a cache cluster
// snapshot (migrating a node-based cache to serverless) or an object in a
// bucket (arn:aws:s3:::bucket/key) holding an RDB file or a memcached dump. A
// serverless cache has one node here, so the ARNs must hold one data file in all.
func (s *Service) stageServerlessRestore(ctx context.Context, c Caller, name, engineName string, arns []string) (*restoreSource, error) {
	dir, err := s.newSeedDir(c, name)
	if err != nil {
		return nil, err
	}
	src := &restoreSource{dir: dir}
	fail := func(err error) (*restoreSource, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	for _, arn := range arns {
		var err error
		switch kind, id := parseElastiCacheARN(arn); {
		case strings.HasPrefix(arn, "arn:aws:s3:::"):
			err = s.stageRestoreObject(ctx, src, arn, engineName)
		case kind == "serverlesscachesnapshot" || kind == "snapshot":
			if !strings.HasPrefix(arn, "arn:aws:elasticache:"+c.Region+":"+c.Account+":") {
				err = ecapi.InvalidParameterValueException.Errorf("Snapshot ARN %s is not in this account and region (%s, %s).", arn, c.Account, c.Region)
			} else if kind == "snapshot" {
				err = s.stageRestoreClusterSnapshot(src, c, id, engineName)
			} else {
				err = s.stageRestoreServerlessSnapshot(src, c, id, engineName)
			}
		default:
			err = ecapi.InvalidParameterValueException.Errorf("Invalid SnapshotArnsToRestore value %q: expected a serverless cache snapshot ARN, a snapshot ARN or arn:aws:s3:::bucket/key.", arn)
		}
		if err != nil {
			return fail(err)
		}
	}
	if len(src.files) != 1 {
		return fail(ecapi.InvalidParameterValueException.Errorf("SnapshotArnsToRestore holds %d data files; hoard restores a serverless cache from exactly one.", len(src.files)))
	}
	return src, nil
}

// parseElastiCacheARN splits arn:aws:elasticache:<region>:<account>:<type>:<name>.
func parseElastiCacheARN(arn string) (kind, name string) {
	parts := strings.SplitN(arn, ":", 7)
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "elasticache" {
		return "", ""
	}
	return parts[5], parts[6]
}

// nextFile names the next staged file of a restore source.
func (src *restoreSource) nextFile(engineName string) string {
	return filepath.Join(src.dir, dataFileName(engineName, fmt.Sprintf("%04d", len(src.files)+1)))
}

func (s *Service) stageRestoreServerlessSnapshot(src *restoreSource, c Caller, name, engineName string) error {
	var sn *serverlessSnapshot
	err := s.store.View(func(tx *store.Tx) (err error) {
		sn, err = loadServerlessSnapshot(tx, c, name)
		return err
	})
	if err != nil {
		return err
	}
	if sn.Status != snapshotAvailable {
		return ecapi.InvalidServerlessCacheSnapshotStateFault.Errorf("Serverless cache snapshot %s is not available (it is %s).", sn.Name, sn.Status)
	}
	if err := checkRestoreEngine(sn.Name, sn.Engine, engineName); err != nil {
		return err
	}
	for _, ns := range sn.Nodes {
		damaged := ecapi.InvalidServerlessCacheSnapshotStateFault.Errorf("Serverless cache snapshot %s is damaged: its data does not match its checksum.", sn.Name)
		to := src.nextFile(engineName)
		if err := s.stagePlain(s.serverlessSnapshotFile(sn, ns), to, ns.Checksum, sn.KmsKeyID, damaged); err != nil {
			return err
		}
		src.files = append(src.files, to)
	}
	return nil
}

func (s *Service) stageRestoreClusterSnapshot(src *restoreSource, c Caller, name, engineName string) error {
	var sn *snapshot
	err := s.store.View(func(tx *store.Tx) (err error) {
		sn, err = loadSnapshot(tx, c, name)
		return err
	})
	if err != nil {
		return err
	}
	if sn.Status != snapshotAvailable {
		return ecapi.InvalidSnapshotStateFault.Errorf("Snapshot %s is not available (it is %s).", sn.Name, sn.Status)
	}
	if err := checkRestoreEngine(sn.Name, sn.Engine, engineName); err != nil {
		return err
	}
	for _, ns := range sn.Nodes {
		damaged := ecapi.InvalidSnapshotStateFault.Errorf("Snapshot %s is damaged: the data of node %s does not match its checksum.", sn.Name, ns.NodeID)
		to := src.nextFile(engineName)
		if err := s.stagePlain(s.nodeFile(sn, ns.NodeID), to, ns.Checksum, sn.KmsKeyID, damaged); err != nil {
			return err
		}
		src.files = append(src.files, to)
	}
	return nil
}

// checkRestoreEngine: redis data restores into redis or valkey (valkey reads
// redis RDB files), valkey data into valkey, memcached data into memcached.
func checkRestoreEngine(snapshot, from, to string) error {
	if from == to || from == catalog.Redis && to == catalog.Valkey {
		return nil
	}
	return ecapi.InvalidParameterCombinationException.Errorf("Snapshot %s holds %s data; it cannot seed a %s serverless cache.", snapshot, from, to)
}

// stageRestoreObject fetches an object and checks it holds data the engine loads.
func (s *Service) stageRestoreObject(ctx context.Context, src *restoreSource, arn, engineName string) error {
	if s.cfg.Buckets == nil {
		return ecapi.InvalidParameterValueException.Errorf("Restoring from S3 needs bucket storage, which this hoard has not configured.")
	}
	bucket, key, ok := parseS3ARN(arn)
	if !ok {
		return ecapi.InvalidParameterValueException.Errorf("Invalid SnapshotArnsToRestore value %q: expected arn:aws:s3:::bucket/key.", arn)
	}
	to := src.nextFile(engineName)
	if err := s.cfg.Buckets.Fetch(ctx, bucket, key, to); err != nil {
		return ecapi.InvalidParameterValueException.Errorf("Cannot read %s: %s", arn, s.bucketMessage(err))
	}
	switch format := dataFormat(to); {
	case format == "":
		return ecapi.InvalidParameterValueException.Errorf("The object %s is neither an RDB file nor a hoard memcached dump.", arn)
	case format == "rdb" && engineName == catalog.Memcached:
		return ecapi.InvalidParameterCombinationException.Errorf("The object %s is an RDB file; it cannot seed a memcached serverless cache.", arn)
	case format == "mcdump" && engineName != catalog.Memcached:
		return ecapi.InvalidParameterCombinationException.Errorf("The object %s is a memcached dump; it cannot seed a %s serverless cache.", arn, engineName)
	case format == "mcdump":
		if err := verifyDump(to); err != nil {
			return ecapi.InvalidParameterValueException.Errorf("The object %s is not a whole memcached dump: %v", arn, err)
		}
	}
	src.files = append(src.files, to)
	return nil
}

// verifyDump checks a whole memcached dump against its checksum.
func verifyDump(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = mcdump.Verify(bufio.NewReaderSize(f, 1<<20))
	return err
}

// dataFormat tells an RDB file ("rdb") from a memcached dump ("mcdump") by its
// first bytes; "" is neither.
func dataFormat(path string) string {
	if isRDB(path) {
		return "rdb"
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	head := make([]byte, len(mcdump.Magic))
	if _, err := io.ReadFull(f, head); err != nil || string(head) != mcdump.Magic {
		return ""
	}
	return "mcdump"
}
