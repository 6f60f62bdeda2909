package service

import (
	"sync"
	"testing"
	"time"

	"github.com/hoardcache/hoard/internal/ecapi"
)

func TestSortMembersAndSnapshottingMember(t *testing.T) {
	members := []cluster{{ID: "g-003", Role: roleReplica}, {ID: "g-002", Role: rolePrimary}, {ID: "g-001", Role: roleReplica, Status: statusDeleting}}
	sortMembers(members)
	if members[0].ID != "g-002" || members[1].ID != "g-001" || members[2].ID != "g-003" {
		t.Fatalf("sorted: %v %v %v", members[0].ID, members[1].ID, members[2].ID)
	}
	g := &replicationGroup{}
	if got := snapshottingMember(g, members); got != "g-002" {
		t.Errorf("default snapshotting member %s, want the primary", got)
	}
	g.SnapshottingCluster = "g-003"
	if got := snapshottingMember(g, members); got != "g-003" {
		t.Errorf("named snapshotting member %s, want g-003", got)
	}
	g.SnapshottingCluster = "g-001" // being deleted: not used
	if got := snapshottingMember(g, members); got != "g-002" {
		t.Errorf("a deleting member was chosen: %s", got)
	}
}

func TestMemberCount(t *testing.T) {
	cases := []struct {
		in   ecapi.CreateReplicationGroupMessage
		want int
		code string
	}{
		{ecapi.CreateReplicationGroupMessage{}, 1, ""},
		{ecapi.CreateReplicationGroupMessage{NumCacheClusters: int32p(3)}, 3, ""},
		{ecapi.CreateReplicationGroupMessage{ReplicasPerNodeGroup: int32p(2)}, 3, ""},
		{ecapi.CreateReplicationGroupMessage{NumCacheClusters: int32p(3), ReplicasPerNodeGroup: int32p(2)}, 3, ""},
		{ecapi.CreateReplicationGroupMessage{NodeGroupConfiguration: []ecapi.NodeGroupConfiguration{{ReplicaCount: int32p(4)}}}, 5, ""},
		{ecapi.CreateReplicationGroupMessage{NumCacheClusters: int32p(3), ReplicasPerNodeGroup: int32p(1)}, 0, "InvalidParameterCombination"},
		{ecapi.CreateReplicationGroupMessage{NumCacheClusters: int32p(7)}, 0, "InvalidParameterValue"},
		{ecapi.CreateReplicationGroupMessage{ReplicasPerNodeGroup: int32p(-1)}, 0, "InvalidParameterValue"},
	}
	for i, c := range cases {
		got, err := memberCount(&c.in)
		if got != c.want || (err == nil) != (c.code == "") || err != nil && !kindIs(err, c.code) {
			t.Errorf("case %d: memberCount = %d, %v; want %d, %q", i, got, err, c.want, c.code)
		}
	}
}

func TestNewReplicaCount(t *testing.T) {
	if n, err := newReplicaCount(int32p(2), nil); n != 2 || err != nil {
		t.Errorf("NewReplicaCount 2: %d %v", n, err)
	}
	if n, err := newReplicaCount(nil, []ecapi.ConfigureShard{{NodeGroupId: "0001", NewReplicaCount: 4}}); n != 4 || err != nil {
		t.Errorf("ReplicaConfiguration 0001: %d %v", n, err)
	}
	if _, err := newReplicaCount(nil, []ecapi.ConfigureShard{{NodeGroupId: "0002", NewReplicaCount: 4}}); !ecapi.InvalidParameterValueException.Is(err) { // the operations do not list NodeGroupNotFoundFault
		t.Errorf("ReplicaConfiguration 0002: %v", err)
	}
	if _, err := newReplicaCount(int32p(1), []ecapi.ConfigureShard{{NodeGroupId: "0001"}}); !ecapi.InvalidParameterCombinationException.Is(err) {
		t.Errorf("both given: %v", err)
	}
	if _, err := newReplicaCount(nil, nil); !ecapi.InvalidParameterValueException.Is(err) {
		t.Errorf("neither given: %v", err)
	}
}

func TestMissCounter(t *testing.T) {
	var m missCounter
	for want := 1; want <= 3; want++ {
		if got := m.record("g", true); got != want {
			t.Fatalf("miss %d counted %d", want, got)
		}
	}
	if got := m.record("g", false); got != 0 {
		t.Fatalf("a success left %d misses", got)
	}
	if got := m.record("g", true); got != 1 {
		t.Fatalf("after a success, a miss counts %d", got)
	}
}

func TestKeyLocksSerialise(t *testing.T) {
	var locks keyLocks
	var inside, most int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := locks.lock("g")
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(time.Millisecond) // hold the key's lock a while: others must wait
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
	if most != 1 {
		t.Fatalf("%d holders of one key's lock at once", most)
	}
}

func TestJobSetCounts(t *testing.T) {
	var j jobSet
	j.begin("s")
	j.begin("s") // a duplicate request registers, is refused, and ends
	j.end("s")
	if !j.isRunning("s") {
		t.Fatal("a refused duplicate unregistered the running job")
	}
	j.end("s")
	if j.isRunning("s") {
		t.Fatal("the job still runs after it ended")
	}
}

func kindIs(err error, code string) bool {
	switch code {
	case "InvalidParameterCombination":
		return ecapi.InvalidParameterCombinationException.Is(err)
	case "InvalidParameterValue":
		return ecapi.InvalidParameterValueException.Is(err)
	}
	return false
}
