package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
	"github.com/redis/go-redis/v9"
)

func describeServerless(t *testing.T, c *elasticache.Client, name string) types.ServerlessCache {
	t.Helper()
	out, err := c.DescribeServerlessCaches(ctx(t), &elasticache.DescribeServerlessCachesInput{ServerlessCacheName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.ServerlessCaches) != 1 {
		t.Fatalf("DescribeServerlessCaches(%s) gave %d caches", name, len(out.ServerlessCaches))
	}
	return out.ServerlessCaches[0]
}

// waitServerless waits until a serverless cache is available.
func waitServerless(t *testing.T, c *elasticache.Client, name string) types.ServerlessCache {
	t.Helper()
	var sc types.ServerlessCache
	eventually(t, 30*time.Second, func() string {
		sc = describeServerless(t, c, name)
		switch s := aws.ToString(sc.Status); s {
		case "available":
			return ""
		case "create-failed":
			t.Fatalf("serverless cache %s failed to create: %+v", name, eventMessages(t, c, name))
		default:
			return "status " + s
		}
		return ""
	})
	return sc
}

func createServerless(t *testing.T, c *elasticache.Client, in *elasticache.CreateServerlessCacheInput) types.ServerlessCache {
	t.Helper()
	out, err := c.CreateServerlessCache(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if s := aws.ToString(out.ServerlessCache.Status); s != "creating" {
		t.Fatalf("a new serverless cache is %s, want creating", s)
	}
	return waitServerless(t, c, aws.ToString(in.ServerlessCacheName))
}

func serverlessRedis(t *testing.T, sc types.ServerlessCache) *redis.Client {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", aws.ToString(sc.Endpoint.Address), aws.ToInt32(sc.Endpoint.Port))})
	t.Cleanup(func() { rc.Close() })
	return rc
}

// waitServerlessSnapshot waits until a serverless snapshot is available.
func waitServerlessSnapshot(t *testing.T, c *elasticache.Client, name string) types.ServerlessCacheSnapshot {
	t.Helper()
	var sn types.ServerlessCacheSnapshot
	eventually(t, 60*time.Second, func() string {
		out, err := c.DescribeServerlessCacheSnapshots(ctx(t), &elasticache.DescribeServerlessCacheSnapshotsInput{ServerlessCacheSnapshotName: aws.String(name)})
		if err != nil {
			return err.Error()
		}
		sn = out.ServerlessCacheSnapshots[0]
		switch s := aws.ToString(sn.Status); s {
		case "available":
			return ""
		case "failed":
			t.Fatalf("serverless snapshot %s failed", name)
		default:
			return "snapshot " + s
		}
		return ""
	})
	return sn
}

// TestServerlessSeedExample runs the seed document's example: its request must
// give its response, field for field.
func TestServerlessSeedExample(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	sc := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("my-serverless-cache"), Engine: aws.String("redis")})
	if aws.ToString(sc.MajorEngineVersion) != "7" || !strings.HasPrefix(aws.ToString(sc.FullEngineVersion), "7.") ||
		aws.ToString(sc.ARN) != "arn:aws:elasticache:us-east-1:"+testAccount+":serverlesscache:my-serverless-cache" ||
		sc.CreateTime == nil || sc.Endpoint == nil || sc.ReaderEndpoint == nil || len(sc.SubnetIds) == 0 {
		t.Fatalf("serverless cache: %+v", sc)
	}
	if err := serverlessRedis(t, sc).Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("the endpoint does not take writes: %v", err)
	}

	out, err := c.CreateServerlessCacheSnapshot(ctx(t), &elasticache.CreateServerlessCacheSnapshotInput{
		ServerlessCacheSnapshotName: aws.String("my-serverless-cache-snapshot"), ServerlessCacheName: aws.String("my-serverless-cache")})
	if err != nil {
		t.Fatal(err)
	}
	got := out.ServerlessCacheSnapshot
	want := types.ServerlessCacheSnapshot{
		ServerlessCacheSnapshotName: aws.String("my-serverless-cache-snapshot"),
		ARN:                         aws.String("arn:aws:elasticache:us-east-1:" + testAccount + ":serverlesscachesnapshot:my-serverless-cache-snapshot"),
		SnapshotType:                aws.String("manual"),
		Status:                      aws.String("creating"),
		ServerlessCacheConfiguration: &types.ServerlessCacheConfiguration{ServerlessCacheName: aws.String("my-serverless-cache"),
			Engine: aws.String("redis"), MajorEngineVersion: aws.String("7")},
	}
	if g, w := snapshotFields(*got), snapshotFields(want); g != w {
		t.Fatalf("CreateServerlessCacheSnapshot response\n got %s\nwant %s", g, w)
	}
	sn := waitServerlessSnapshot(t, c, "my-serverless-cache-snapshot")
	if sn.CreateTime == nil || aws.ToString(sn.BytesUsedForCache) == "" || aws.ToString(sn.BytesUsedForCache) == "0" || sn.ExpiryTime != nil {
		t.Fatalf("available snapshot: %+v", sn)
	}
}

