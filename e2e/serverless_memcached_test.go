package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
)

// mcItem is what a memcached item holds: value, client flags and remaining TTL
// (0 for none).
type mcItem struct {
	value string
	flags uint32
	ttl   time.Duration
}

// mcConn is a memcached text-protocol connection for the tests.
type mcConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialMemcached(t *testing.T, sc types.ServerlessCache) *mcConn {
	t.Helper()
	addr := net.JoinHostPort(aws.ToString(sc.Endpoint.Address), strconv.Itoa(int(aws.ToInt32(sc.Endpoint.Port))))
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &mcConn{t: t, conn: conn, r: bufio.NewReaderSize(conn, 1<<20)}
}

// set stores an item and returns memcached's answer line.
func (m *mcConn) set(key string, it mcItem) string {
	m.t.Helper()
	fmt.Fprintf(m.conn, "set %s %d %d %d\r\n%s\r\n", key, it.flags, int(it.ttl/time.Second), len(it.value), it.value)
	line, err := m.r.ReadString('\n')
	if err != nil {
		m.t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// get reads an item with the meta protocol: value, flags and remaining TTL.
func (m *mcConn) get(key string) (mcItem, bool) {
	m.t.Helper()
	fmt.Fprintf(m.conn, "mg %s v f t\r\n", key)
	line, err := m.r.ReadString('\n')
	if err != nil {
		m.t.Fatal(err)
	}
	fields := strings.Fields(line)
	if len(fields) > 0 && fields[0] == "EN" {
		return mcItem{}, false
	}
	if len(fields) < 2 || fields[0] != "VA" {
		m.t.Fatalf("mg %s: %q", key, line)
	}
	size, _ := strconv.Atoi(fields[1])
	var it mcItem
	for _, f := range fields[2:] {
		switch f[0] {
		case 'f':
			v, _ := strconv.ParseUint(f[1:], 10, 32)
			it.flags = uint32(v)
		case 't':
			if v, _ := strconv.Atoi(f[1:]); v > 0 {
				it.ttl = time.Duration(v) * time.Second
			}
		}
	}
	buf := make([]byte, size+2)
	if _, err := ioReadFull(m.r, buf); err != nil {
		m.t.Fatal(err)
	}
	it.value = string(buf[:size])
	return it, true
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// memcachedItems is the test's dataset: 3,000 items of mixed sizes, flags and TTLs.
func memcachedItems() map[string]mcItem {
	items := map[string]mcItem{}
	for i := 0; i < 3000; i++ {
		it := mcItem{value: strings.Repeat(string(rune('a'+i%26)), i%700), flags: uint32(i * 7919)}
		if i%3 == 0 {
			it.ttl = time.Duration(3600+i) * time.Second
		}
		if i%500 == 0 {
			it.value = strings.Repeat("L", 300<<10) // a few large values
		}
		items[fmt.Sprintf("item:%04d:%s", i, strings.Repeat("k", i%40))] = it
	}
	return items
}

func checkMemcachedItems(t *testing.T, m *mcConn, want map[string]mcItem) {
	t.Helper()
	for key, w := range want {
		got, ok := m.get(key)
		switch {
		case !ok:
			t.Fatalf("item %s lost", key)
		case got.value != w.value || got.flags != w.flags:
			t.Fatalf("item %s: %d bytes flags %d, want %d bytes flags %d", key, len(got.value), got.flags, len(w.value), w.flags)
		case (w.ttl == 0) != (got.ttl == 0) || w.ttl-got.ttl > 60*time.Second || got.ttl > w.ttl:
			t.Fatalf("item %s: TTL %v, want about %v", key, got.ttl, w.ttl)
		}
	}
}

// TestServerlessMemcachedRoundTrip writes items with flags and TTLs into a
// memcached serverless cache, snapshots, copies, exports and restores it (from
// the copy and from the exported dump), comparing every item.
func TestServerlessMemcachedRoundTrip(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	sc := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("mc"), Engine: aws.String("memcached")})
	if aws.ToString(sc.MajorEngineVersion) != "1.6" || !strings.HasPrefix(aws.ToString(sc.FullEngineVersion), "1.6.") {
		t.Fatalf("memcached serverless cache: %+v", sc)
	}
	m := dialMemcached(t, sc)
	items := memcachedItems()
	for key, it := range items {
		if got := m.set(key, it); got != "STORED" {
			t.Fatalf("set %s: %s", key, got)
		}
	}

	out, err := c.CreateServerlessCacheSnapshot(ctx(t), &elasticache.CreateServerlessCacheSnapshotInput{ServerlessCacheName: aws.String("mc"),
		ServerlessCacheSnapshotName: aws.String("mc-snap")})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := out.ServerlessCacheSnapshot.ServerlessCacheConfiguration; aws.ToString(cfg.Engine) != "memcached" || aws.ToString(cfg.MajorEngineVersion) != "1.6" {
		t.Fatalf("snapshot configuration: %+v", cfg)
	}
	waitServerlessSnapshot(t, c, "mc-snap")
	if _, err := c.CopyServerlessCacheSnapshot(ctx(t), &elasticache.CopyServerlessCacheSnapshotInput{SourceServerlessCacheSnapshotName: aws.String("mc-snap"),
		TargetServerlessCacheSnapshotName: aws.String("mc-copy")}); err != nil {
		t.Fatal(err)
	}
	restored := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("mc-restored"), Engine: aws.String("memcached"),
		SnapshotArnsToRestore: []string{"arn:aws:elasticache:us-east-1:" + testAccount + ":serverlesscachesnapshot:mc-copy"}})
	checkMemcachedItems(t, dialMemcached(t, restored), items)

	if err := os.MkdirAll(filepath.Join(h.dataDir, "s3", "dumps"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExportServerlessCacheSnapshot(ctx(t), &elasticache.ExportServerlessCacheSnapshotInput{ServerlessCacheSnapshotName: aws.String("mc-snap"),
		S3BucketName: aws.String("dumps")}); err != nil {
		t.Fatal(err)
	}
	dump, err := os.ReadFile(filepath.Join(h.dataDir, "s3", "dumps", "mc-snap-0001.mcdump"))
	if err != nil || !strings.HasPrefix(string(dump), "HOARDMC\n") {
		t.Fatalf("exported dump: %v", err)
	}
	seeded := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("mc-seeded"), Engine: aws.String("memcached"),
		SnapshotArnsToRestore: []string{"arn:aws:s3:::dumps/mc-snap-0001.mcdump"}})
	checkMemcachedItems(t, dialMemcached(t, seeded), items)

	// A dump is not redis data, and an RDB is not memcached data.
	_, err = c.CreateServerlessCache(ctx(t), &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("wrong"), Engine: aws.String("redis"),
		SnapshotArnsToRestore: []string{"arn:aws:s3:::dumps/mc-snap-0001.mcdump"}})
	wantAPIError(t, err, "InvalidParameterCombination", 400)
	// A damaged dump is refused, and no cache is left half-made.
	damaged := append([]byte(nil), dump...)
	damaged[len(damaged)/2] ^= 0xff
	if err := os.WriteFile(filepath.Join(h.dataDir, "s3", "dumps", "damaged.mcdump"), damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateServerlessCache(ctx(t), &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("damaged"), Engine: aws.String("memcached"),
		SnapshotArnsToRestore: []string{"arn:aws:s3:::dumps/damaged.mcdump"}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeServerlessCaches(ctx(t), &elasticache.DescribeServerlessCachesInput{ServerlessCacheName: aws.String("damaged")})
	wantAPIError(t, err, "ServerlessCacheNotFoundFault", 404)
}

// TestServerlessMemcachedDataStorageLimit: a memcached serverless cache with a
// 1 GB maximum refuses writes once full instead of evicting.
func TestServerlessMemcachedDataStorageLimit(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	sc := createServerless(t, c, &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String("mc-bounded"), Engine: aws.String("memcached"),
		CacheUsageLimits: &types.CacheUsageLimits{DataStorage: &types.DataStorage{Maximum: aws.Int32(1), Unit: types.DataStorageUnitGb}}})
	m := dialMemcached(t, sc)
	value := strings.Repeat("x", 512<<10)
	refused, stored := "", 0
	for i := 0; i < 3000 && refused == ""; i++ {
		if answer := m.set(fmt.Sprintf("fill:%d", i), mcItem{value: value}); answer == "STORED" {
			stored++
		} else {
			refused = answer
		}
	}
	if !strings.Contains(strings.ToLower(refused), "out of memory") {
		t.Fatalf("1.5 GB written into a 1 GB cache; last answer %q", refused)
	}
	if stored*len(value) < 700<<20 || stored*len(value) > 1<<30 {
		t.Fatalf("%d MiB stored before refusal in a 1 GB cache", stored*len(value)>>20)
	}
	if _, ok := m.get("fill:0"); !ok {
		t.Fatal("the first item was evicted; a full cache should refuse writes instead")
	}
}
