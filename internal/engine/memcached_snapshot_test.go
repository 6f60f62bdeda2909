package engine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMemcachedSnapshotAndSeed dumps a memcached node running with the LRU
// crawler off (ElastiCache's default), checks the crawler is off again after,
// and seeds a new node from the dump; a seed that is not a dump starts nothing.
func TestMemcachedSnapshotAndSeed(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, "memcached")
	params := familyParams(t, "memcached1.6", "cache.t3.micro")
	params["lru_crawler"] = "0"
	a := startNode(t, d, memcachedSpec(t, params))
	conn, err := net.Dial("tcp", hostPort(a.Host, a.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for i := 0; i < 100; i++ {
		fmt.Fprintf(conn, "set k%d %d %d 3\r\nv%02d\r\n", i, i, i%2*3600, i)
		if line, _ := r.ReadString('\n'); line != "STORED\r\n" {
			t.Fatalf("set: %q", line)
		}
	}
	path := filepath.Join(t.TempDir(), "0001.mcdump")
	size, err := d.(Snapshotter).Snapshot(ctx, a, path)
	if err != nil || size != fileSize(t, path) {
		t.Fatalf("Snapshot: size %d, %v", size, err)
	}
	// "lru_crawler disable" answers at once; the crawler thread may take a
	// moment to stop and say so in stats settings.
	crawler := ""
	for deadline := time.Now().Add(3 * time.Second); crawler != "no" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		fmt.Fprintf(conn, "stats settings\r\n")
		for line, _ := r.ReadString('\n'); line != "END\r\n" && line != ""; line, _ = r.ReadString('\n') {
			if v, ok := strings.CutPrefix(line, "STAT lru_crawler "); ok {
				crawler = strings.TrimSpace(v)
			}
		}
	}
	if crawler != "no" {
		t.Fatalf("lru_crawler is %q 3 s after the dump, want no", crawler)
	}

	spec := memcachedSpec(t, params)
	spec.Seed = path
	b := startNode(t, d, spec)
	conn2, err := net.Dial("tcp", hostPort(b.Host, b.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	r2 := bufio.NewReader(conn2)
	for i := 0; i < 100; i++ {
		fmt.Fprintf(conn2, "mg k%d v f t\r\n", i)
		head, _ := r2.ReadString('\n')
		value, _ := r2.ReadString('\n')
		ttlOK := strings.Contains(head, " t-1") == (i%2 == 0)
		if !strings.HasPrefix(head, "VA 3 ") || !strings.Contains(head, fmt.Sprintf(" f%d", i)) || !ttlOK || value != fmt.Sprintf("v%02d\r\n", i) {
			t.Fatalf("seeded item k%d: %q %q", i, head, value)
		}
	}

	bad := memcachedSpec(t, params)
	bad.Seed = filepath.Join(t.TempDir(), "x.rdb")
	if err := os.WriteFile(bad.Seed, []byte("REDIS0011 not a dump"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(ctx, bad); err == nil || !strings.Contains(err.Error(), "restoring from") {
		t.Errorf("memcached Start with a seed that is not a dump: %v", err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}
