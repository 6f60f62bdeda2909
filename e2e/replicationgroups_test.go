package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
	"github.com/redis/go-redis/v9"
)

func describeGroup(t *testing.T, c *elasticache.Client, id string) types.ReplicationGroup {
	t.Helper()
	out, err := c.DescribeReplicationGroups(ctx(t), &elasticache.DescribeReplicationGroupsInput{ReplicationGroupId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return out.ReplicationGroups[0]
}

func waitGroup(t *testing.T, c *elasticache.Client, id string) types.ReplicationGroup {
	t.Helper()
	return waitGroupWithin(t, c, id, 30*time.Second)
}

func endpointClient(t *testing.T, e *types.Endpoint) *redis.Client {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", aws.ToString(e.Address), aws.ToInt32(e.Port)),
		MaxRetries: 5, MinRetryBackoff: 50 * time.Millisecond, MaxRetryBackoff: 500 * time.Millisecond})
	t.Cleanup(func() { rc.Close() })
	return rc
}

// primaryMember names the member whose CurrentRole is primary.
func primaryMember(g types.ReplicationGroup) types.NodeGroupMember {
	for _, m := range g.NodeGroups[0].NodeGroupMembers {
		if aws.ToString(m.CurrentRole) == "primary" {
			return m
		}
	}
	return types.NodeGroupMember{}
}

