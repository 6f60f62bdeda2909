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
	"github.com/hoardcache/hoard/internal/store"
)

// restoreSource is the data a new cluster starts from: one RDB file per node,
// staged in hoard's seed area so that it outlives the snapshot or object it came from.
type restoreSource struct {
	dir      string   // the staging directory, private to one request
	files    []string // staged RDB files, one per node, in node order
	snapshot *snapshot
}

// newSeedDir makes a staging directory for one restore; it holds the RDB files
// until the nodes that load them have started.
func (s *Service) newSeedDir(c Caller, clusterID string) (string, error) {
	parent := filepath.Join(s.cfg.DataDir, "seeds", c.Account, c.Region)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(parent, clusterID+"-")
}

// stageSnapshot checks a snapshot can seed a new cluster and puts its files in
// the seed area (see stagePlain).
func (s *Service) stageSnapshot(c Caller, clusterID, name string) (*restoreSource, error) {
	var sn *snapshot
	err := s.store.View(func(tx *store.Tx) (err error) {
		sn, err = loadSnapshot(tx, c, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	if sn.Status != snapshotAvailable {
		return nil, ecapi.InvalidSnapshotStateFault.Errorf("Snapshot %s is not available (it is %s).", sn.Name, sn.Status)
	}
	dir, err := s.newSeedDir(c, clusterID)
	if err != nil {
		return nil, err
	}
	src := &restoreSource{dir: dir, snapshot: sn}
	for _, ns := range sn.Nodes {
		to := filepath.Join(dir, fmt.Sprintf("%04d.rdb", len(src.files)+1))
		damaged := ecapi.InvalidSnapshotStateFault.Errorf("Snapshot %s is damaged: the data of node %s does not match its checksum.", sn.Name, ns.NodeID)
		if err := s.stagePlain(s.nodeFile(sn, ns.NodeID), to, ns.Checksum, sn.KmsKeyID, damaged); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		src.files = append(src.files, to)
	}
	return src, nil
}

// stageObjects fetches RDB objects named by S3 ARNs (arn:aws:s3:::bucket/key) into
// the seed area and checks each is an RDB file.
func (s *Service) stageObjects(ctx context.Context, c Caller, clusterID string, arns []string) (*restoreSource, error) {
	if s.cfg.Buckets == nil {
		return nil, ecapi.InvalidParameterValueException.Errorf("SnapshotArns needs bucket storage, which this hoard has not configured.")
	}
	dir, err := s.newSeedDir(c, clusterID)
	if err != nil {
		return nil, err
	}
	src := &restoreSource{dir: dir}
	fail := func(err error) (*restoreSource, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	for i, arn := range arns {
		bucket, key, ok := parseS3ARN(arn)
		if !ok {
			return fail(ecapi.InvalidParameterValueException.Errorf("Invalid SnapshotArns value %q: expected arn:aws:s3:::bucket/key.", arn))
		}
		path := filepath.Join(dir, fmt.Sprintf("%04d.rdb", i+1))
		if err := s.cfg.Buckets.Fetch(ctx, bucket, key, path); err != nil {
			return fail(ecapi.InvalidParameterValueException.Errorf("Cannot read %s: %s", arn, s.bucketMessage(err)))
		}
		if !isRDB(path) {
			return fail(ecapi.InvalidParameterValueException.Errorf("The object %s is not an RDB file.", arn))
		}
		src.files = append(src.files, path)
	}
	return src, nil
}

func parseS3ARN(arn string) (bucket, key string, ok bool) {
	rest, found := strings.CutPrefix(arn, "arn:aws:s3:::")
	if !found {
		return "", "", false
	}
	bucket, key, ok = strings.Cut(rest, "/")
	return bucket, key, ok && bucket != "" && key != ""
}

// isRDB checks the RDB magic: "REDIS" and a four-digit version.
func isRDB(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 9)
	if _, err := io.ReadFull(bufio.NewReader(f), head); err != nil {
		return false
	}
	if string(head[:5]) != "REDIS" {
		return false
	}
	for _, b := range head[5:] {
		if b < '0' || b > '9' {
			return false
		}
	}
	return true
}

// linkOrCopy hard-links a file, or copies it where links are not possible.
func linkOrCopy(from, to string) error {
	if err := os.Link(from, to); err == nil {
		return nil
	}
	return copyFile(from, to)
}

// applyRestore fills what the request left out from the snapshot, refuses what
// contradicts it, and gives each node its seed file.
func applyRestore(in *ecapi.CreateCacheClusterMessage, src *restoreSource) error {
	if sn := src.snapshot; sn != nil {
		if in.Engine == "" {
			in.Engine = sn.Engine
		}
		if !strings.EqualFold(in.Engine, sn.Engine) {
			return ecapi.InvalidParameterCombinationException.Errorf("Snapshot %s holds %s data; it cannot seed a %s cluster.", sn.Name, sn.Engine, in.Engine)
		}
		if in.CacheNodeType == "" {
			in.CacheNodeType = sn.NodeType
		}
	}
	if in.Engine == catalog.Memcached {
		return ecapi.InvalidParameterCombinationException.Errorf("Memcached clusters cannot be seeded from RDB snapshots.")
	}
	if n := int32(len(src.files)); in.NumCacheNodes != nil && *in.NumCacheNodes != n {
		return ecapi.InvalidParameterCombinationException.Errorf("The restore source has %d node files; NumCacheNodes must be %d.", n, n)
	}
	return nil
}

func (s *Service) bucketMessage(err error) string {
	if s.cfg.BucketMessage != nil {
		if m := s.cfg.BucketMessage(err); m != "" {
			return m
		}
	}
	return err.Error()
}

// seedNodes gives node i the i-th staged file.
func seedNodes(cl *cluster, src *restoreSource) {
	if src == nil {
		return
	}
	for i, n := range cl.Nodes {
		if i < len(src.files) {
			n.Seed = src.files[i]
		}
	}
}
