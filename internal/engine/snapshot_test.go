package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestSnapshotterImplementations(t *testing.T) {
	for _, engine := range []string{"redis", "valkey", "memcached"} {
		if _, ok := newDriver(t, engine).(Snapshotter); !ok {
			t.Errorf("%s driver does not implement Snapshotter", engine)
		}
	}
}

// testClient connects to a node.
func testClient(t testing.TB, h Handle, password string, db int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: hostPort(h.Host, h.Port), Password: password, DB: db,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// populate writes n keys named k:<i> of mixed types — strings (text, binary,
// integers), hashes, lists, sets (intsets too), sorted sets and streams (some
// with a consumer group), small and large (other encodings) — two thirds of
// them with a TTL.
func populate(t testing.TB, c *redis.Client, n int) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewSource(1))
	word := func() string {
		b := make([]byte, 1+rng.Intn(24))
		rng.Read(b)
		return string(b)
	}
	pipe := c.Pipeline()
	for i := 0; i < n; i++ {
		k := "k:" + strconv.Itoa(i)
		big := i%1000 < 6 // a few large values of every type
		count := func(small, large int) int {
			if big {
				return large
			}
			return 1 + rng.Intn(small)
		}
		switch i % 6 {
		case 0:
			switch i % 4 {
			case 0:
				pipe.Set(ctx, k, strconv.Itoa(rng.Int()), 0)
			case 1:
				pipe.Set(ctx, k, strings.Repeat("abc", count(70, 3000)), 0)
			default:
				pipe.Set(ctx, k, word(), 0)
			}
		case 1:
			var fv []interface{}
			for j := count(10, 300); j > 0; j-- {
				fv = append(fv, "f"+strconv.Itoa(j), word())
			}
			pipe.HSet(ctx, k, fv...)
		case 2:
			var vs []interface{}
			for j := count(10, 2000); j > 0; j-- {
				vs = append(vs, word())
			}
			pipe.RPush(ctx, k, vs...)
		case 3:
			var vs []interface{}
			for j := count(10, 700); j > 0; j-- {
				if i%4 == 3 {
					vs = append(vs, rng.Intn(1<<20))
				} else {
					vs = append(vs, word())
				}
			}
			pipe.SAdd(ctx, k, vs...)
		case 4:
			var zs []redis.Z
			for j := count(10, 300); j > 0; j-- {
				zs = append(zs, redis.Z{Score: rng.NormFloat64() * 1e6, Member: word()})
			}
			pipe.ZAdd(ctx, k, zs...)
		case 5:
			for j := count(5, 200); j > 0; j-- {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: []interface{}{"a", word(), "n", j}})
			}
			if big || i%60 == 5 {
				pipe.XGroupCreate(ctx, k, "g", "0")
				pipe.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{k, ">"}, Count: 2, Block: -1})
			}
		}
		switch i % 3 {
		case 1:
			pipe.Expire(ctx, k, time.Duration(100+rng.Intn(100000))*time.Second)
		case 2:
			pipe.PExpire(ctx, k, time.Duration(100000+rng.Intn(100000000))*time.Millisecond)
		}
		if pipe.Len() > 2000 {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// keyState is a key's type, value in a canonical form, expiry time (unix ms,
// -1 without TTL) and remaining TTL.
type keyState struct {
	typ      string
	value    string
	expireAt int64
	ttl      time.Duration
}

// captureKeys reads every key matching match.
func captureKeys(t testing.TB, c *redis.Client, match string) map[string]keyState {
	t.Helper()
	ctx := context.Background()
	var keys []string
	it := c.Scan(ctx, 0, match, 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	pipe := c.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	exp := make([]*redis.Cmd, len(keys))
	ttl := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		types[i] = pipe.Type(ctx, k)
		exp[i] = pipe.Do(ctx, "PEXPIRETIME", k)
		ttl[i] = pipe.PTTL(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	pipe = c.Pipeline()
	vals := make([]func() string, len(keys))
	for i, k := range keys {
		switch types[i].Val() {
		case "string":
			cmd := pipe.Get(ctx, k)
			vals[i] = func() string { return strconv.Quote(cmd.Val()) }
		case "hash":
			cmd := pipe.HGetAll(ctx, k)
			vals[i] = func() string { return fmt.Sprintf("%q", cmd.Val()) } // fmt sorts map keys
		case "list":
			cmd := pipe.LRange(ctx, k, 0, -1)
			vals[i] = func() string { return fmt.Sprintf("%q", cmd.Val()) }
		case "set":
			cmd := pipe.SMembers(ctx, k)
			vals[i] = func() string { v := cmd.Val(); sort.Strings(v); return fmt.Sprintf("%q", v) }
		case "zset":
			cmd := pipe.ZRangeWithScores(ctx, k, 0, -1)
			vals[i] = func() string { return fmt.Sprintf("%v", cmd.Val()) }
		case "stream":
			rng := pipe.XRange(ctx, k, "-", "+")
			info := pipe.XInfoStream(ctx, k)
			groups := pipe.XInfoGroups(ctx, k)
			vals[i] = func() string {
				return fmt.Sprintf("%v last=%s groups=%+v", rng.Val(), info.Val().LastGeneratedID, groups.Val())
			}
		default:
			t.Fatalf("key %q of type %q", k, types[i].Val())
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]keyState, len(keys))
	for i, k := range keys {
		e, err := exp[i].Int64()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = keyState{typ: types[i].Val(), value: vals[i](), expireAt: e, ttl: ttl[i].Val()}
	}
	return out
}

// compareKeys checks got has every key of want, of the same type and value,
// expiring at the same time, with a TTL at most slack shorter.
func compareKeys(t *testing.T, got, want map[string]keyState, slack time.Duration) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d keys, want %d", len(got), len(want))
	}
	bad := 0
	for k, ws := range want {
		gs, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s missing", k)
		case gs.typ != ws.typ || gs.value != ws.value:
			t.Errorf("%s: %s %.200s, want %s %.200s", k, gs.typ, gs.value, ws.typ, ws.value)
		case gs.expireAt != ws.expireAt:
			t.Errorf("%s expires at %d, want %d", k, gs.expireAt, ws.expireAt)
		case (ws.ttl < 0) != (gs.ttl < 0) || gs.ttl > ws.ttl || gs.ttl < ws.ttl-slack:
			t.Errorf("%s TTL %s, want %s less at most %s", k, gs.ttl, ws.ttl, slack)
		default:
			continue
		}
		if bad++; bad > 10 {
			t.Fatal("too many differences")
		}
	}
}

