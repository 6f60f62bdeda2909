package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
	"github.com/redis/go-redis/v9"
)

// keyState is what a key holds: its type, its serialized value and its TTL.
type keyState struct {
	kind string
	dump string
	ttl  time.Duration
}

// fillMixed writes n keys of mixed types, every other one with a TTL.
func fillMixed(t *testing.T, rc *redis.Client, n int) {
	t.Helper()
	c := context.Background()
	pipe := rc.Pipeline()
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("key:%05d", i)
		switch i % 5 {
		case 0:
			pipe.Set(c, key, strings.Repeat("v", i%50+1), 0)
		case 1:
			pipe.HSet(c, key, "a", i, "b", "two")
		case 2:
			pipe.RPush(c, key, i, i+1, "x")
		case 3:
			pipe.SAdd(c, key, i, "m", "n")
		case 4:
			pipe.ZAdd(c, key, redis.Z{Score: float64(i), Member: "z"}, redis.Z{Score: 1.5, Member: "y"})
		}
		if i%2 == 0 {
			pipe.Expire(c, key, time.Duration(1000+i)*time.Second)
		}
		if i%500 == 499 {
			if _, err := pipe.Exec(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := pipe.Exec(c); err != nil {
		t.Fatal(err)
	}
}

// readAll returns the state of every key: its type, its value in a canonical
// form (members sorted, since a restored set or hash may iterate in another order)
// and its TTL.
func readAll(t *testing.T, rc *redis.Client) map[string]keyState {
	t.Helper()
	c := context.Background()
	keys, err := rc.Keys(c, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	pipe := rc.Pipeline()
	kinds, ttls := make([]*redis.StatusCmd, len(keys)), make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		kinds[i], ttls[i] = pipe.Type(c, k), pipe.PTTL(c, k)
	}
	if _, err := pipe.Exec(c); err != nil {
		t.Fatal(err)
	}
	values := make([]redis.Cmder, len(keys))
	for i, k := range keys {
		switch kinds[i].Val() {
		case "string":
			values[i] = pipe.Get(c, k)
		case "hash":
			values[i] = pipe.HGetAll(c, k)
		case "list":
			values[i] = pipe.LRange(c, k, 0, -1)
		case "set":
			values[i] = pipe.SMembers(c, k)
		case "zset":
			values[i] = pipe.ZRangeWithScores(c, k, 0, -1)
		default:
			t.Fatalf("key %s has unexpected type %s", k, kinds[i].Val())
		}
	}
	if _, err := pipe.Exec(c); err != nil {
		t.Fatal(err)
	}
	state := make(map[string]keyState, len(keys))
	for i, k := range keys {
		var v string
		switch cmd := values[i].(type) {
		case *redis.StringCmd:
			v = cmd.Val()
		case *redis.MapStringStringCmd:
			v = fmt.Sprint(cmd.Val()) // fmt prints maps with sorted keys
		case *redis.StringSliceCmd:
			vals := cmd.Val()
			if kinds[i].Val() == "set" {
				sort.Strings(vals)
			}
			v = strings.Join(vals, "\x00")
		case *redis.ZSliceCmd:
			v = fmt.Sprint(cmd.Val())
		}
		state[k] = keyState{kind: kinds[i].Val(), dump: v, ttl: ttls[i].Val()}
	}
	return state
}

// sameData compares two key sets: every key, type and value, TTLs within slack.
func sameData(t *testing.T, want, got map[string]keyState, slack time.Duration) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("restored %d keys, want %d", len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Fatalf("key %s lost", k)
		case g.kind != w.kind || g.dump != w.dump:
			t.Fatalf("key %s: %s differs after restore (was %s)", k, g.kind, w.kind)
		case (w.ttl < 0) != (g.ttl < 0) || w.ttl-g.ttl > slack || g.ttl-w.ttl > slack:
			t.Fatalf("key %s: TTL %v, want about %v", k, g.ttl, w.ttl)
		}
	}
}

func waitSnapshot(t *testing.T, c *elasticache.Client, name string) types.Snapshot {
	t.Helper()
	var sn types.Snapshot
	eventually(t, 30*time.Second, func() string {
		out, err := c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{SnapshotName: aws.String(name)})
		if err != nil {
			return err.Error()
		}
		sn = out.Snapshots[0]
		if s := aws.ToString(sn.SnapshotStatus); s != "available" {
			if s == "failed" {
				t.Fatalf("snapshot %s failed", name)
			}
			return "snapshot " + s
		}
		return ""
	})
	return sn
}