// TestServerlessRedisRoundTrip writes 10,000 keys, snapshots, copies, exports
// and restores (from the copy, from the export, and from a cluster snapshot),
// comparing every key, type, value and TTL.
func TestServerlessRedisRoundTrip(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	sc := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("src"), Engine: aws.String("redis"),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("cache")}}})
	rc := serverlessRedis(t, sc)
	fillMixed(t, rc, 10000)
	before := readAll(t, rc)

	if _, err := c.CreateServerlessCacheSnapshot(ctx(t), &elasticache.CreateServerlessCacheSnapshotInput{
		ServerlessCacheSnapshotName: aws.String("Snap-1"), ServerlessCacheName: aws.String("src")}); err != nil {
		t.Fatal(err)
	}
	waitServerlessSnapshot(t, c, "snap-1")
	if _, err := c.CopyServerlessCacheSnapshot(ctx(t), &elasticache.CopyServerlessCacheSnapshotInput{
		SourceServerlessCacheSnapshotName: aws.String("snap-1"), TargetServerlessCacheSnapshotName: aws.String("snap-2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteServerlessCacheSnapshot(ctx(t), &elasticache.DeleteServerlessCacheSnapshotInput{ServerlessCacheSnapshotName: aws.String("snap-1")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.DescribeServerlessCacheSnapshots(ctx(t), &elasticache.DescribeServerlessCacheSnapshotsInput{ServerlessCacheSnapshotName: aws.String("snap-1")})
	wantAPIError(t, err, "ServerlessCacheSnapshotNotFoundFault", 404)

	// Restore from the copy (the source is gone: the copy is independent).
	restored := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("restored"), Engine: aws.String("redis"),
		SnapshotArnsToRestore: []string{"arn:aws:elasticache:us-east-1:" + testAccount + ":serverlesscachesnapshot:snap-2"}})
	sameData(t, before, readAll(t, serverlessRedis(t, restored)), 30*time.Second)

	// Export, then restore from the exported object.
	bucket := filepath.Join(h.dataDir, "s3", "exports")
	if err := os.MkdirAll(bucket, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExportServerlessCacheSnapshot(ctx(t), &elasticache.ExportServerlessCacheSnapshotInput{
		ServerlessCacheSnapshotName: aws.String("snap-2"), S3BucketName: aws.String("exports")}); err != nil {
		t.Fatal(err)
	}
	rdb, err := os.ReadFile(filepath.Join(bucket, "snap-2-0001.rdb"))
	if err != nil || !strings.HasPrefix(string(rdb), "REDIS") {
		t.Fatalf("exported object: %v", err)
	}
	_, err = c.ExportServerlessCacheSnapshot(ctx(t), &elasticache.ExportServerlessCacheSnapshotInput{
		ServerlessCacheSnapshotName: aws.String("snap-2"), S3BucketName: aws.String("exports")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	if !strings.Contains(err.Error(), "already contains an object with key snap-2-0001.rdb") {
		t.Fatalf("export over an existing key: %v", err)
	}
	seeded := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("seeded"), Engine: aws.String("redis"),
		SnapshotArnsToRestore: []string{"arn:aws:s3:::exports/snap-2-0001.rdb"}})
	sameData(t, before, readAll(t, serverlessRedis(t, seeded)), 60*time.Second)

	// A node-based cluster's snapshot migrates into a serverless cache.
	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("nodes"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), SnapshotArns: []string{"arn:aws:s3:::exports/snap-2-0001.rdb"}})
	if aws.ToString(cl.CacheClusterStatus) != "available" {
		t.Fatalf("cluster: %+v", cl)
	}
	if _, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{CacheClusterId: aws.String("nodes"), SnapshotName: aws.String("from-nodes")}); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, c, "from-nodes")
	migrated := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("migrated"), Engine: aws.String("redis"),
		SnapshotArnsToRestore: []string{"arn:aws:elasticache:us-east-1:" + testAccount + ":snapshot:from-nodes"}})
	sameData(t, before, readAll(t, serverlessRedis(t, migrated)), 60*time.Second)

	// Delete with a final snapshot: the data outlives the cache.
	if _, err := c.DeleteServerlessCache(ctx(t), &elasticache.DeleteServerlessCacheInput{ServerlessCacheName: aws.String("src"), FinalSnapshotName: aws.String("last")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		_, err := c.DescribeServerlessCaches(ctx(t), &elasticache.DescribeServerlessCachesInput{ServerlessCacheName: aws.String("src")})
		if err == nil {
			return "src still exists"
		}
		wantAPIError(t, err, "ServerlessCacheNotFoundFault", 404)
		return ""
	})
	last := waitServerlessSnapshot(t, c, "last")
	if aws.ToString(last.ServerlessCacheConfiguration.ServerlessCacheName) != "src" {
		t.Fatalf("final snapshot: %+v", last)
	}
	if err := rc.Ping(context.Background()).Err(); err == nil {
		t.Fatal("the deleted cache's engine still answers")
	}
}

