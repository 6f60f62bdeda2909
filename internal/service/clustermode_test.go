package service

import (
	"testing"

	"github.com/hoardcache/hoard/internal/apierr"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/engine"
)

func ranges(t *testing.T, s string) []engine.SlotRange {
	t.Helper()
	r, err := engine.ParseSlotRanges(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkPartition fails unless layout gives every slot to exactly one of keep,
// with sizes as even as ElastiCache makes them.
func checkPartition(t *testing.T, layout map[string][]engine.SlotRange, keep []string) {
	t.Helper()
	seen := make([]bool, engine.ClusterSlots)
	lo, hi := engine.ClusterSlots, 0
	for _, id := range keep {
		n := 0
		for _, r := range layout[id] {
			for s := r.Start; s <= r.End; s++ {
				if seen[s] {
					t.Fatalf("slot %d given twice: %v", s, layout)
				}
				seen[s] = true
				n++
			}
		}
		lo, hi = min(lo, n), max(hi, n)
	}
	for s, ok := range seen {
		if !ok {
			t.Fatalf("slot %d given to nobody: %v", s, layout)
		}
	}
	if hi-lo > 1 {
		t.Fatalf("shares from %d to %d slots: %v", lo, hi, layout)
	}
}

func TestRebalanceMovesFewSlots(t *testing.T) {
	three := map[string][]engine.SlotRange{"0001": ranges(t, "0-5461"), "0002": ranges(t, "5462-10922"), "0003": ranges(t, "10923-16383")}
	four := rebalance(three, []string{"0001", "0002", "0003", "0004"})
	checkPartition(t, four, []string{"0001", "0002", "0003", "0004"})
	want := map[string]string{"0001": "0-4095", "0002": "5462-9557", "0003": "10923-15018", "0004": "4096-5461,9558-10922,15019-16383"}
	for id, w := range want {
		if got := engine.FormatSlotRanges(four[id]); got != w {
			t.Errorf("3 → 4: %s got %s, want %s", id, got, w)
		}
	}
	// Only the new shard's share moved: 4096 slots.
	moved := 0
	for id, r := range four {
		moved += slotCount(r) - slotCount(intersect(r, three[id]))
	}
	if moved != 4096 {
		t.Errorf("3 → 4 moved %d slots, want 4096", moved)
	}

	two := rebalance(four, []string{"0002", "0004"})
	checkPartition(t, two, []string{"0002", "0004"})
	if two["0001"] != nil || two["0003"] != nil {
		t.Errorf("removed shards keep slots: %v", two)
	}
	for _, id := range []string{"0002", "0004"} { // kept shards keep what they had
		if got := slotCount(intersect(two[id], four[id])); got != slotCount(four[id]) {
			t.Errorf("4 → 2: %s kept %d of its %d slots", id, got, slotCount(four[id]))
		}
	}
	one := rebalance(two, []string{"0004"})
	if got := engine.FormatSlotRanges(one["0004"]); got != "0-16383" {
		t.Errorf("2 → 1: %s", got)
	}
	// A cluster not yet formed (nothing owned) gets an even split.
	fresh := rebalance(map[string][]engine.SlotRange{}, []string{"a", "b", "c"})
	checkPartition(t, fresh, []string{"a", "b", "c"})
}

func TestShardRequests(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	got, err := shardRequests(&ecapi.CreateReplicationGroupMessage{NumNodeGroups: i32(3), ReplicasPerNodeGroup: i32(2)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].id != "0003" || got[1].replicas != 2 || engine.FormatSlotRanges(got[1].slots) != "5462-10922" {
		t.Fatalf("even request: %+v", got)
	}
	got, err = shardRequests(&ecapi.CreateReplicationGroupMessage{NodeGroupConfiguration: []ecapi.NodeGroupConfiguration{
		{NodeGroupId: "7", Slots: "0-99,16000-16383", ReplicaCount: i32(1)}, {Slots: "100-15999"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].id != "0007" || got[0].replicas != 1 || got[1].id != "0002" || engine.FormatSlotRanges(got[0].slots) != "0-99,16000-16383" {
		t.Fatalf("configured request: %+v", got)
	}
	// From a sharded snapshot: its node groups' slots.
	sn := &snapshot{Nodes: []nodeSnapshot{{NodeID: "0001", Slots: "0-9999"}, {NodeID: "0002", Slots: "10000-16383"}}}
	got, err = shardRequests(&ecapi.CreateReplicationGroupMessage{}, sn)
	if err != nil || len(got) != 2 || engine.FormatSlotRanges(got[0].slots) != "0-9999" {
		t.Fatalf("from a snapshot: %+v %v", got, err)
	}
	bad := []struct {
		in   *ecapi.CreateReplicationGroupMessage
		code string
	}{
		{&ecapi.CreateReplicationGroupMessage{NumNodeGroups: i32(0)}, "InvalidParameterValue"},
		{&ecapi.CreateReplicationGroupMessage{NumNodeGroups: i32(501)}, "NodeGroupsPerReplicationGroupQuotaExceeded"},
		{&ecapi.CreateReplicationGroupMessage{NumNodeGroups: i32(2), ReplicasPerNodeGroup: i32(6)}, "InvalidParameterValue"},
		{&ecapi.CreateReplicationGroupMessage{NumNodeGroups: i32(2), NumCacheClusters: i32(2)}, "InvalidParameterCombination"},
		{&ecapi.CreateReplicationGroupMessage{NumNodeGroups: i32(3), NodeGroupConfiguration: make([]ecapi.NodeGroupConfiguration, 2)}, "InvalidParameterCombination"},
		{&ecapi.CreateReplicationGroupMessage{NodeGroupConfiguration: []ecapi.NodeGroupConfiguration{{Slots: "0-100"}, {}}}, "InvalidParameterValue"},
		{&ecapi.CreateReplicationGroupMessage{NodeGroupConfiguration: []ecapi.NodeGroupConfiguration{{Slots: "0-8192"}, {Slots: "8192-16383"}}}, "InvalidParameterValue"},
		{&ecapi.CreateReplicationGroupMessage{NodeGroupConfiguration: []ecapi.NodeGroupConfiguration{{Slots: "0-8190"}, {Slots: "8192-16383"}}}, "InvalidParameterValue"},
		{&ecapi.CreateReplicationGroupMessage{NodeGroupConfiguration: []ecapi.NodeGroupConfiguration{{Slots: "x"}, {Slots: "0-16383"}}}, "InvalidParameterValue"},
		{&ecapi.CreateReplicationGroupMessage{NodeGroupConfiguration: []ecapi.NodeGroupConfiguration{{NodeGroupId: "1"}, {NodeGroupId: "0001"}}}, "InvalidParameterValue"},
		{&ecapi.CreateReplicationGroupMessage{NodeGroupConfiguration: []ecapi.NodeGroupConfiguration{{NodeGroupId: "abcde"}}}, "InvalidParameterValue"},
	}
	for i, b := range bad {
		_, err := shardRequests(b.in, nil)
		if e, ok := apierr.As(err); !ok || e.Code != b.code {
			t.Errorf("case %d: got %v, want %s", i, err, b.code)
		}
	}
}

func TestSlotRangesAndIntersect(t *testing.T) {
	if got := engine.FormatSlotRanges(slotRanges([]int{1, 2, 3, 7, 9, 10})); got != "1-3,7-7,9-10" {
		t.Errorf("slotRanges: %s", got)
	}
	if got := engine.FormatSlotRanges(intersect(ranges(t, "0-100,200-300"), ranges(t, "50-250"))); got != "50-100,200-250" {
		t.Errorf("intersect: %s", got)
	}
}