// TestReplicationGroupReplicatesAndFailsOver: a primary and two replicas that
// really replicate, reached through PrimaryEndpoint and ReaderEndpoint; a
// TestFailover and then a kill -9 of the primary's process each promote a
// replica, and clients of PrimaryEndpoint keep working with every write kept.
func TestReplicationGroupReplicatesAndFailsOver(t *testing.T) {
	h := startHoard(t, fastReconcile)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.stderr.String())
		}
	})
	c := h.client("us-east-1")
	out, err := c.CreateReplicationGroup(ctx(t), &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("Web"),
		ReplicationGroupDescription: aws.String("sessions"), Engine: aws.String("redis"), CacheNodeType: aws.String("cache.t3.micro"),
		NumCacheClusters: aws.Int32(3), AutomaticFailoverEnabled: aws.Bool(true), MultiAZEnabled: aws.Bool(true), AtRestEncryptionEnabled: aws.Bool(true),
		Tags: []types.Tag{{Key: aws.String("app"), Value: aws.String("web")}}})
	if err != nil {
		t.Fatal(err)
	}
	if s := aws.ToString(out.ReplicationGroup.Status); s != "creating" || aws.ToString(out.ReplicationGroup.ReplicationGroupId) != "web" ||
		!aws.ToBool(out.ReplicationGroup.AtRestEncryptionEnabled) {
		t.Fatalf("new group: %+v", out.ReplicationGroup)
	}
	g := waitGroup(t, c, "web")
	if got := strings.Join(g.MemberClusters, ","); got != "web-001,web-002,web-003" || g.AutomaticFailover != types.AutomaticFailoverStatusEnabled ||
		g.MultiAZ != types.MultiAZStatusEnabled || aws.ToBool(g.ClusterEnabled) || len(g.NodeGroups) != 1 || len(g.NodeGroups[0].NodeGroupMembers) != 3 ||
		aws.ToString(primaryMember(g).CacheClusterId) != "web-001" {
		t.Fatalf("group: %+v", g)
	}
	member := describeCluster(t, c, "web-002")
	if aws.ToString(member.ReplicationGroupId) != "web" || aws.ToString(member.CacheClusterStatus) != "available" {
		t.Fatalf("member cluster: %+v", member)
	}

	bg := context.Background()
	writer := endpointClient(t, g.NodeGroups[0].PrimaryEndpoint)
	reader := endpointClient(t, g.NodeGroups[0].ReaderEndpoint)
	if err := writer.Set(bg, "greeting", "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		if v, _ := reader.Get(bg, "greeting").Result(); v != "hello" {
			return "the replica has not got the write"
		}
		return ""
	})
	if err := reader.Set(bg, "x", "y", 0).Err(); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("a write through the reader endpoint: %v", err)
	}
	for _, m := range g.NodeGroups[0].NodeGroupMembers {
		rc := endpointClient(t, m.ReadEndpoint)
		eventually(t, 5*time.Second, func() string {
			if v, _ := rc.Get(bg, "greeting").Result(); v != "hello" {
				return aws.ToString(m.CacheClusterId) + " lacks the write"
			}
			return ""
		})
	}

	// TestFailover: another member becomes primary; the endpoint follows.
	if _, err := c.TestFailover(ctx(t), &elasticache.TestFailoverInput{ReplicationGroupId: aws.String("web"), NodeGroupId: aws.String("0001")}); err != nil {
		t.Fatal(err)
	}
	g = describeGroup(t, c, "web")
	promoted := aws.ToString(primaryMember(g).CacheClusterId)
	if promoted == "web-001" || promoted == "" {
		t.Fatalf("after TestFailover the primary is %q", promoted)
	}
	eventually(t, 10*time.Second, func() string {
		if err := writer.Set(bg, "after-test-failover", "1", 0).Err(); err != nil {
			return err.Error()
		}
		return ""
	})

	// kill -9 of the primary's process: automatic failover, the writes survive.
	for i := 0; i < 200; i++ {
		if err := writer.Set(bg, fmt.Sprintf("w%03d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := writer.Wait(bg, 2, time.Second).Err(); err != nil { // both replicas have every write
		t.Fatal(err)
	}
	pc := endpointClient(t, primaryMember(g).ReadEndpoint)
	killed := time.Now()
	if err := syscall.Kill(redisPID(t, pc), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() string {
		if err := writer.Set(bg, "after-crash", "1", 0).Err(); err != nil {
			return err.Error()
		}
		return ""
	})
	t.Logf("writes through PrimaryEndpoint accepted again %v after the primary was killed", time.Since(killed).Round(time.Millisecond))
	g = describeGroup(t, c, "web")
	if p := aws.ToString(primaryMember(g).CacheClusterId); p == promoted || p == "" {
		t.Fatalf("after the crash the primary is %q (was %s)", p, promoted)
	}
	for i := 0; i < 200; i++ {
		if v, err := writer.Get(bg, fmt.Sprintf("w%03d", i)).Int(); err != nil || v != i {
			t.Fatalf("w%03d after failover: %v %v", i, v, err)
		}
	}
	// The killed node comes back as a replica of the new primary.
	eventually(t, 20*time.Second, func() string {
		out, err := pc.Do(bg, "ROLE").Slice()
		if err != nil || len(out) == 0 || out[0] != "slave" {
			return fmt.Sprintf("old primary: %v %v", out, err)
		}
		if v, _ := pc.Get(bg, "after-crash").Result(); v != "1" {
			return "the old primary has not resynced"
		}
		return ""
	})
	if msgs := groupEvents(t, c, "web"); !hasMessage(msgs, "Automatic failover") || !hasMessage(msgs, "Test failover") {
		t.Errorf("failover events missing: %v", msgs)
	}

	// hoard itself crashes: the nodes keep running, and the restarted hoard
	// serves the endpoints again on the same ports.
	h.kill9()
	// The primary itself listens on PrimaryEndpoint's address (a loopback
	// host's moving endpoint), so writes go on while hoard is down.
	if err := writer.Set(bg, "while-hoard-is-down", "1", 0).Err(); err != nil {
		t.Fatalf("PrimaryEndpoint while hoard is down: %v", err)
	}
	h.restart()
	c = h.client("us-east-1")
	eventually(t, 20*time.Second, func() string {
		if v, err := writer.Get(bg, "after-crash").Result(); err != nil || v != "1" {
			return fmt.Sprintf("through PrimaryEndpoint after a hoard restart: %q %v", v, err)
		}
		return ""
	})
	if s := aws.ToString(describeGroup(t, c, "web").Status); s != "available" {
		t.Fatalf("after a hoard restart the group is %s", s)
	}

	// Delete: members and endpoints go.
	if _, err := c.DeleteReplicationGroup(ctx(t), &elasticache.DeleteReplicationGroupInput{ReplicationGroupId: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		_, err := c.DescribeReplicationGroups(ctx(t), &elasticache.DescribeReplicationGroupsInput{ReplicationGroupId: aws.String("web")})
		if err == nil {
			return "group still there"
		}
		wantAPIError(t, err, "ReplicationGroupNotFoundFault", 404)
		return ""
	})
	if err := writer.Ping(bg).Err(); err == nil {
		t.Fatal("the primary endpoint still answers after the group was deleted")
	}
	_, err = c.DescribeCacheClusters(ctx(t), &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String("web-002")})
	wantAPIError(t, err, "CacheClusterNotFound", 404)
}