// writer keeps writing w:0, w:1, ... in order until stopped; count is the
// number of writes acknowledged.
type writer struct {
	count atomic.Int64
	stop  chan struct{}
	done  chan error
}

func startWriter(c *redis.Client) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		ctx := context.Background()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				w.done <- nil
				return
			default:
			}
			if err := c.Set(ctx, "w:"+strconv.Itoa(i), i, 0).Err(); err != nil {
				w.done <- err
				return
			}
			w.count.Add(1)
		}
	}()
	return w
}

func (w *writer) finish(t testing.TB) int64 {
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	return w.count.Load()
}

func fileSum(t testing.TB, path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func waitNotRunning(t testing.TB, h Handle) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for running(h.PID, h.StartTime) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still running", h.PID)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dbsize(t testing.TB, c *redis.Client) int64 {
	t.Helper()
	n, err := c.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRedisSnapshotRestore snapshots a node holding 10,000 keys of every type
// while a client keeps writing, restores the snapshot on a new node, compares
// every key, and checks a restart of the restored node comes up empty.
func TestRedisSnapshotRestore(t *testing.T) {
	for _, tc := range []struct {
		name     string
		params   map[string]string
		password string
	}{
		// redis 7's defaults: diskless, after repl-diskless-sync-delay (5 s).
		{name: "diskless"},
		// The RDB written to the node's disk first ($<length> reply), with a
		// password and SYNC and REPLCONF renamed.
		{name: "disk", params: map[string]string{"repl-diskless-sync": "no", "requirepass": "s3cret",
			"rename-commands": "sync hoard-sync replconf hoard-replconf"}, password: "s3cret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			d := newDriver(t, "redis")
			specA := redisSpec(t, tc.params)
			a := startNode(t, d, specA)
			ca := testClient(t, a, tc.password, 0)
			populate(t, ca, 10000)
			ca1 := testClient(t, a, tc.password, 1)
			for i := 0; i < 10; i++ {
				if err := ca1.Set(ctx, "db1:"+strconv.Itoa(i), i, time.Hour).Err(); err != nil {
					t.Fatal(err)
				}
			}
			want := captureKeys(t, ca, "k:*")
			want1 := captureKeys(t, ca1, "*")
			if len(want) != 10000 || len(want1) != 10 {
				t.Fatalf("populated %d+%d keys", len(want), len(want1))
			}
			captured := time.Now()

			w := startWriter(testClient(t, a, tc.password, 0))
			for w.count.Load() < 100 {
				time.Sleep(time.Millisecond)
			}
			before := w.count.Load()
			path := filepath.Join(t.TempDir(), "snap.rdb")
			t0 := time.Now()
			size, err := d.(Snapshotter).Snapshot(ctx, a, path)
			took := time.Since(t0)
			after := w.count.Load()
			written := w.finish(t)
			if err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			t.Logf("snapshot of %d bytes in %s; %d writes before, %d during", size, took, before, after-before)
			if after == before {
				t.Error("no writes during the snapshot")
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Size() != size || fi.Mode().Perm() != 0o600 {
				t.Fatalf("snapshot file %v, %v; want %d bytes, mode 0600", fi, err, size)
			}
			if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
				t.Errorf("temporary file left: %v", err)
			}
			if _, err := checkRDBFile(path); err != nil {
				t.Error(err)
			}
			sum := fileSum(t, path)
			if _, err := d.(Snapshotter).Snapshot(ctx, a, path); err == nil || !strings.Contains(err.Error(), "exists") {
				t.Errorf("Snapshot over an existing file: %v", err)
			}
			if fileSum(t, path) != sum {
				t.Error("existing snapshot file changed")
			}
			if !d.Alive(ctx, a) || dbsize(t, ca) != 10000+written {
				t.Errorf("source node after the snapshot: alive %v, %d keys, want %d", d.Alive(ctx, a), dbsize(t, ca), 10000+written)
			}

			// Restore.
			specB := redisSpec(t, tc.params)
			specB.Seed = path
			b := startNode(t, d, specB)
			cb := testClient(t, b, tc.password, 0)
			got := captureKeys(t, cb, "k:*")
			if len(got) != len(want) {
				t.Errorf("restored %d k:* keys, want %d", len(got), len(want))
			}
			// TTLs tick down between reading the source and reading the restored
			// node; under -race on a loaded machine that takes seconds, so the
			// slack is generous (TTLs here are hours: a lost or reset TTL still fails).
			slack := time.Since(captured) + 30*time.Second
			compareKeys(t, got, want, slack)
			compareKeys(t, captureKeys(t, testClient(t, b, tc.password, 1), "*"), want1, slack)
			// A point in time: the writer's keys are w:0 .. w:n-1 for some n
			// between the writes acknowledged before and after the snapshot.
			var idx []int
			it := cb.Scan(ctx, 0, "w:*", 1000).Iterator()
			for it.Next(ctx) {
				i, err := strconv.Atoi(strings.TrimPrefix(it.Val(), "w:"))
				if err != nil {
					t.Fatal(err)
				}
				idx = append(idx, i)
			}
			slices.Sort(idx)
			n := int64(len(idx))
			if n < before || n > after || (n > 0 && int64(idx[n-1]) != n-1) {
				t.Errorf("restored %d w:* keys (last %v), want w:0 .. w:n-1 with %d <= n <= %d", n, idx[max(n-1, 0):], before, after)
			}
			t.Logf("the snapshot holds the first %d of the writer's keys", n)
			if fileSum(t, path) != sum {
				t.Error("the seed file changed")
			}
			if _, err := os.Stat(filepath.Join(specB.Dir, redisDBFilename)); !os.IsNotExist(err) {
				t.Errorf("seed copy left in the node directory: %v", err)
			}
			if v, _ := cb.ConfigGet(ctx, "dbfilename").Result(); v["dbfilename"] != redisDBFilename {
				t.Errorf("dbfilename %q", v["dbfilename"])
			}

			// A crash of the restored node and a start of the same node
			// (crash recovery) give an empty node.
			if err := syscall.Kill(b.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitNotRunning(t, b)
			specB.Seed = ""
			b2 := startNode(t, d, specB)
			if n := dbsize(t, testClient(t, b2, tc.password, 0)); n != 0 {
				t.Errorf("restarted restored node has %d keys, want none", n)
			}

			if tc.name == "disk" {
				// The disk-based sync left the RDB in the source node's
				// directory: a restart must not load it.
				dump := filepath.Join(specA.Dir, redisDBFilename)
				if _, err := os.Stat(dump); err != nil {
					t.Errorf("no %s after a disk-based sync: %v", dump, err)
				}
				if err := d.Stop(ctx, a); err != nil {
					t.Fatal(err)
				}
				a2 := startNode(t, d, specA)
				if n := dbsize(t, testClient(t, a2, tc.password, 0)); n != 0 {
					t.Errorf("restarted source node has %d keys, want none", n)
				}
			}
		})
	}
}

// TestRedisRestorePersistence: a node restored with appendonly yes turns its AOF
// on once the seed is loaded, and keeps the data across a restart; a node with
// save points keeps the seed as its dump file.
func TestRedisRestorePersistence(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, "redis")
	a := startNode(t, d, redisSpec(t, map[string]string{"repl-diskless-sync-delay": "0"}))
	populate(t, testClient(t, a, "", 0), 600)
	path := filepath.Join(t.TempDir(), "snap.rdb")
	if _, err := d.(Snapshotter).Snapshot(ctx, a, path); err != nil {
		t.Fatal(err)
	}
	for _, params := range []map[string]string{{"appendonly": "yes"}, {"save": "3600 1"}} {
		t.Run(fmt.Sprint(params), func(t *testing.T) {
			spec := redisSpec(t, params)
			spec.Seed = path
			b := startNode(t, d, spec)
			c := testClient(t, b, "", 0)
			if n := dbsize(t, c); n != 600 {
				t.Fatalf("restored %d keys", n)
			}
			if params["appendonly"] == "yes" {
				if v, _ := c.ConfigGet(ctx, "appendonly").Result(); v["appendonly"] != "yes" {
					t.Fatalf("appendonly %q", v["appendonly"])
				}
				deadline := time.Now().Add(10 * time.Second)
				for {
					info, _ := c.Info(ctx, "persistence").Result()
					if strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") &&
						strings.Contains(info, "aof_last_bgrewrite_status:ok") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("AOF rewrite did not finish: %s", info)
					}
					time.Sleep(10 * time.Millisecond)
				}
			} else if _, err := os.Stat(filepath.Join(spec.Dir, redisDBFilename)); err != nil {
				t.Errorf("node with save points lost its dump file: %v", err)
			}
			if err := d.Stop(ctx, b); err != nil {
				t.Fatal(err)
			}
			spec.Seed = ""
			b2 := startNode(t, d, spec)
			if n := dbsize(t, testClient(t, b2, "", 0)); n != 600 {
				t.Errorf("persistent node restarted with %d keys, want 600", n)
			}
		})
	}
}

