package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"

	"github.com/hoardcache/hoard/internal/catalog"
)

func TestTags(t *testing.T) {
	h := startHoard(t, withArgs("--quota-tags-per-resource", "5"))
	c := h.client("us-east-1")
	out, err := c.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{CacheParameterGroupName: aws.String("tagged"),
		CacheParameterGroupFamily: aws.String("redis7"), Description: aws.String("d")})
	if err != nil {
		t.Fatal(err)
	}
	arn := out.CacheParameterGroup.ARN
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	added, err := c.AddTagsToResource(ctx(t), &elasticache.AddTagsToResourceInput{ResourceName: arn, Tags: []types.Tag{tag("b", "2"), tag("a", "1")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(added.TagList) != 2 || aws.ToString(added.TagList[0].Key) != "a" {
		t.Fatalf("tags after add: %+v", added.TagList)
	}
	// Adding an existing key overwrites it.
	if _, err := c.AddTagsToResource(ctx(t), &elasticache.AddTagsToResourceInput{ResourceName: arn, Tags: []types.Tag{tag("a", "one")}}); err != nil {
		t.Fatal(err)
	}
	listed, err := c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: arn})
	if err != nil || len(listed.TagList) != 2 || aws.ToString(listed.TagList[0].Value) != "one" {
		t.Fatalf("list: %+v %v", listed, err)
	}
	_, err = c.AddTagsToResource(ctx(t), &elasticache.AddTagsToResourceInput{ResourceName: arn, Tags: []types.Tag{tag("c", ""), tag("d", ""), tag("e", ""), tag("f", "")}})
	wantAPIError(t, err, "TagQuotaPerResourceExceeded", 400)
	_, err = c.AddTagsToResource(ctx(t), &elasticache.AddTagsToResourceInput{ResourceName: arn, Tags: []types.Tag{tag("aws:reserved", "x")}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	removed, err := c.RemoveTagsFromResource(ctx(t), &elasticache.RemoveTagsFromResourceInput{ResourceName: arn, TagKeys: []string{"a"}})
	if err != nil || len(removed.TagList) != 1 || aws.ToString(removed.TagList[0].Key) != "b" {
		t.Fatalf("remove: %+v %v", removed, err)
	}
	_, err = c.RemoveTagsFromResource(ctx(t), &elasticache.RemoveTagsFromResourceInput{ResourceName: arn, TagKeys: []string{"a"}})
	wantAPIError(t, err, "TagNotFound", 404)

	// Default groups are taggable too.
	defARN := aws.String("arn:aws:elasticache:us-east-1:" + testAccount + ":parametergroup:default.redis7")
	if _, err := c.AddTagsToResource(ctx(t), &elasticache.AddTagsToResourceInput{ResourceName: defARN, Tags: []types.Tag{tag("k", "v")}}); err != nil {
		t.Fatal(err)
	}

	notFound := []struct{ arn, code string }{
		{"arn:aws:elasticache:us-east-1:" + testAccount + ":parametergroup:absent", "CacheParameterGroupNotFound"},
		{"arn:aws:elasticache:us-east-1:" + testAccount + ":cluster:absent", "CacheClusterNotFound"},
		{"arn:aws:elasticache:us-east-1:" + testAccount + ":snapshot:absent", "SnapshotNotFoundFault"},
		{"arn:aws:elasticache:us-east-1:" + testAccount + ":replicationgroup:absent", "ReplicationGroupNotFoundFault"},
		{"arn:aws:elasticache:us-east-1:" + testAccount + ":serverlesscache:absent", "ServerlessCacheNotFoundFault"},
		{"arn:aws:elasticache:us-east-1:" + testAccount + ":user:absent", "UserNotFound"},
		{"arn:aws:elasticache:us-east-1:999999999999:parametergroup:tagged", "CacheParameterGroupNotFound"},
	}
	for _, nf := range notFound {
		_, err := c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: aws.String(nf.arn)})
		wantAPIError(t, err, nf.code, 404)
	}
	for _, bad := range []string{"not-an-arn", "arn:aws:s3:::bucket", "arn:aws:elasticache:us-east-1:" + testAccount + ":gizmo:x"} {
		_, err := c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: aws.String(bad)})
		wantAPIError(t, err, "InvalidARN", 400)
	}
}