// TestReplicationGroupMembersAndErrors: adopting a cluster as primary, adding a
// replica with CreateCacheCluster, RetainPrimaryCluster, and the documented errors.
func TestReplicationGroupMembersAndErrors(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("solo"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro")})
	solo := redisClient(t, cl.CacheNodes[0])
	bg := context.Background()
	if err := solo.Set(bg, "kept", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateReplicationGroup(ctx(t), &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("grown"),
		ReplicationGroupDescription: aws.String("from solo"), PrimaryClusterId: aws.String("solo"), NumCacheClusters: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, c, "grown")
	if got := strings.Join(g.MemberClusters, ","); got != "grown-001,solo" || aws.ToString(primaryMember(g).CacheClusterId) != "solo" {
		t.Fatalf("adopted group: %+v", g)
	}
	// Terraform's replica pattern: CreateCacheCluster with ReplicationGroupId.
	replica := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("extra"), ReplicationGroupId: aws.String("grown")})
	rc := redisClient(t, replica.CacheNodes[0])
	eventually(t, 10*time.Second, func() string {
		if v, _ := rc.Get(bg, "kept").Result(); v != "yes" {
			return "the added replica has not synced"
		}
		return ""
	})
	if n := len(describeGroup(t, c, "grown").MemberClusters); n != 3 {
		t.Fatalf("the group has %d members after adding one", n)
	}

	_, err := c.DeleteCacheCluster(ctx(t), &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String("solo")})
	wantAPIError(t, err, "InvalidCacheClusterState", 400)
	create := func(in *elasticache.CreateReplicationGroupInput) error {
		if in.ReplicationGroupDescription == nil {
			in.ReplicationGroupDescription = aws.String("d")
		}
		if in.CacheNodeType == nil {
			in.CacheNodeType = aws.String("cache.t3.micro")
		}
		_, err := c.CreateReplicationGroup(ctx(t), in)
		return err
	}
	wantAPIError(t, create(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("grown")}), "ReplicationGroupAlreadyExists", 400)
	wantAPIError(t, create(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("one"), AutomaticFailoverEnabled: aws.Bool(true)}), "InvalidParameterCombination", 400)
	wantAPIError(t, create(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("az"), NumCacheClusters: aws.Int32(2), MultiAZEnabled: aws.Bool(true)}), "InvalidParameterCombination", 400)
	wantAPIError(t, create(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("big"), NumCacheClusters: aws.Int32(7)}), "InvalidParameterValue", 400)
	wantAPIError(t, create(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("mc"), Engine: aws.String("memcached")}), "InvalidParameterValue", 400)
	wantAPIError(t, create(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("again"), PrimaryClusterId: aws.String("solo")}), "InvalidCacheClusterState", 400)
	_, err = c.ModifyReplicationGroupShardConfiguration(ctx(t), &elasticache.ModifyReplicationGroupShardConfigurationInput{
		ReplicationGroupId: aws.String("grown"), NodeGroupCount: aws.Int32(2), ApplyImmediately: aws.Bool(true)})
	wantAPIError(t, err, "InvalidParameterCombination", 400) // cluster mode disabled: one node group
	_, err = c.TestFailover(ctx(t), &elasticache.TestFailoverInput{ReplicationGroupId: aws.String("grown"), NodeGroupId: aws.String("0002")})
	wantAPIError(t, err, "NodeGroupNotFoundFault", 404)
	_, err = c.TestFailover(ctx(t), &elasticache.TestFailoverInput{ReplicationGroupId: aws.String("grown"), NodeGroupId: aws.String("0001")})
	wantAPIError(t, err, "InvalidReplicationGroupState", 400) // automatic failover is off
	_, err = c.TestFailover(ctx(t), &elasticache.TestFailoverInput{ReplicationGroupId: aws.String("nope"), NodeGroupId: aws.String("0001")})
	wantAPIError(t, err, "ReplicationGroupNotFoundFault", 404)
	_, err = c.DescribeReplicationGroups(ctx(t), &elasticache.DescribeReplicationGroupsInput{ReplicationGroupId: aws.String("nope")})
	wantAPIError(t, err, "ReplicationGroupNotFoundFault", 404)

	// RetainPrimaryCluster: the primary leaves the group, with its data, and keeps running.
	if _, err := c.DeleteReplicationGroup(ctx(t), &elasticache.DeleteReplicationGroupInput{ReplicationGroupId: aws.String("grown"), RetainPrimaryCluster: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		if _, err := c.DescribeReplicationGroups(ctx(t), &elasticache.DescribeReplicationGroupsInput{ReplicationGroupId: aws.String("grown")}); err == nil {
			return "group still there"
		}
		return ""
	})
	if kept := describeCluster(t, c, "solo"); kept.ReplicationGroupId != nil || aws.ToString(kept.CacheClusterStatus) != "available" {
		t.Fatalf("retained primary: %+v", kept)
	}
	if v, err := solo.Get(bg, "kept").Result(); err != nil || v != "yes" {
		t.Fatalf("the retained primary lost its data: %v %v", v, err)
	}
}

