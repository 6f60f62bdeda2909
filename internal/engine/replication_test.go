package engine

import (
	"context"
	"testing"
	"time"
)

// TestRedisReplication starts a primary and a replica of it, checks data
// written to the primary reaches the replica, then swaps their roles with
// Follow as a failover does and checks writes flow the other way.
func TestRedisReplication(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, "redis")
	rep := d.(Replicator)
	primary := startNode(t, d, redisSpec(t, nil))
	spec := redisSpec(t, nil)
	spec.ReplicaOf = hostPort(primary.Host, primary.Port)
	replica := startNode(t, d, spec)

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	pc, rc := testClient(t, primary, "", 0), testClient(t, replica, "", 0)
	if err := pc.Set(ctx, "k", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor("the replica to have k", func() bool { return rc.Get(ctx, "k").Val() == "v1" })
	rs, err := rep.Replication(ctx, replica)
	if err != nil || rs.Role != "slave" || !rs.LinkUp || rs.Primary != spec.ReplicaOf {
		t.Fatalf("replica state %+v, %v", rs, err)
	}
	// A write after the sync goes through the replication stream: the offsets move.
	if err := pc.Set(ctx, "k2", "streamed", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor("the replica to have k2", func() bool { return rc.Get(ctx, "k2").Val() == "streamed" })
	ps, err := rep.Replication(ctx, primary)
	if err != nil || ps.Role != "master" || ps.Replicas != 1 || ps.Offset <= 0 {
		t.Fatalf("primary state %+v, %v", ps, err)
	}
	if err := rc.Set(ctx, "k", "x", 0).Err(); err == nil {
		t.Fatal("the replica took a write")
	}

	// Failover: the replica becomes primary, the old primary follows it.
	if err := rep.Follow(ctx, replica, ""); err != nil {
		t.Fatal(err)
	}
	if err := rep.Follow(ctx, primary, hostPort(replica.Host, replica.Port)); err != nil {
		t.Fatal(err)
	}
	waitFor("the promoted node to take writes", func() bool { return rc.Set(ctx, "k", "v2", 0).Err() == nil })
	waitFor("the old primary to follow", func() bool { return pc.Get(ctx, "k").Val() == "v2" })
	if rs, _ := rep.Replication(ctx, primary); rs.Role != "slave" {
		t.Fatalf("old primary is %+v", rs)
	}
}

func TestParseReplicationInfo(t *testing.T) {
	replica := "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:21000\r\nmaster_link_status:up\r\nslave_repl_offset:4242\r\nmaster_repl_offset:4242\r\n"
	if got := parseReplicationInfo(replica); got != (ReplicationState{Role: "slave", Offset: 4242, LinkUp: true, Primary: "127.0.0.1:21000"}) {
		t.Errorf("replica: %+v", got)
	}
	primary := "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.0.1,port=21001,state=online,offset=10,lag=0\r\nmaster_repl_offset:10\r\n"
	if got := parseReplicationInfo(primary); got != (ReplicationState{Role: "master", Offset: 10, Replicas: 2}) {
		t.Errorf("primary: %+v", got)
	}
	syncing := "role:slave\r\nmaster_host:::1\r\nmaster_port:6379\r\nmaster_link_status:down\r\n"
	if got := parseReplicationInfo(syncing); got.LinkUp || got.Primary != "[::1]:6379" {
		t.Errorf("syncing replica: %+v", got)
	}
}