// TestServerlessDataStorageLimit checks DataStorage.Maximum bounds the data as
// ElastiCache Serverless documents: keys with a TTL are evicted, and once only
// keys without one are left, writes are refused. Raising the limit reaches the
// running engine.
func TestServerlessDataStorageLimit(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	limits := &types.CacheUsageLimits{DataStorage: &types.DataStorage{Maximum: aws.Int32(1), Unit: types.DataStorageUnitGb},
		ECPUPerSecond: &types.ECPUPerSecond{Maximum: aws.Int32(5000)}}
	sc := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("bounded"), Engine: aws.String("redis"), CacheUsageLimits: limits})
	if d := sc.CacheUsageLimits.DataStorage; aws.ToInt32(d.Maximum) != 1 || d.Unit != types.DataStorageUnitGb || aws.ToInt32(sc.CacheUsageLimits.ECPUPerSecond.Maximum) != 5000 {
		t.Fatalf("usage limits not kept: %+v", sc.CacheUsageLimits)
	}
	rc := serverlessRedis(t, sc)
	bg := context.Background()
	value := strings.Repeat("x", 1<<20)
	// 200 MiB with a TTL, then keys without one until the engine refuses.
	for i := 0; i < 200; i++ {
		if err := rc.Set(bg, fmt.Sprintf("ttl:%d", i), value, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var refused error
	written := 0
	for i := 0; i < 1500 && refused == nil; i++ {
		if refused = rc.Set(bg, fmt.Sprintf("keep:%d", i), value, 0).Err(); refused == nil {
			written++
		}
	}
	if refused == nil || !strings.Contains(refused.Error(), "OOM") {
		t.Fatalf("1.5 GiB written into a 1 GB cache without refusal (%v)", refused)
	}
	if ttlLeft, _ := rc.Keys(bg, "ttl:*").Result(); len(ttlLeft) > 5 {
		t.Fatalf("%d keys with a TTL survived; they should be evicted first", len(ttlLeft))
	}
	if written < 768 { // jemalloc holds a 1 MiB value in a 1.25 MiB size class: about 819 fit
		t.Fatalf("only %d MiB without a TTL fitted in 1 GB", written)
	}
	if n, _ := rc.Exists(bg, "keep:0", fmt.Sprintf("keep:%d", written-1)).Result(); n != 2 {
		t.Fatal("keys without a TTL were evicted")
	}

	out, err := c.ModifyServerlessCache(ctx(t), &elasticache.ModifyServerlessCacheInput{ServerlessCacheName: aws.String("bounded"),
		CacheUsageLimits: &types.CacheUsageLimits{DataStorage: &types.DataStorage{Maximum: aws.Int32(2), Unit: types.DataStorageUnitGb}}})
	if err != nil {
		t.Fatal(err)
	}
	if s := aws.ToString(out.ServerlessCache.Status); s != "modifying" {
		t.Fatalf("a cache being modified is %s", s)
	}
	sc = waitServerless(t, c, "bounded")
	if aws.ToInt32(sc.CacheUsageLimits.DataStorage.Maximum) != 2 || aws.ToInt32(sc.CacheUsageLimits.ECPUPerSecond.Maximum) != 5000 {
		t.Fatalf("modified limits: %+v", sc.CacheUsageLimits)
	}
	if err := rc.Set(bg, "after-raise", value, 0).Err(); err != nil {
		t.Fatalf("write refused after raising the limit: %v", err)
	}
}

// TestServerlessErrors provokes every documented error.
func TestServerlessErrors(t *testing.T) {
	h := startHoard(t, fastReconcile, withArgs("--quota-serverless-snapshots-per-day", "1", "--quota-serverless-caches", "2"))
	c := h.client("us-east-1")
	createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("one"), Engine: aws.String("redis")})

	snap := func(cache, name string, tags int, kms string) error {
		in := &elasticache.CreateServerlessCacheSnapshotInput{ServerlessCacheName: aws.String(cache), ServerlessCacheSnapshotName: aws.String(name)}
		for i := 0; i < tags; i++ {
			in.Tags = append(in.Tags, types.Tag{Key: aws.String(fmt.Sprintf("k%d", i)), Value: aws.String("v")})
		}
		if kms != "" {
			in.KmsKeyId = aws.String(kms)
		}
		_, err := c.CreateServerlessCacheSnapshot(ctx(t), in)
		return err
	}
	wantAPIError(t, snap("nope", "s", 0, ""), "ServerlessCacheNotFoundFault", 404)
	wantAPIError(t, snap("one", strings.Repeat("a", 256), 0, ""), "InvalidParameterValue", 400)
	wantAPIError(t, snap("one", "s", 51, ""), "TagQuotaPerResourceExceeded", 400)
	wantAPIError(t, snap("one", "s", 0, "no-such-key"), "InvalidParameterValue", 400)
	if err := snap("one", "First", 0, ""); err != nil {
		t.Fatal(err)
	}
	// While the first is taken the cache is busy; once done, the name is taken
	// and the day's quota (1 here) used up.
	waitServerlessSnapshot(t, c, "first")
	wantAPIError(t, snap("one", "FIRST", 0, ""), "ServerlessCacheSnapshotAlreadyExistsFault", 400)
	wantAPIError(t, snap("one", "second", 0, ""), "ServerlessCacheSnapshotQuotaExceededFault", 400)

	// A cache that is not available.
	if _, err := c.CreateServerlessCache(ctx(t), &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("two"), Engine: aws.String("redis")}); err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, snap("two", "too-soon", 0, ""), "InvalidServerlessCacheStateFault", 400)
	waitServerless(t, c, "two")

	create := func(in *elasticache.CreateServerlessCacheInput) error {
		_, err := c.CreateServerlessCache(ctx(t), in)
		return err
	}
	wantAPIError(t, create(&elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("one"), Engine: aws.String("redis")}), "ServerlessCacheAlreadyExistsFault", 400)
	wantAPIError(t, create(&elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("three"), Engine: aws.String("redis")}), "ServerlessCacheQuotaForCustomerExceededFault", 400)
	wantAPIError(t, create(&elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("x"), Engine: aws.String("mysql")}), "InvalidParameterValue", 400)
	// valkey runs where valkey-server is installed; elsewhere the error names what is missing.
	if _, err := exec.LookPath("valkey-server"); err != nil {
		err := create(&elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("vk"), Engine: aws.String("valkey")})
		wantAPIError(t, err, "InvalidParameterValue", 400)
		if !strings.Contains(err.Error(), "valkey-server") {
			t.Errorf("the error does not name valkey-server: %v", err)
		}
	}
	wantAPIError(t, create(&elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("x"), Engine: aws.String("redis"), MajorEngineVersion: aws.String("6")}), "InvalidParameterValue", 400)
	wantAPIError(t, create(&elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("x"), Engine: aws.String("redis"),
		CacheUsageLimits: &types.CacheUsageLimits{DataStorage: &types.DataStorage{Maximum: aws.Int32(1), Minimum: aws.Int32(2), Unit: types.DataStorageUnitGb}}}), "InvalidParameterCombination", 400)
	wantAPIError(t, create(&elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("x"), Engine: aws.String("redis"),
		CacheUsageLimits: &types.CacheUsageLimits{DataStorage: &types.DataStorage{Maximum: aws.Int32(6000), Unit: types.DataStorageUnitGb}}}), "InvalidParameterValue", 400)
	wantAPIError(t, create(&elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("x"), Engine: aws.String("redis"), UserGroupId: aws.String("ug")}), "UserGroupNotFound", 404)
	wantAPIError(t, create(&elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("x"), Engine: aws.String("memcached"),
		SnapshotArnsToRestore: []string{"arn:aws:elasticache:us-east-1:" + testAccount + ":serverlesscachesnapshot:first"}}), "InvalidParameterCombination", 400)
	wantAPIError(t, create(&elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("x"), Engine: aws.String("redis"),
		SnapshotArnsToRestore: []string{"arn:aws:elasticache:us-east-1:" + testAccount + ":serverlesscachesnapshot:missing"}}), "ServerlessCacheSnapshotNotFoundFault", 404)
	if _, err := os.Stat(filepath.Join(h.dataDir, "seeds", testAccount, "us-east-1")); err == nil {
		if entries, _ := os.ReadDir(filepath.Join(h.dataDir, "seeds", testAccount, "us-east-1")); len(entries) > 0 {
			t.Fatalf("refused restores left staged data: %v", entries)
		}
	}

	_, err := c.DescribeServerlessCaches(ctx(t), &elasticache.DescribeServerlessCachesInput{ServerlessCacheName: aws.String("nope")})
	wantAPIError(t, err, "ServerlessCacheNotFoundFault", 404)
	_, err = c.DescribeServerlessCaches(ctx(t), &elasticache.DescribeServerlessCachesInput{MaxResults: aws.Int32(51)})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	page, err := c.DescribeServerlessCaches(ctx(t), &elasticache.DescribeServerlessCachesInput{MaxResults: aws.Int32(1)})
	if err != nil || len(page.ServerlessCaches) != 1 || aws.ToString(page.NextToken) == "" {
		t.Fatalf("first page: %+v %v", page, err)
	}
	page, err = c.DescribeServerlessCaches(ctx(t), &elasticache.DescribeServerlessCachesInput{MaxResults: aws.Int32(1), NextToken: page.NextToken})
	if err != nil || len(page.ServerlessCaches) != 1 || aws.ToString(page.ServerlessCaches[0].ServerlessCacheName) != "two" || page.NextToken != nil {
		t.Fatalf("second page: %+v %v", page, err)
	}
	_, err = c.DescribeServerlessCacheSnapshots(ctx(t), &elasticache.DescribeServerlessCacheSnapshotsInput{ServerlessCacheName: aws.String("nope")})
	wantAPIError(t, err, "ServerlessCacheNotFoundFault", 404)
	_, err = c.DescribeServerlessCacheSnapshots(ctx(t), &elasticache.DescribeServerlessCacheSnapshotsInput{SnapshotType: aws.String("weekly")})
	wantAPIError(t, err, "InvalidParameterValue", 400)

	_, err = c.CopyServerlessCacheSnapshot(ctx(t), &elasticache.CopyServerlessCacheSnapshotInput{SourceServerlessCacheSnapshotName: aws.String("nope"), TargetServerlessCacheSnapshotName: aws.String("t")})
	wantAPIError(t, err, "ServerlessCacheSnapshotNotFoundFault", 404)
	_, err = c.CopyServerlessCacheSnapshot(ctx(t), &elasticache.CopyServerlessCacheSnapshotInput{SourceServerlessCacheSnapshotName: aws.String("first"), TargetServerlessCacheSnapshotName: aws.String("first")})
	wantAPIError(t, err, "ServerlessCacheSnapshotAlreadyExistsFault", 400)
	_, err = c.ExportServerlessCacheSnapshot(ctx(t), &elasticache.ExportServerlessCacheSnapshotInput{ServerlessCacheSnapshotName: aws.String("first"), S3BucketName: aws.String("no-such-bucket")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	if !strings.Contains(err.Error(), "The S3 bucket no-such-bucket does not exist") {
		t.Fatalf("missing bucket: %v", err)
	}
	_, err = c.DeleteServerlessCacheSnapshot(ctx(t), &elasticache.DeleteServerlessCacheSnapshotInput{ServerlessCacheSnapshotName: aws.String("nope")})
	wantAPIError(t, err, "ServerlessCacheSnapshotNotFoundFault", 404)
	_, err = c.ModifyServerlessCache(ctx(t), &elasticache.ModifyServerlessCacheInput{ServerlessCacheName: aws.String("nope")})
	wantAPIError(t, err, "ServerlessCacheNotFoundFault", 404)
	_, err = c.DeleteServerlessCache(ctx(t), &elasticache.DeleteServerlessCacheInput{ServerlessCacheName: aws.String("one"), FinalSnapshotName: aws.String("first")})
	wantAPIError(t, err, "ServerlessCacheSnapshotAlreadyExistsFault", 400)

	// Tags on both kinds of resource.
	for _, arn := range []string{"arn:aws:elasticache:us-east-1:" + testAccount + ":serverlesscache:one", "arn:aws:elasticache:us-east-1:" + testAccount + ":serverlesscachesnapshot:first"} {
		if _, err := c.AddTagsToResource(ctx(t), &elasticache.AddTagsToResourceInput{ResourceName: aws.String(arn), Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}); err != nil {
			t.Fatalf("tagging %s: %v", arn, err)
		}
	}
}

// TestServerlessAutomatedSnapshots: a DailySnapshotTime that has just passed
// makes hoard take the day's automated snapshot, with its expiry.
func TestServerlessAutomatedSnapshots(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	daily := time.Now().UTC().Add(-5 * time.Minute).Format("15:04")
	sc := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("daily"), Engine: aws.String("redis"),
		SnapshotRetentionLimit: aws.Int32(2), DailySnapshotTime: aws.String(daily)})
	if aws.ToInt32(sc.SnapshotRetentionLimit) != 2 || aws.ToString(sc.DailySnapshotTime) != daily {
		t.Fatalf("snapshot settings not kept: %+v", sc)
	}
	var auto types.ServerlessCacheSnapshot
	eventually(t, 30*time.Second, func() string {
		out, err := c.DescribeServerlessCacheSnapshots(ctx(t), &elasticache.DescribeServerlessCacheSnapshotsInput{ServerlessCacheName: aws.String("daily"), SnapshotType: aws.String("automated")})
		if err != nil {
			return err.Error()
		}
		if len(out.ServerlessCacheSnapshots) != 1 || aws.ToString(out.ServerlessCacheSnapshots[0].Status) != "available" {
			return fmt.Sprintf("automated snapshots: %d", len(out.ServerlessCacheSnapshots))
		}
		auto = out.ServerlessCacheSnapshots[0]
		return ""
	})
	if !strings.HasPrefix(aws.ToString(auto.ServerlessCacheSnapshotName), "automatic.daily-") || auto.ExpiryTime == nil ||
		auto.ExpiryTime.Sub(*auto.CreateTime) != 48*time.Hour {
		t.Fatalf("automated snapshot: %+v", auto)
	}
	time.Sleep(600 * time.Millisecond) // more passes inside the same hour take no second one
	out, err := c.DescribeServerlessCacheSnapshots(ctx(t), &elasticache.DescribeServerlessCacheSnapshotsInput{ServerlessCacheName: aws.String("daily")})
	if err != nil || len(out.ServerlessCacheSnapshots) != 1 {
		t.Fatalf("want one snapshot for the day, got %+v (%v)", out, err)
	}
	manual, err := c.DescribeServerlessCacheSnapshots(ctx(t), &elasticache.DescribeServerlessCacheSnapshotsInput{SnapshotType: aws.String("manual")})
	if err != nil || len(manual.ServerlessCacheSnapshots) != 0 {
		t.Fatalf("the automated snapshot shows as manual: %+v %v", manual, err)
	}
}