func groupEvents(t *testing.T, c *elasticache.Client, id string) []string {
	t.Helper()
	out, err := c.DescribeEvents(ctx(t), &elasticache.DescribeEventsInput{SourceType: types.SourceTypeReplicationGroup, SourceIdentifier: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range out.Events {
		msgs = append(msgs, aws.ToString(e.Message))
	}
	return msgs
}

// TestReplicationGroupScalingModifyAndSnapshots: replicas added and removed,
// a parameter group and a switchover applied with ModifyReplicationGroup, a
// snapshot of the group (from a replica) exported and restored into a new
// group, an automated daily snapshot, and a final snapshot on delete.
func TestReplicationGroupScalingModifyAndSnapshots(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	now := time.Now().UTC()
	window := now.Add(-5*time.Minute).Format("15:04") + "-" + now.Add(65*time.Minute).Format("15:04")
	if _, err := c.CreateReplicationGroup(ctx(t), &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("rg"),
		ReplicationGroupDescription: aws.String("scaling"), CacheNodeType: aws.String("cache.t3.micro"), ReplicasPerNodeGroup: aws.Int32(1),
		SnapshotRetentionLimit: aws.Int32(2), SnapshotWindow: aws.String(window)}); err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, c, "rg")
	bg := context.Background()
	writer := endpointClient(t, g.NodeGroups[0].PrimaryEndpoint)
	fillMixed(t, writer, 3000)
	before := readAll(t, writer)

	// The day's automated snapshot, taken from the primary.
	var auto types.Snapshot
	eventually(t, 30*time.Second, func() string {
		out, err := c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{ReplicationGroupId: aws.String("rg"), SnapshotSource: aws.String("automated")})
		if err != nil || len(out.Snapshots) != 1 || aws.ToString(out.Snapshots[0].SnapshotStatus) != "available" {
			return fmt.Sprintf("automated group snapshots: %+v %v", out, err)
		}
		auto = out.Snapshots[0]
		return ""
	})
	if aws.ToString(auto.ReplicationGroupId) != "rg" || aws.ToInt32(auto.SnapshotRetentionLimit) != 2 || aws.ToString(auto.SnapshotWindow) != window || aws.ToString(auto.CacheClusterId) != "rg-001" || aws.ToString(g.SnapshottingClusterId) != "rg-001" {
		t.Fatalf("automated snapshot %+v of group %+v", auto, g)
	}

	// Scale out to 3 replicas, then back to 1 (the newest go).
	if _, err := c.IncreaseReplicaCount(ctx(t), &elasticache.IncreaseReplicaCountInput{ReplicationGroupId: aws.String("rg"), NewReplicaCount: aws.Int32(3), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, c, "rg")
	if got := strings.Join(g.MemberClusters, ","); got != "rg-001,rg-002,rg-003,rg-004" {
		t.Fatalf("members after IncreaseReplicaCount: %s", got)
	}
	newest := endpointClient(t, g.NodeGroups[0].NodeGroupMembers[3].ReadEndpoint)
	if v, err := newest.DBSize(bg).Result(); err != nil || v != int64(len(before)) {
		t.Fatalf("a new replica holds %d keys (%v), want %d", v, err, len(before))
	}
	_, err := c.IncreaseReplicaCount(ctx(t), &elasticache.IncreaseReplicaCountInput{ReplicationGroupId: aws.String("rg"), NewReplicaCount: aws.Int32(3), ApplyImmediately: aws.Bool(true)})
	wantAPIError(t, err, "NoOperationFault", 400)
	if _, err := c.DecreaseReplicaCount(ctx(t), &elasticache.DecreaseReplicaCountInput{ReplicationGroupId: aws.String("rg"), NewReplicaCount: aws.Int32(1), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, c, "rg")
	if got := strings.Join(g.MemberClusters, ","); got != "rg-001,rg-002" {
		t.Fatalf("members after DecreaseReplicaCount: %s", got)
	}
	// A parameter group reaches every member; a switchover makes rg-002 primary.
	if _, err := c.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{CacheParameterGroupName: aws.String("tuned"),
		CacheParameterGroupFamily: aws.String("redis7"), Description: aws.String("d")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyCacheParameterGroup(ctx(t), &elasticache.ModifyCacheParameterGroupInput{CacheParameterGroupName: aws.String("tuned"),
		ParameterNameValues: []types.ParameterNameValue{{ParameterName: aws.String("maxmemory-policy"), ParameterValue: aws.String("allkeys-lfu")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyReplicationGroup(ctx(t), &elasticache.ModifyReplicationGroupInput{ReplicationGroupId: aws.String("rg"), CacheParameterGroupName: aws.String("tuned"),
		AutomaticFailoverEnabled: aws.Bool(true), PrimaryClusterId: aws.String("rg-002"), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, c, "rg")
	if aws.ToString(primaryMember(g).CacheClusterId) != "rg-002" || g.AutomaticFailover != types.AutomaticFailoverStatusEnabled {
		t.Fatalf("after ModifyReplicationGroup: %+v", g)
	}
	eventually(t, 10*time.Second, func() string {
		if err := writer.Set(bg, "after-switchover", "1", 0).Err(); err != nil {
			return err.Error()
		}
		return ""
	})
	if err := writer.Del(bg, "after-switchover").Err(); err != nil {
		t.Fatal(err)
	}

	// A larger node type reaches every member's maxmemory at runtime: no data lost.
	memberMax := func() []string {
		var out []string
		for _, m := range g.NodeGroups[0].NodeGroupMembers {
			out = append(out, configGet(t, endpointClient(t, m.ReadEndpoint), "maxmemory"))
		}
		return out
	}
	small := memberMax()
	keys, err := writer.DBSize(bg).Result()
	if err != nil || keys == 0 {
		t.Fatalf("before the node type change the primary holds %d keys (%v)", keys, err)
	}
	if _, err := c.ModifyReplicationGroup(ctx(t), &elasticache.ModifyReplicationGroupInput{ReplicationGroupId: aws.String("rg"),
		CacheNodeType: aws.String("cache.m5.large"), EngineVersion: aws.String(aws.ToString(describeCluster(t, c, "rg-001").EngineVersion)), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, c, "rg")
	if aws.ToString(g.CacheNodeType) != "cache.m5.large" || aws.ToString(describeCluster(t, c, "rg-002").CacheNodeType) != "cache.m5.large" {
		t.Fatalf("after the node type change: %s", aws.ToString(g.CacheNodeType))
	}
	eventually(t, 10*time.Second, func() string {
		if large := memberMax(); large[0] == small[0] || large[0] != large[1] {
			return fmt.Sprintf("maxmemory %v, was %v", large, small)
		}
		return ""
	})
	if n, err := writer.DBSize(bg).Result(); err != nil || n != keys {
		t.Fatalf("after the node type change the primary holds %d keys, had %d (%v)", n, keys, err)
	}
	_, err = c.ModifyReplicationGroup(ctx(t), &elasticache.ModifyReplicationGroupInput{ReplicationGroupId: aws.String("rg"), EngineVersion: aws.String("2.8"), ApplyImmediately: aws.Bool(true)})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.ModifyReplicationGroup(ctx(t), &elasticache.ModifyReplicationGroupInput{ReplicationGroupId: aws.String("rg"), CacheNodeType: aws.String("cache.x9.huge"), ApplyImmediately: aws.Bool(true)})
	wantAPIError(t, err, "InvalidParameterValue", 400)

	// A manual snapshot of the group, exported, restored into a new group.
	if _, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{ReplicationGroupId: aws.String("rg"), SnapshotName: aws.String("rg-snap")}); err != nil {
		t.Fatal(err)
	}
	sn := waitSnapshot(t, c, "rg-snap")
	t.Logf("group snapshot from %s: %s", aws.ToString(sn.CacheClusterId), aws.ToString(sn.NodeSnapshots[0].CacheSize))
	if aws.ToString(sn.ReplicationGroupId) != "rg" || aws.ToInt32(sn.NumNodeGroups) != 1 || aws.ToString(sn.NodeSnapshots[0].NodeGroupId) != "0001" {
		t.Fatalf("group snapshot: %+v", sn)
	}
	if err := os.MkdirAll(filepath.Join(h.dataDir, "s3", "rgs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("rg-snap"), TargetSnapshotName: aws.String("rg-export"), TargetBucket: aws.String("rgs")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateReplicationGroup(ctx(t), &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("copy"),
		ReplicationGroupDescription: aws.String("restored"), CacheNodeType: aws.String("cache.t3.micro"), NumCacheClusters: aws.Int32(2),
		SnapshotArns: []string{"arn:aws:s3:::rgs/rg-export-0001.rdb"}}); err != nil {
		t.Fatal(err)
	}
	restored := waitGroup(t, c, "copy")
	sameData(t, before, readAll(t, endpointClient(t, restored.NodeGroups[0].PrimaryEndpoint)), 60*time.Second)
	sameData(t, before, readAll(t, endpointClient(t, restored.NodeGroups[0].NodeGroupMembers[1].ReadEndpoint)), 60*time.Second)

	// Delete with a final snapshot.
	if _, err := c.DeleteReplicationGroup(ctx(t), &elasticache.DeleteReplicationGroupInput{ReplicationGroupId: aws.String("rg"), FinalSnapshotIdentifier: aws.String("rg-final")}); err != nil {
		t.Fatal(err)
	}
	final := waitSnapshot(t, c, "rg-final")
	if aws.ToString(final.ReplicationGroupId) != "rg" || aws.ToString(final.ReplicationGroupDescription) != "scaling" {
		t.Fatalf("final snapshot: %+v", final)
	}
	fromFinal := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("from-final"), SnapshotName: aws.String("rg-final")})
	sameData(t, before, readAll(t, redisClient(t, fromFinal.CacheNodes[0])), 60*time.Second)
}
