package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/redis/go-redis/v9"
)

// TestClusterModeNodeThatCannotStart: nodes that fail to start while a group
// grows (new replicas, a resharding's new node group) are removed again, with
// an event, and the group settles as it was, every key kept.
func TestClusterModeNodeThatCannotStart(t *testing.T) {
	real, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed")
	}
	dir := t.TempDir()
	flag := filepath.Join(dir, "broken")
	wrapper := filepath.Join(dir, "redis-server")
	script := fmt.Sprintf("#!/bin/sh\nif [ -e %s ] && [ \"$1\" != --version ]; then echo 'FATAL: cannot start: disk full' >&2; exit 1; fi\nexec %s \"$@\"\n", flag, real)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h := startHoard(t, fastReconcile, withArgs("--redis-server", wrapper))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.stderr.String())
		}
	})
	c := h.client("us-east-1")
	if _, err := c.CreateReplicationGroup(ctx(t), &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("fragile"),
		ReplicationGroupDescription: aws.String("x"), CacheNodeType: aws.String("cache.t3.micro"), NumNodeGroups: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	g := waitGroupWithin(t, c, "fragile", 60*time.Second)
	cc := clusterClient(t, g)
	want := fillCluster(t, cc, 2000)
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.IncreaseReplicaCount(ctx(t), &elasticache.IncreaseReplicaCountInput{ReplicationGroupId: aws.String("fragile"),
		NewReplicaCount: aws.Int32(1), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroupWithin(t, c, "fragile", 60*time.Second)
	if len(g.MemberClusters) != 2 {
		t.Fatalf("members after the failed replicas: %v", g.MemberClusters)
	}
	if _, err := c.ModifyReplicationGroupShardConfiguration(ctx(t), &elasticache.ModifyReplicationGroupShardConfigurationInput{
		ReplicationGroupId: aws.String("fragile"), NodeGroupCount: aws.Int32(3), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroupWithin(t, c, "fragile", 60*time.Second)
	if got := shardSlots(g); fmt.Sprint(got) != fmt.Sprint(map[string]string{"0001": "0-8191", "0002": "8192-16383"}) || len(g.MemberClusters) != 2 {
		t.Fatalf("after the failed resharding: slots %v, members %v", got, g.MemberClusters)
	}
	if msgs := groupEvents(t, c, "fragile"); !strings.Contains(strings.Join(msgs, "\n"), "disk full") {
		t.Errorf("no event says why the nodes were removed: %v", msgs)
	}
	checkRestored(t, cc, want)

	// Once nodes start again, the same resharding goes through.
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyReplicationGroupShardConfiguration(ctx(t), &elasticache.ModifyReplicationGroupShardConfigurationInput{
		ReplicationGroupId: aws.String("fragile"), NodeGroupCount: aws.Int32(3), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroupWithin(t, c, "fragile", 60*time.Second)
	if len(g.NodeGroups) != 3 {
		t.Fatalf("node groups: %+v", g.NodeGroups)
	}
	checkRestored(t, cc, want)
}

// TestClusterModePrimaryDiesMidResharding: a source primary is killed (-9)
// while slots move off it; its replica takes over, the migration resumes from
// the new primary, and every key the replicas had confirmed is there after.
func TestClusterModePrimaryDiesMidResharding(t *testing.T) {
	h := startHoard(t, fastReconcile, withArgs("--log-level", "debug"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.stderr.String())
		}
	})
	c := h.client("us-east-1")
	if _, err := c.CreateReplicationGroup(ctx(t), &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("ledger"),
		ReplicationGroupDescription: aws.String("x"), CacheNodeType: aws.String("cache.t3.micro"),
		NumNodeGroups: aws.Int32(3), ReplicasPerNodeGroup: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	g := waitGroupWithin(t, c, "ledger", 60*time.Second)
	cc := clusterClient(t, g)
	bg := context.Background()
	seeded := seedKeys(t, cc, "entry", 30000)
	// Every primary's replica has every seeded key before anything fails.
	if err := cc.ForEachMaster(bg, func(ctx context.Context, rc *redis.Client) error { return rc.Wait(ctx, 1, 5*time.Second).Err() }); err != nil {
		t.Fatal(err)
	}
	source, _ := shardNodes(t, cc, 0) // node group 0001 gives slots to the new one
	if _, err := c.ModifyReplicationGroupShardConfiguration(ctx(t), &elasticache.ModifyReplicationGroupShardConfigurationInput{
		ReplicationGroupId: aws.String("ledger"), NodeGroupCount: aws.Int32(4), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() string {
		g := describeGroup(t, c, "ledger")
		if g.PendingModifiedValues == nil || g.PendingModifiedValues.Resharding == nil {
			return "no resharding pending"
		}
		// Some slots moved and some left: the kill lands mid-resharding.
		if p := aws.ToFloat64(g.PendingModifiedValues.Resharding.SlotMigration.ProgressPercentage); p <= 0 || p >= 100 {
			return fmt.Sprintf("progress %.1f%%", p)
		}
		return ""
	})
	if err := syscall.Kill(redisPID(t, nodeClient(t, source)), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s at %s", source, time.Now().UTC().Format("15:04:05.000"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("group events: %q", groupEvents(t, c, "ledger"))
			for _, m := range []string{"ledger-0001-001", "ledger-0001-002"} {
				t.Logf("%s events: %q", m, eventMessages(t, c, m))
			}
			logClusterNodes(t, c, "ledger")
		}
	})
	g = waitGroupWithin(t, c, "ledger", 180*time.Second)
	if len(g.NodeGroups) != 4 || slotTotal(t, shardSlots(g)) != 16384 {
		t.Fatalf("after the resharding: %v", shardSlots(g))
	}
	// The client's slot map may lag the failover for a moment; once it has
	// caught up, every key must be there.
	eventually(t, 15*time.Second, func() string {
		cc.ReloadState(bg)
		return badKey(cc, seeded, func(k string) string { return k })
	})
	if msgs := groupEvents(t, c, "ledger"); !hasMessage(msgs, "Automatic failover") {
		t.Errorf("no failover event: %v", msgs)
	}
}

// logClusterNodes logs what each member's node says of the cluster (CLUSTER
// NODES: owners, epochs, slots half migrated), to diagnose a failure.
func logClusterNodes(t *testing.T, c *elasticache.Client, groupID string) {
	for _, id := range describeGroup(t, c, groupID).MemberClusters {
		cl := describeCluster(t, c, id)
		if len(cl.CacheNodes) == 0 || cl.CacheNodes[0].Endpoint == nil {
			t.Logf("%s: no endpoint", id)
			continue
		}
		addr := nodeAddr(cl.CacheNodes[0])
		nodes, err := nodeClient(t, addr).ClusterNodes(context.Background()).Result()
		t.Logf("%s (%s) CLUSTER NODES: %v\n%s", id, addr, err, nodes)
	}
}