func TestSnapshotCopyExportRestore(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("src"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), NumCacheNodes: aws.Int32(1)})
	rc := redisClient(t, cl.CacheNodes[0])
	fillMixed(t, rc, 10000)
	before := readAll(t, rc)

	out, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{CacheClusterId: aws.String("src"), SnapshotName: aws.String("Snap-1")})
	if err != nil {
		t.Fatal(err)
	}
	if s := aws.ToString(out.Snapshot.SnapshotStatus); s != "creating" || aws.ToString(out.Snapshot.SnapshotSource) != "manual" || aws.ToString(out.Snapshot.SnapshotName) != "snap-1" {
		t.Fatalf("new snapshot: %+v", out.Snapshot)
	}
	sn := waitSnapshot(t, c, "snap-1")
	if len(sn.NodeSnapshots) != 1 || aws.ToString(sn.NodeSnapshots[0].CacheSize) == "" || sn.NodeSnapshots[0].SnapshotCreateTime == nil ||
		aws.ToString(sn.CacheClusterId) != "src" || aws.ToString(sn.Engine) != "redis" || aws.ToString(sn.CacheNodeType) != "cache.t3.micro" {
		t.Fatalf("available snapshot: %+v", sn)
	}
	if s := aws.ToString(describeCluster(t, c, "src").CacheClusterStatus); s != "available" {
		t.Fatalf("the cluster is %s after its snapshot", s)
	}

	// A copy is independent: the source can go.
	if _, err := c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-1"), TargetSnapshotName: aws.String("snap-2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSnapshot(ctx(t), &elasticache.DeleteSnapshotInput{SnapshotName: aws.String("snap-1")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{SnapshotName: aws.String("snap-1")})
	wantAPIError(t, err, "SnapshotNotFoundFault", 404)

	restored := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("restored"), SnapshotName: aws.String("snap-2")})
	if aws.ToString(restored.Engine) != "redis" || aws.ToString(restored.CacheNodeType) != "cache.t3.micro" {
		t.Fatalf("the restored cluster did not take the snapshot's engine and node type: %+v", restored)
	}
	sameData(t, before, readAll(t, redisClient(t, restored.CacheNodes[0])), 30*time.Second)

	// Export to a bucket (a directory under <data-dir>/s3/ without --s3-endpoint).
	bucket := filepath.Join(h.dataDir, "s3", "exports")
	if err := os.MkdirAll(bucket, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-2"), TargetSnapshotName: aws.String("nightly"),
		TargetBucket: aws.String("exports")}); err != nil {
		t.Fatal(err)
	}
	rdb, err := os.ReadFile(filepath.Join(bucket, "nightly-0001.rdb"))
	if err != nil || !strings.HasPrefix(string(rdb), "REDIS") {
		t.Fatalf("exported object: %v, starts %q", err, rdb[:min(len(rdb), 9)])
	}
	_, err = c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-2"), TargetSnapshotName: aws.String("nightly"), TargetBucket: aws.String("exports")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	if !strings.Contains(err.Error(), "The S3 bucket exports already contains an object with key nightly-0001.rdb") {
		t.Fatalf("existing key: %v", err)
	}
	_, err = c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-2"), TargetSnapshotName: aws.String("x"), TargetBucket: aws.String("no-such-bucket")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	if !strings.Contains(err.Error(), "The S3 bucket no-such-bucket does not exist") {
		t.Fatalf("missing bucket: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.dataDir, "s3", "no-such-bucket")); !os.IsNotExist(err) {
		t.Fatal("a failed export created the bucket")
	}

	// Seed a new cluster from the exported object.
	seeded := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("seeded"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), SnapshotArns: []string{"arn:aws:s3:::exports/nightly-0001.rdb"}})
	sameData(t, before, readAll(t, redisClient(t, seeded.CacheNodes[0])), 60*time.Second)

	// A file that is not an RDB is refused, and no cluster is left half-made.
	if err := os.WriteFile(filepath.Join(bucket, "notes.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateCacheCluster(ctx(t), &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("bad-seed"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), SnapshotArns: []string{"arn:aws:s3:::exports/notes.txt"}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeCacheClusters(ctx(t), &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String("bad-seed")})
	wantAPIError(t, err, "CacheClusterNotFound", 404)
	_, err = c.CreateCacheCluster(ctx(t), &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("bad-arn"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), SnapshotArns: []string{"s3://exports/nightly-0001.rdb"}})
	wantAPIError(t, err, "InvalidParameterValue", 400)

	// A final snapshot on delete holds the data too.
	if _, err := c.DeleteCacheCluster(ctx(t), &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String("restored"), FinalSnapshotIdentifier: aws.String("last-words")}); err != nil {
		t.Fatal(err)
	}
	final := waitSnapshot(t, c, "last-words")
	if aws.ToString(final.CacheClusterId) != "restored" {
		t.Fatalf("final snapshot: %+v", final)
	}
}