func TestRedisSeedNotRDB(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, "redis")
	good := func() []byte {
		var b bytes.Buffer
		b.WriteString("REDIS0009")
		b.WriteByte(0xff)
		crc := ^crc64.Update(^uint64(0), crcJones, b.Bytes())
		binary.Write(&b, binary.LittleEndian, crc)
		return b.Bytes()
	}()
	for _, tc := range []struct {
		name, want string
		data       []byte
		fast       bool // refused before redis is started
	}{
		{"text", "is not an RDB file", []byte("hello, this is not an RDB\n"), true},
		{"empty", "is not an RDB file", nil, true},
		{"missing", "no such file", nil, true},
		{"version", "Can't handle RDB format version 99", []byte("REDIS0099\xff"), false},
		{"corrupt", "refused the seed RDB", append([]byte("REDIS0009"), bytes.Repeat([]byte{0x42}, 100)...), false},
		{"checksum", "refused the seed RDB", append(good[:len(good)-1:len(good)-1], good[len(good)-1]^1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := filepath.Join(t.TempDir(), "seed.rdb")
			if tc.name != "missing" {
				if err := os.WriteFile(seed, tc.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			spec := redisSpec(t, nil)
			spec.Seed = seed
			t0 := time.Now()
			h, err := d.Start(ctx, spec)
			if err == nil {
				d.Stop(ctx, h)
				t.Fatal("Start succeeded")
			}
			t.Logf("%v", err)
			if !strings.Contains(err.Error(), tc.want) || (tc.fast && time.Since(t0) > time.Second) {
				t.Errorf("err %v after %s; want %q", err, time.Since(t0), tc.want)
			}
			if p := processesUnder(filepath.Dir(spec.Dir)); len(p) > 0 {
				t.Errorf("processes left: %v", p)
			}
			if !portFree(spec.Port) {
				t.Errorf("port %d taken", spec.Port)
			}
			if _, err := os.Stat(filepath.Join(spec.Dir, redisDBFilename)); !os.IsNotExist(err) {
				t.Errorf("seed copy left: %v", err)
			}
		})
	}
	// The well-formed empty RDB loads.
	seed := filepath.Join(t.TempDir(), "empty.rdb")
	if err := os.WriteFile(seed, good, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := redisSpec(t, nil)
	spec.Seed = seed
	startNode(t, d, spec)
}

// slowSnapshotNode starts a node with n keys whose RDB is produced slowly
// (rdb-key-save-delay), so that a snapshot can be interrupted.
func slowSnapshotNode(t *testing.T, d Driver, n int) (Spec, Handle, *redis.Client) {
	spec := redisSpec(t, map[string]string{"repl-diskless-sync-delay": "0"})
	h := startNode(t, d, spec)
	c := testClient(t, h, "", 0)
	pipe := c.Pipeline()
	for i := 0; i < n; i++ {
		pipe.Set(context.Background(), "k:"+strconv.Itoa(i), strings.Repeat("x", 100), 0)
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Microseconds per key: n keys take n/5000 seconds.
	if err := c.ConfigSet(context.Background(), "rdb-key-save-delay", "200").Err(); err != nil {
		t.Fatal(err)
	}
	return spec, h, c
}

// snapshotInBackground runs Snapshot and waits until the node is streaming
// the RDB to it (its fork is saving and its temporary file exists; the file
// fills in 1 MiB writes, so its size says little).
func snapshotInBackground(t *testing.T, ctx context.Context, d Driver, h Handle, path string) chan error {
	done := make(chan error, 1)
	go func() {
		_, err := d.(Snapshotter).Snapshot(ctx, h, path)
		done <- err
	}()
	c := testClient(t, h, "", 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := c.Info(context.Background(), "persistence").Result()
		if _, err := os.Stat(path + ".tmp"); err == nil && strings.Contains(info, "rdb_bgsave_in_progress:1") {
			return done
		}
		select {
		case err := <-done:
			t.Fatalf("Snapshot ended before streaming: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Snapshot did not start streaming")
		}
		time.Sleep(time.Millisecond)
	}
}

func noSnapshotFiles(t *testing.T, path string) {
	t.Helper()
	for _, p := range []string{path, path + ".tmp"} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
}

func TestRedisSnapshotNodeKilled(t *testing.T) {
	d := newDriver(t, "redis")
	spec, h, _ := slowSnapshotNode(t, d, 20000)
	path := filepath.Join(t.TempDir(), "snap.rdb")
	done := snapshotInBackground(t, context.Background(), d, h, path)
	if err := syscall.Kill(h.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Snapshot of a killed node succeeded")
		}
		t.Logf("%v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Snapshot did not return after the node was killed")
	}
	noSnapshotFiles(t, path)
	// The node's fork (the RDB child) ends too.
	deadline := time.Now().Add(15 * time.Second)
	for len(processesUnder(spec.Dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p := processesUnder(spec.Dir); len(p) > 0 {
		t.Errorf("processes left: %v", p)
	}
}

func TestRedisSnapshotCancel(t *testing.T) {
	d := newDriver(t, "redis")
	_, h, c := slowSnapshotNode(t, d, 20000)
	path := filepath.Join(t.TempDir(), "snap.rdb")
	ctx, cancel := context.WithCancel(context.Background())
	done := snapshotInBackground(t, ctx, d, h, path)
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Snapshot after cancel: %v, want context.Canceled", err)
		}
		if time.Since(t0) > 2*time.Second {
			t.Errorf("Snapshot returned %s after the cancel", time.Since(t0))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Snapshot did not return after cancel")
	}
	noSnapshotFiles(t, path)
	ctx = context.Background()
	if !d.Alive(ctx, h) || dbsize(t, c) != 20000 {
		t.Fatal("node hurt by the cancelled snapshot")
	}
	// A deadline ends it the same way.
	tctx, tcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer tcancel()
	if _, err := d.(Snapshotter).Snapshot(tctx, h, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Snapshot past its deadline: %v", err)
	}
	noSnapshotFiles(t, path)
	// The node still snapshots.
	if err := c.ConfigSet(ctx, "rdb-key-save-delay", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.(Snapshotter).Snapshot(ctx, h, path); err != nil {
		t.Fatal(err)
	}
	// A node that is gone.
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := d.(Snapshotter).Snapshot(ctx, h, path+"2"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("Snapshot of a stopped node: %v", err)
	}
	noSnapshotFiles(t, path+"2")
}

// crcJones is the table of the CRC-64 redis ends RDB files with (Jones
// polynomial, reflected, no final xor; Go's table takes the polynomial in
// reversed bit order).
var crcJones = crc64.MakeTable(0x95ac9329ac4bc9b5)

// BenchmarkSnapshot measures Snapshot of a node holding ~100 MB (100,000
// incompressible 1000-byte values), diskless and disk-based, against
// `redis-cli --rdb` on the same node. Each iteration takes one snapshot with
// each, in alternating order, so that both see the same conditions; the
// benchmark reports hoard-MB/s and redis-cli-MB/s (ns/op is the pair).
func BenchmarkSnapshot(b *testing.B) {
	d := newDriver(b, "redis")
	h := startNode(b, d, redisSpec(b, map[string]string{"repl-diskless-sync-delay": "0"}))
	c := testClient(b, h, "", 0)
	ctx := context.Background()
	rng := rand.New(rand.NewSource(3))
	pipe := c.Pipeline()
	for i := 0; i < 100000; i++ {
		v := make([]byte, 1000)
		rng.Read(v)
		pipe.Set(ctx, "k:"+strconv.Itoa(i), v, 0)
		if pipe.Len() == 1000 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	dir := b.TempDir()
	cli, cliErr := exec.LookPath("redis-cli")
	for _, mode := range []struct{ name, diskless, compression string }{
		{"diskless", "yes", "yes"}, // redis 7's defaults
		{"disk", "no", "yes"},
		// Without compression redis produces the RDB faster (LZF tries and
		// fails on these random values), which shows more of the copy.
		{"diskless-uncompressed", "yes", "no"},
	} {
		for n, v := range map[string]string{"repl-diskless-sync": mode.diskless, "rdbcompression": mode.compression} {
			if err := c.ConfigSet(ctx, n, v).Err(); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(mode.name, func(b *testing.B) {
			var hoard, redisCLI time.Duration
			var hoardBytes, cliBytes int64
			snap := func() {
				p := filepath.Join(dir, "s.rdb")
				t0 := time.Now()
				n, err := d.(Snapshotter).Snapshot(ctx, h, p)
				hoard += time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				hoardBytes += n
				os.Remove(p)
			}
			rdb := func() {
				p := filepath.Join(dir, "c.rdb")
				t0 := time.Now()
				out, err := exec.Command(cli, "-h", h.Host, "-p", strconv.Itoa(h.Port), "--rdb", p).CombinedOutput()
				redisCLI += time.Since(t0)
				if err != nil {
					b.Fatalf("redis-cli --rdb: %v: %s", err, out)
				}
				fi, err := os.Stat(p)
				if err != nil {
					b.Fatal(err)
				}
				cliBytes += fi.Size()
				os.Remove(p)
			}
			for i := 0; i < b.N; i++ {
				if cliErr != nil {
					snap()
					continue
				}
				if i%2 == 0 {
					snap()
					rdb()
				} else {
					rdb()
					snap()
				}
			}
			b.ReportMetric(float64(hoardBytes)/1e6/hoard.Seconds(), "hoard-MB/s")
			if cliErr == nil {
				b.ReportMetric(float64(cliBytes)/1e6/redisCLI.Seconds(), "redis-cli-MB/s")
			}
		})
	}
}