// snapshotFields prints every field of a serverless snapshot, pointers followed.
func snapshotFields(sn types.ServerlessCacheSnapshot) string {
	opt := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	cfg := "<nil>"
	if c := sn.ServerlessCacheConfiguration; c != nil {
		cfg = fmt.Sprintf("{%s %s %s}", opt(c.ServerlessCacheName), opt(c.Engine), opt(c.MajorEngineVersion))
	}
	return fmt.Sprintf("name=%s arn=%s type=%s status=%s kms=%s bytes=%s created=%v expiry=%v config=%s",
		opt(sn.ServerlessCacheSnapshotName), opt(sn.ARN), opt(sn.SnapshotType), opt(sn.Status), opt(sn.KmsKeyId),
		opt(sn.BytesUsedForCache), sn.CreateTime, sn.ExpiryTime, cfg)
}

// TestServerlessSnapshotKill9 kills hoard with SIGKILL while it snapshots a
// 300 MiB serverless cache, restarts it, and checks the snapshot ends in one of
// the two allowed states: available with data that restores whole, or failed
// with no files left. Either way the cache is available and can snapshot again.
func TestServerlessSnapshotKill9(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	sc := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("big"), Engine: aws.String("redis")})
	fillLarge(t, serverlessRedis(t, sc), crashKeys)

	final := filepath.Join(h.dataDir, "serverless-snapshots", testAccount, "us-east-1", "mid-crash")
	if _, err := c.CreateServerlessCacheSnapshot(ctx(t), &elasticache.CreateServerlessCacheSnapshotInput{
		ServerlessCacheName: aws.String("big"), ServerlessCacheSnapshotName: aws.String("mid-crash")}); err != nil {
		t.Fatal(err)
	}
	streaming := filepath.Join(final+".staging", "0001.rdb.tmp")
	deadline := time.Now().Add(30 * time.Second)
	for fileSize(streaming) < crashKeys*crashValueSize/3 && !exists(final) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("killing hoard with %d bytes streamed (final directory present: %v)", fileSize(streaming), exists(final))
	h.kill9()
	h.restart()
	c = h.client("us-east-1") // the new process listens on a new port

	var status string
	eventually(t, 30*time.Second, func() string {
		out, err := c.DescribeServerlessCacheSnapshots(ctx(t), &elasticache.DescribeServerlessCacheSnapshotsInput{ServerlessCacheSnapshotName: aws.String("mid-crash")})
		if err != nil {
			return err.Error()
		}
		if status = aws.ToString(out.ServerlessCacheSnapshots[0].Status); status == "creating" {
			return "still creating"
		}
		return ""
	})
	switch status {
	case "failed":
		if exists(final) || exists(final+".staging") {
			t.Fatal("a failed snapshot left files behind")
		}
	case "available":
		restored := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("restored"), Engine: aws.String("redis"),
			SnapshotArnsToRestore: []string{"arn:aws:elasticache:us-east-1:" + testAccount + ":serverlesscachesnapshot:mid-crash"}})
		checkLarge(t, serverlessRedis(t, restored), crashKeys)
	default:
		t.Fatalf("after the crash the snapshot is %q", status)
	}
	t.Logf("the interrupted snapshot ended %s", status)
	waitServerless(t, c, "big")
	if _, err := c.CreateServerlessCacheSnapshot(ctx(t), &elasticache.CreateServerlessCacheSnapshotInput{
		ServerlessCacheName: aws.String("big"), ServerlessCacheSnapshotName: aws.String("after-crash")}); err != nil {
		t.Fatal(err)
	}
	waitServerlessSnapshot(t, c, "after-crash")
}