func TestSnapshotErrors(t *testing.T) {
	h := startHoard(t, fastReconcile, withArgs("--quota-manual-snapshots-per-day", "1"))
	c := h.client("us-east-1")
	createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("r"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), NumCacheNodes: aws.Int32(1)})
	createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("m"), Engine: aws.String("memcached"),
		CacheNodeType: aws.String("cache.t3.micro"), NumCacheNodes: aws.Int32(1)})
	snap := func(cluster, name string) error {
		_, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{CacheClusterId: aws.String(cluster), SnapshotName: aws.String(name)})
		return err
	}
	wantAPIError(t, snap("m", "mc"), "SnapshotFeatureNotSupportedFault", 400)
	wantAPIError(t, snap("ghost", "g"), "CacheClusterNotFound", 404)
	wantAPIError(t, snap("r", "1bad"), "InvalidParameterValue", 400)
	if err := snap("r", "one"); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, c, "one")
	wantAPIError(t, snap("r", "one"), "SnapshotAlreadyExistsFault", 400)
	wantAPIError(t, snap("r", "two"), "SnapshotQuotaExceededFault", 400)
	_, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{ReplicationGroupId: aws.String("rg"), SnapshotName: aws.String("x")})
	wantAPIError(t, err, "ReplicationGroupNotFoundFault", 404)
	_, err = c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{MaxRecords: aws.Int32(51)})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{SnapshotSource: aws.String("sometimes")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DeleteSnapshot(ctx(t), &elasticache.DeleteSnapshotInput{SnapshotName: aws.String("ghost")})
	wantAPIError(t, err, "SnapshotNotFoundFault", 404)
	_, err = c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("one"), TargetSnapshotName: aws.String("one")})
	wantAPIError(t, err, "SnapshotAlreadyExistsFault", 400)
	_, err = c.CreateCacheCluster(ctx(t), &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("x"), Engine: aws.String("memcached"),
		CacheNodeType: aws.String("cache.t3.micro"), SnapshotName: aws.String("one")})
	wantAPIError(t, err, "InvalidParameterCombination", 400)
	_, err = c.CreateCacheCluster(ctx(t), &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("x"), SnapshotName: aws.String("ghost")})
	wantAPIError(t, err, "SnapshotNotFoundFault", 404)
	_, err = c.DeleteCacheCluster(ctx(t), &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String("r"), FinalSnapshotIdentifier: aws.String("one")})
	wantAPIError(t, err, "SnapshotAlreadyExistsFault", 400)

	// A damaged snapshot file is caught by its checksum: neither copied nor restored.
	file := filepath.Join(h.dataDir, "snapshots", testAccount, "us-east-1", "one", "0001.rdb")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("one"), TargetSnapshotName: aws.String("copy-of-damaged")})
	wantAPIError(t, err, "InvalidSnapshotState", 400)
	_, err = c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{SnapshotName: aws.String("copy-of-damaged")})
	wantAPIError(t, err, "SnapshotNotFoundFault", 404)
	_, err = c.CreateCacheCluster(ctx(t), &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("from-damaged"), SnapshotName: aws.String("one")})
	wantAPIError(t, err, "InvalidSnapshotState", 400)

	bySource, err := c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{CacheClusterId: aws.String("r"), SnapshotSource: aws.String("manual")})
	if err != nil || len(bySource.Snapshots) != 1 {
		t.Fatalf("manual snapshots of r: %+v %v", bySource, err)
	}
	tags, err := c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: bySource.Snapshots[0].ARN})
	if err != nil || tags.TagList == nil {
		t.Fatalf("a snapshot is taggable by its ARN: %v", err)
	}
}

// A cluster whose snapshot window covers now gets its daily automated snapshot,
// with its data, once.
func TestAutomatedDailySnapshot(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	now := time.Now().UTC()
	window := now.Add(-5*time.Minute).Format("15:04") + "-" + now.Add(65*time.Minute).Format("15:04")
	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("daily"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), NumCacheNodes: aws.Int32(1), SnapshotRetentionLimit: aws.Int32(3),
		SnapshotWindow: aws.String(window)})
	if aws.ToInt32(cl.SnapshotRetentionLimit) != 3 || aws.ToString(cl.SnapshotWindow) != window {
		t.Fatalf("backup settings not kept: %+v", cl)
	}
	var auto types.Snapshot
	eventually(t, 20*time.Second, func() string {
		out, err := c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{CacheClusterId: aws.String("daily"), SnapshotSource: aws.String("automated")})
		if err != nil {
			return err.Error()
		}
		if len(out.Snapshots) != 1 || aws.ToString(out.Snapshots[0].SnapshotStatus) != "available" {
			return fmt.Sprintf("automated snapshots: %d", len(out.Snapshots))
		}
		auto = out.Snapshots[0]
		return ""
	})
	if !strings.HasPrefix(aws.ToString(auto.SnapshotName), "automatic.daily-") || aws.ToString(auto.SnapshotSource) != "automated" {
		t.Fatalf("automated snapshot: %+v", auto)
	}
	time.Sleep(600 * time.Millisecond) // a few more passes inside the same window
	out, err := c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{CacheClusterId: aws.String("daily")})
	if err != nil || len(out.Snapshots) != 1 {
		t.Fatalf("want exactly one snapshot for the day, got %d (%v)", len(out.Snapshots), err)
	}
	manual, err := c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{SnapshotSource: aws.String("manual")})
	if err != nil || len(manual.Snapshots) != 0 {
		t.Fatalf("the automated snapshot shows as manual: %+v %v", manual, err)
	}
}
