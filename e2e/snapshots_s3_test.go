package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/redis/go-redis/v9"
)

// The keys hoard uses toward moto_server. moto takes any pair; hoard refuses to
// start with --s3-endpoint and no keys, so these prove they are passed through.
const (
	s3TestKey    = "AKIDHOARDS3E2E"
	s3TestSecret = "hoard-s3-e2e-secret"
)

// withEnv adds environment variables (NAME=value) to hoard's environment.
func withEnv(kv ...string) option { return func(s *server) { s.env = append(s.env, kv...) } }

// startMotoServer starts moto_server, a real S3 server, on a free loopback port
// and returns its endpoint; the test skips when moto_server is not installed. It
// is stopped, by its process group, when the test ends.
func startMotoServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Skip("moto_server is not on PATH: pip install 'moto[server]' to run the S3 export/seeding tests")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	// Its own process group, so that the cleanup ends the server and the
	// wrappers (a pyenv shim) that started it; killed with the test binary too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start moto_server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
	})
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return endpoint
		}
		select {
		case <-done:
			t.Fatalf("moto_server exited before serving:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not answer on %s within 60s:\n%s", endpoint, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newS3TestClient is the test's own S3 client toward endpoint: path-style, static keys.
func newS3TestClient(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s3TestKey, s3TestSecret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func makeBucket(t *testing.T, s *s3.Client, name, region string) {
	t.Helper()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(region)}
	}
	if _, err := s.CreateBucket(ctx(t), in); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

func headObject(t *testing.T, s *s3.Client, bucket, key string) *s3.HeadObjectOutput {
	t.Helper()
	out, err := s.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("HeadObject %s/%s: %v", bucket, key, err)
	}
	return out
}

// objectAbsent asserts bucket/key does not exist (HeadObject answers 404).
func objectAbsent(t *testing.T, s *s3.Client, bucket, key string) {
	t.Helper()
	_, err := s.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var re *awshttp.ResponseError
	if err == nil || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusNotFound {
		t.Fatalf("object %s/%s: want 404, got %v", bucket, key, err)
	}
}

func getObject(t *testing.T, s *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := s.GetObject(ctx(t), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("GetObject %s/%s: %v", bucket, key, err)
	}
	return b
}

// snapshotFile is where hoard keeps the RDB of a snapshot's node.
func snapshotFile(h *server, name, nodeID string) string {
	return filepath.Join(h.dataDir, "snapshots", testAccount, "us-east-1", name, nodeID+".rdb")
}

// fillBlobs writes n string keys blob:NN of size bytes of random data each, so
// that an RDB of the data does not compress.
func fillBlobs(t *testing.T, rc *redis.Client, n, size int) {
	t.Helper()
	r := rand.NewChaCha8([32]byte{'s', '3'})
	pipe := rc.Pipeline()
	for i := 0; i < n; i++ {
		v := make([]byte, size)
		_, _ = r.Read(v)
		pipe.Set(context.Background(), fmt.Sprintf("blob:%02d", i), v, 0)
		if i%8 == 7 {
			if _, err := pipe.Exec(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotExportAndSeedWithS3(t *testing.T) {
	endpoint := startMotoServer(t)
	s3c := newS3TestClient(endpoint)
	makeBucket(t, s3c, "exports", "us-east-1")
	makeBucket(t, s3c, "seeds", "us-east-1")
	makeBucket(t, s3c, "eu-exports", "eu-west-1")
	h := startHoard(t, fastReconcile, withArgs("--s3-endpoint", endpoint),
		withEnv("HOARD_S3_ACCESS_KEY_ID="+s3TestKey, "HOARD_S3_SECRET_ACCESS_KEY="+s3TestSecret))
	c := h.client("us-east-1")

	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("src"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), NumCacheNodes: aws.Int32(1)})
	rc := redisClient(t, cl.CacheNodes[0])
	fillMixed(t, rc, 10000)
	before := readAll(t, rc)
	if _, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{CacheClusterId: aws.String("src"), SnapshotName: aws.String("snap-s3")}); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, c, "snap-s3")
	local, err := os.ReadFile(snapshotFile(h, "snap-s3", "0001"))
	if err != nil {
		t.Fatal(err)
	}

	// Export: the object is the snapshot's RDB, byte for byte.
	out, err := c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-s3"),
		TargetSnapshotName: aws.String("nightly"), TargetBucket: aws.String("exports")})
	if err != nil {
		t.Fatalf("export to S3: %v", err)
	}
	if aws.ToString(out.Snapshot.SnapshotName) != "nightly" {
		t.Fatalf("export answered snapshot %q", aws.ToString(out.Snapshot.SnapshotName))
	}
	head := headObject(t, s3c, "exports", "nightly-0001.rdb")
	if aws.ToInt64(head.ContentLength) != int64(len(local)) {
		t.Fatalf("exported object has %d bytes, the snapshot %d", aws.ToInt64(head.ContentLength), len(local))
	}
	exported := getObject(t, s3c, "exports", "nightly-0001.rdb")
	if !bytes.HasPrefix(exported, []byte("REDIS")) || !bytes.Equal(exported, local) {
		t.Fatalf("exported object (%d bytes, starts %q) is not the snapshot's RDB", len(exported), exported[:min(len(exported), 9)])
	}

	// redis-server loads it: a cluster seeded from the object holds every key.
	seeded := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("seeded"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), SnapshotArns: []string{"arn:aws:s3:::exports/nightly-0001.rdb"}})
	sameData(t, before, readAll(t, redisClient(t, seeded.CacheNodes[0])), 60*time.Second)

	// A second export to the same name is refused and leaves the object alone.
	_, err = c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-s3"),
		TargetSnapshotName: aws.String("nightly"), TargetBucket: aws.String("exports")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	if want := "The S3 bucket exports already contains an object with key nightly-0001.rdb."; !strings.Contains(err.Error(), want) {
		t.Fatalf("export over an existing object: want %q, got %v", want, err)
	}
	again := headObject(t, s3c, "exports", "nightly-0001.rdb")
	if aws.ToString(again.ETag) != aws.ToString(head.ETag) || !aws.ToTime(again.LastModified).Equal(aws.ToTime(head.LastModified)) {
		t.Fatalf("a refused export changed the object: ETag %s -> %s, LastModified %v -> %v",
			aws.ToString(head.ETag), aws.ToString(again.ETag), aws.ToTime(head.LastModified), aws.ToTime(again.LastModified))
	}

	// A missing bucket: refused, and no bucket or object appears anywhere.
	_, err = c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-s3"),
		TargetSnapshotName: aws.String("ghost"), TargetBucket: aws.String("no-such-bucket")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	if want := "The S3 bucket no-such-bucket does not exist."; !strings.Contains(err.Error(), want) {
		t.Fatalf("export to a missing bucket: want %q, got %v", want, err)
	}
	buckets, err := s3c.ListBuckets(ctx(t), &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(buckets.Buckets) != 3 {
		var names []string
		for _, b := range buckets.Buckets {
			names = append(names, aws.ToString(b.Name))
		}
		t.Fatalf("after a failed export the buckets are %v", names)
	}
	for _, b := range []string{"exports", "seeds", "eu-exports"} {
		objectAbsent(t, s3c, b, "ghost-0001.rdb")
	}

	// A bucket in another region than the snapshot's.
	_, err = c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-s3"),
		TargetSnapshotName: aws.String("far"), TargetBucket: aws.String("eu-exports")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	if want := "The S3 bucket eu-exports is outside of the region."; !strings.Contains(err.Error(), want) {
		t.Fatalf("export to a bucket in another region: want %q, got %v", want, err)
	}
	objectAbsent(t, s3c, "eu-exports", "far-0001.rdb")

	// Another cluster, with more than one multipart part (16 MiB) of data: its
	// export goes up in parts and arrives whole.
	other := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("other"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.small"), NumCacheNodes: aws.Int32(1)})
	orc := redisClient(t, other.CacheNodes[0])
	fillMixed(t, orc, 2000)
	fillBlobs(t, orc, 24, 1<<20)
	otherData := readAll(t, orc)
	if _, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{CacheClusterId: aws.String("other"), SnapshotName: aws.String("snap-other")}); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, c, "snap-other")
	otherRDB, err := os.ReadFile(snapshotFile(h, "snap-other", "0001"))
	if err != nil {
		t.Fatal(err)
	}
	if len(otherRDB) <= 16<<20 {
		t.Fatalf("the large snapshot has only %d bytes; the multipart export is not exercised", len(otherRDB))
	}
	if _, err := c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-other"),
		TargetSnapshotName: aws.String("big"), TargetBucket: aws.String("exports")}); err != nil {
		t.Fatalf("export of %d bytes: %v", len(otherRDB), err)
	}
	if got := getObject(t, s3c, "exports", "big-0001.rdb"); sha256.Sum256(got) != sha256.Sum256(otherRDB) {
		t.Fatalf("the multipart export (%d bytes) differs from the snapshot (%d bytes)", len(got), len(otherRDB))
	}

	// An RDB the user uploads under a key of their own seeds a cluster.
	if _, err := s3c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: aws.String("seeds"), Key: aws.String("uploads/2024/other.rdb"),
		Body: bytes.NewReader(otherRDB), ContentLength: aws.Int64(int64(len(otherRDB)))}); err != nil {
		t.Fatal(err)
	}
	fromUpload := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("from-upload"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.small"), SnapshotArns: []string{"arn:aws:s3:::seeds/uploads/2024/other.rdb"}})
	sameData(t, otherData, readAll(t, redisClient(t, fromUpload.CacheNodes[0])), 60*time.Second)

	// An object that is not an RDB, and one that is not there: refused, no cluster.
	if _, err := s3c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: aws.String("seeds"), Key: aws.String("notes.txt"),
		Body: strings.NewReader("hello, this is not an RDB file")}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ id, arn, says string }{
		{"bad-seed", "arn:aws:s3:::seeds/notes.txt", "is not an RDB file"},
		{"no-seed", "arn:aws:s3:::seeds/uploads/missing.rdb", "arn:aws:s3:::seeds/uploads/missing.rdb"},
	} {
		_, err = c.CreateCacheCluster(ctx(t), &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String(bad.id), Engine: aws.String("redis"),
			CacheNodeType: aws.String("cache.t3.micro"), SnapshotArns: []string{bad.arn}})
		wantAPIError(t, err, "InvalidParameterValue", 400)
		if !strings.Contains(err.Error(), bad.says) {
			t.Fatalf("seeding from %s: the error does not say %q: %v", bad.arn, bad.says, err)
		}
		_, err = c.DescribeCacheClusters(ctx(t), &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String(bad.id)})
		wantAPIError(t, err, "CacheClusterNotFound", 404)
		left, _ := filepath.Glob(filepath.Join(h.dataDir, "seeds", testAccount, "us-east-1", bad.id+"-*"))
		if len(left) > 0 {
			t.Fatalf("a refused seed left staging files: %v", left)
		}
	}

	// Nothing is left half-uploaded in any bucket.
	for _, b := range []string{"exports", "seeds", "eu-exports"} {
		mu, err := s3c.ListMultipartUploads(ctx(t), &s3.ListMultipartUploadsInput{Bucket: aws.String(b)})
		if err != nil {
			t.Fatal(err)
		}
		if len(mu.Uploads) != 0 {
			t.Fatalf("bucket %s has %d pending multipart uploads", b, len(mu.Uploads))
		}
	}
	objs, err := s3c.ListObjectsV2(ctx(t), &s3.ListObjectsV2Input{Bucket: aws.String("exports")})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	if strings.Join(keys, ",") != "big-0001.rdb,nightly-0001.rdb" {
		t.Fatalf("bucket exports holds %v", keys)
	}
}