// hoardKeys runs `hoard keys ARGS` on a data dir and returns its output.
func hoardKeys(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(hoardBin, append([]string{"keys"}, append(args, "--data-dir", dataDir)...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HOARD_ACCOUNT_ID=" + testAccount}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hoard keys %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestServerlessEncryptedSnapshots: a snapshot with a KmsKeyId is stored
// encrypted (no plaintext on disk), restores, copies (re-encrypted under another
// key), exports as a plain RDB, and cannot be restored once its key is gone.
func TestServerlessEncryptedSnapshots(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	created := hoardKeys(t, h.dataDir, "create", "--alias", "alias/snaps", "--description", "e2e")
	var keyID string
	if _, err := fmt.Sscanf(created, "KeyId: %s", &keyID); err != nil || len(keyID) != 36 {
		t.Fatalf("hoard keys create printed %q", created)
	}
	hoardKeys(t, h.dataDir, "create", "--alias", "alias/other")
	if list := hoardKeys(t, h.dataDir, "list"); !strings.Contains(list, keyID) || !strings.Contains(list, "alias/other") {
		t.Fatalf("hoard keys list:\n%s", list)
	}

	sc := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("secret"), Engine: aws.String("redis")})
	rc := serverlessRedis(t, sc)
	const marker = "plaintext-marker-0123456789"
	if err := rc.Set(context.Background(), "marker", marker, 0).Err(); err != nil {
		t.Fatal(err)
	}
	fillMixed(t, rc, 2000)
	before := readAll(t, rc)

	out, err := c.CreateServerlessCacheSnapshot(ctx(t), &elasticache.CreateServerlessCacheSnapshotInput{ServerlessCacheName: aws.String("secret"),
		ServerlessCacheSnapshotName: aws.String("locked"), KmsKeyId: aws.String("alias/snaps")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.ServerlessCacheSnapshot.KmsKeyId) != "alias/snaps" {
		t.Fatalf("KmsKeyId not echoed: %+v", out.ServerlessCacheSnapshot)
	}
	waitServerlessSnapshot(t, c, "locked")
	stored, err := os.ReadFile(filepath.Join(h.dataDir, "serverless-snapshots", testAccount, "us-east-1", "locked", "0001.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(string(stored), "REDIS") || strings.Contains(string(stored), marker) {
		t.Fatal("the encrypted snapshot's file holds plaintext")
	}

	restore := func(name, from string) error {
		_, err := c.CreateServerlessCache(ctx(t), &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String(name), Engine: aws.String("redis"),
			SnapshotArnsToRestore: []string{"arn:aws:elasticache:us-east-1:" + testAccount + ":serverlesscachesnapshot:" + from}})
		return err
	}
	if err := restore("opened", "locked"); err != nil {
		t.Fatal(err)
	}
	sameData(t, before, readAll(t, serverlessRedis(t, waitServerless(t, c, "opened"))), 30*time.Second)

	// A copy under another key (by key ARN), and a copy that keeps the source's key.
	otherARN := "arn:aws:kms:us-east-1:" + testAccount + ":alias/other"
	cp, err := c.CopyServerlessCacheSnapshot(ctx(t), &elasticache.CopyServerlessCacheSnapshotInput{SourceServerlessCacheSnapshotName: aws.String("locked"),
		TargetServerlessCacheSnapshotName: aws.String("rekeyed"), KmsKeyId: aws.String(otherARN)})
	if err != nil || aws.ToString(cp.ServerlessCacheSnapshot.KmsKeyId) != otherARN {
		t.Fatalf("copy under another key: %+v %v", cp, err)
	}
	cp, err = c.CopyServerlessCacheSnapshot(ctx(t), &elasticache.CopyServerlessCacheSnapshotInput{SourceServerlessCacheSnapshotName: aws.String("locked"),
		TargetServerlessCacheSnapshotName: aws.String("same-key")})
	if err != nil || aws.ToString(cp.ServerlessCacheSnapshot.KmsKeyId) != "alias/snaps" {
		t.Fatalf("copy keeping the key: %+v %v", cp, err)
	}
	if err := restore("rekeyed-cache", "rekeyed"); err != nil {
		t.Fatal(err)
	}
	sameData(t, before, readAll(t, serverlessRedis(t, waitServerless(t, c, "rekeyed-cache"))), 30*time.Second)

	// The export is a plain RDB that redis loads.
	if err := os.MkdirAll(filepath.Join(h.dataDir, "s3", "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExportServerlessCacheSnapshot(ctx(t), &elasticache.ExportServerlessCacheSnapshotInput{ServerlessCacheSnapshotName: aws.String("locked"), S3BucketName: aws.String("out")}); err != nil {
		t.Fatal(err)
	}
	if rdb, err := os.ReadFile(filepath.Join(h.dataDir, "s3", "out", "locked-0001.rdb")); err != nil || !strings.HasPrefix(string(rdb), "REDIS") {
		t.Fatalf("exported object is not a plain RDB: %v", err)
	}

	// Node-based snapshots take a KmsKeyId too.
	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("nodes"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), SnapshotArns: []string{"arn:aws:s3:::out/locked-0001.rdb"}})
	if _, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{CacheClusterId: cl.CacheClusterId, SnapshotName: aws.String("nodes-locked"), KmsKeyId: aws.String(keyID)}); err != nil {
		t.Fatal(err)
	}
	if sn := waitSnapshot(t, c, "nodes-locked"); aws.ToString(sn.KmsKeyId) != keyID {
		t.Fatalf("cluster snapshot KmsKeyId: %+v", sn)
	}
	nodesRestored := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("nodes-restored"), SnapshotName: aws.String("nodes-locked")})
	sameData(t, before, readAll(t, redisClient(t, nodesRestored.CacheNodes[0])), 60*time.Second)

	// Without its key, the snapshot cannot be read: hoard with another keyring.
	h.stop()
	if err := os.Rename(filepath.Join(h.dataDir, "keyring.json"), filepath.Join(t.TempDir(), "keyring.json")); err != nil {
		t.Fatal(err)
	}
	hoardKeys(t, h.dataDir, "create", "--alias", "alias/snaps") // same alias, another key
	h.restart()
	c = h.client("us-east-1")
	wantAPIError(t, restore("no-key", "locked"), "InvalidParameterValue", 400)
	_, err = c.DescribeServerlessCaches(ctx(t), &elasticache.DescribeServerlessCachesInput{ServerlessCacheName: aws.String("no-key")})
	wantAPIError(t, err, "ServerlessCacheNotFoundFault", 404)
}