func TestDescribeCacheEngineVersionsListsInstalledEngines(t *testing.T) {
	want := map[string]string{} // engine -> version reported by the binary
	for engine, probe := range map[string][]string{"redis": {"redis-server", "--version"}, "memcached": {"memcached", "-V"}, "valkey": {"valkey-server", "--version"}} {
		out, err := exec.Command(probe[0], probe[1]).Output()
		if err != nil {
			if engine == "valkey" {
				continue // optional
			}
			t.Fatalf("%s is not installed; the test command installs it: %v", probe[0], err)
		}
		want[engine] = regexp.MustCompile(`\d+\.\d+\.\d+`).FindString(string(out))
	}
	h := startHoard(t)
	c := h.client("us-east-1")
	out, err := c.DescribeCacheEngineVersions(ctx(t), &elasticache.DescribeCacheEngineVersionsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.CacheEngineVersions) != len(want) {
		t.Fatalf("engine versions %+v, want one per installed engine %v", out.CacheEngineVersions, want)
	}
	for _, v := range out.CacheEngineVersions {
		engine, version := aws.ToString(v.Engine), aws.ToString(v.EngineVersion)
		family, _ := catalog.FamilyFor(engine, version)
		if want[engine] != version || aws.ToString(v.CacheParameterGroupFamily) != family {
			t.Errorf("%s %s family %s; want version %s family %s", engine, version, aws.ToString(v.CacheParameterGroupFamily), want[engine], family)
		}
	}
	filtered, err := c.DescribeCacheEngineVersions(ctx(t), &elasticache.DescribeCacheEngineVersionsInput{Engine: aws.String("memcached"), DefaultOnly: aws.Bool(true)})
	if err != nil || len(filtered.CacheEngineVersions) != 1 || aws.ToString(filtered.CacheEngineVersions[0].Engine) != "memcached" {
		t.Fatalf("memcached filter: %+v %v", filtered, err)
	}
	major := strings.SplitN(want["redis"], ".", 2)[0]
	byVersion, err := c.DescribeCacheEngineVersions(ctx(t), &elasticache.DescribeCacheEngineVersionsInput{Engine: aws.String("redis"), EngineVersion: aws.String(major)})
	if err != nil || len(byVersion.CacheEngineVersions) != 1 {
		t.Fatalf("redis version %s filter: %+v %v", major, byVersion, err)
	}
	none, err := c.DescribeCacheEngineVersions(ctx(t), &elasticache.DescribeCacheEngineVersionsInput{CacheParameterGroupFamily: aws.String("redis2.6")})
	if err != nil || len(none.CacheEngineVersions) != 0 {
		t.Fatalf("redis2.6 is not installed: %+v %v", none, err)
	}
	_, err = c.DescribeCacheEngineVersions(ctx(t), &elasticache.DescribeCacheEngineVersionsInput{CacheParameterGroupFamily: aws.String("redis99")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
}

// An operation of the model that hoard has not built yet answers a well-formed
// error, never a fake success; an action outside the model is InvalidAction.
func TestUnimplementedOperationsSayNotImplemented(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-east-1")
	_, err := c.DescribeServiceUpdates(ctx(t), &elasticache.DescribeServiceUpdatesInput{})
	wantAPIError(t, err, "NotImplemented", 501)
}

// What hoard acknowledged survives kill -9: the store commits before it answers.
func TestStateSurvivesKill9(t *testing.T) {
	h := startHoard(t)
	c := h.client("eu-central-1")
	if _, err := c.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{CacheParameterGroupName: aws.String("durable"),
		CacheParameterGroupFamily: aws.String("memcached1.6"), Description: aws.String("survives"),
		Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyCacheParameterGroup(ctx(t), &elasticache.ModifyCacheParameterGroupInput{CacheParameterGroupName: aws.String("durable"),
		ParameterNameValues: []types.ParameterNameValue{{ParameterName: aws.String("chunk_size"), ParameterValue: aws.String("96")}}}); err != nil {
		t.Fatal(err)
	}
	h.kill9()
	h.restart()
	c = h.client("eu-central-1")
	if user := paramValues(t, c, "durable", "user"); len(user) != 1 || user["chunk_size"] != "96" {
		t.Fatalf("after kill -9 and restart, user parameters are %v", user)
	}
	tags, err := c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{
		ResourceName: aws.String("arn:aws:elasticache:eu-central-1:" + testAccount + ":parametergroup:durable")})
	if err != nil || len(tags.TagList) != 1 {
		t.Fatalf("tags after restart: %+v %v", tags, err)
	}
}

// Without configured keys hoard makes a key pair on first start, prints it once,
// keeps it in the data dir, and accepts it from then on.
func TestGeneratedCredentials(t *testing.T) {
	h := startHoard(t, withoutCredentials())
	var stored struct{ AccessKeyID, SecretAccessKey string }
	raw, err := os.ReadFile(filepath.Join(h.dataDir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &stored); err != nil || stored.AccessKeyID == "" || len(stored.SecretAccessKey) < 40 {
		t.Fatalf("credentials.json: %s", raw)
	}
	if info, _ := os.Stat(filepath.Join(h.dataDir, "credentials.json")); info.Mode().Perm() != 0o600 {
		t.Errorf("credentials.json mode %v, want 0600", info.Mode().Perm())
	}
	if !strings.Contains(h.stdout.String(), stored.SecretAccessKey) {
		t.Fatalf("the generated secret was not printed: %q", h.stdout.String())
	}
	c := h.clientWith("us-east-1", stored.AccessKeyID, stored.SecretAccessKey)
	if _, err := c.DescribeCacheParameterGroups(ctx(t), &elasticache.DescribeCacheParameterGroupsInput{}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client("us-east-1").DescribeCacheParameterGroups(ctx(t), &elasticache.DescribeCacheParameterGroupsInput{})
	wantAPIError(t, err, "InvalidClientTokenId", 403)
	// Default account ID appears in ARNs.
	out, err := c.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{CacheParameterGroupName: aws.String("g"),
		CacheParameterGroupFamily: aws.String("redis7"), Description: aws.String("d")})
	if err != nil || !strings.Contains(aws.ToString(out.CacheParameterGroup.ARN), ":000000000000:") {
		t.Fatalf("ARN with the default account: %+v %v", out, err)
	}

	h.stop()
	h.restart()
	if strings.Contains(h.stdout.String(), stored.SecretAccessKey) {
		t.Fatal("the secret was printed again on restart")
	}
	c = h.clientWith("us-east-1", stored.AccessKeyID, stored.SecretAccessKey)
	if _, err := c.DescribeCacheParameterGroups(ctx(t), &elasticache.DescribeCacheParameterGroupsInput{}); err != nil {
		t.Fatalf("stored credentials after restart: %v", err)
	}
}

// kill -9 at an arbitrary moment under a stream of writes loses nothing that was
// acknowledged: every group whose CreateCacheParameterGroup returned is there after
// the restart, and the server starts again on the same data dir.
func TestKill9UnderLoadLosesNoAcknowledgedWrite(t *testing.T) {
	h := startHoard(t, withArgs("--quota-parameter-groups", "1000000"))
	c := h.client("us-east-1")
	acked := make(chan string, 10000)
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func(w int) {
			defer func() { done <- struct{}{} }()
			for i := 0; ; i++ {
				name := fmt.Sprintf("w%d-g%d", w, i)
				_, err := c.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{CacheParameterGroupName: aws.String(name),
					CacheParameterGroupFamily: aws.String("redis7"), Description: aws.String("load")})
				if err != nil {
					return // the server is gone
				}
				acked <- name
			}
		}(w)
	}
	time.Sleep(300 * time.Millisecond)
	h.kill9()
	for w := 0; w < 4; w++ {
		<-done
	}
	close(acked)
	h.restart()
	c = h.client("us-east-1")
	n := 0
	for name := range acked {
		n++
		if _, err := c.DescribeCacheParameterGroups(ctx(t), &elasticache.DescribeCacheParameterGroupsInput{CacheParameterGroupName: aws.String(name)}); err != nil {
			t.Fatalf("group %s was acknowledged before kill -9 but is gone: %v", name, err)
		}
	}
	if n == 0 {
		t.Fatal("no write was acknowledged before the kill; the test proved nothing")
	}
	t.Logf("%d acknowledged groups all survived kill -9", n)
}
