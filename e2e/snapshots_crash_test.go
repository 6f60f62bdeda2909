package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/redis/go-redis/v9"
)

const (
	crashValueSize = 256 << 10 // bytes of random data per key
	crashKeys      = 1200      // 300 MiB in all
)

// crashValue is the value of key i of the large dataset: random bytes (an RDB of
// them does not compress) that the test can make again to check a restore.
func crashValue(i int) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(i))
	v := make([]byte, crashValueSize)
	_, _ = rand.NewChaCha8(seed).Read(v)
	return v
}

func crashKey(i int) string { return fmt.Sprintf("big:%05d", i) }

// fillLarge writes n keys of the large dataset through pipelines of 16 values (4 MiB).
func fillLarge(t *testing.T, rc *redis.Client, n int) {
	t.Helper()
	c := context.Background()
	pipe := rc.Pipeline()
	for i := 0; i < n; i++ {
		pipe.Set(c, crashKey(i), crashValue(i), 0)
		if i%16 == 15 || i == n-1 {
			if _, err := pipe.Exec(c); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkLarge asserts the node holds exactly the first n keys of the large
// dataset, every value intact.
func checkLarge(t *testing.T, rc *redis.Client, n int) {
	t.Helper()
	c := context.Background()
	if got, err := rc.DBSize(c).Result(); err != nil || got != int64(n) {
		t.Fatalf("the node holds %d keys (%v), want %d", got, err, n)
	}
	for i := 0; i < n; i += 16 {
		pipe := rc.Pipeline()
		var gets []*redis.StringCmd
		for j := i; j < min(i+16, n); j++ {
			gets = append(gets, pipe.Get(c, crashKey(j)))
		}
		if _, err := pipe.Exec(c); err != nil {
			t.Fatal(err)
		}
		for k, g := range gets {
			if !bytes.Equal([]byte(g.Val()), crashValue(i+k)) {
				t.Fatalf("key %s has %d bytes that are not the value written", crashKey(i+k), len(g.Val()))
			}
		}
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestSnapshotCrashKill9DuringLargeSnapshot kills hoard with SIGKILL while it
// takes a snapshot of 300 MiB, at several points of the snapshot, and checks that
// the restarted hoard ends it in one of the two allowed states: available with
// data that restores whole, or failed with no files left and an event that says
// why. Either way the cluster is available again and can be snapshotted.
func TestSnapshotCrashKill9DuringLargeSnapshot(t *testing.T) {
	start := time.Now()
	h := startHoard(t, fastReconcile, withArgs("--quota-manual-snapshots-per-day", "100"))
	c := h.client("us-east-1")
	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("big"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.m5.large"), NumCacheNodes: aws.Int32(1)})
	rc := redisClient(t, cl.CacheNodes[0])
	fillLarge(t, rc, crashKeys)
	t.Logf("filled %d MiB in %v", crashKeys*crashValueSize>>20, time.Since(start).Round(time.Millisecond))
	snapshots := filepath.Join(h.dataDir, "snapshots", testAccount, "us-east-1")

	// Each kill point waits for its moment of the snapshot (the staging directory
	// made; the RDB streaming in; the staging directory renamed into place) and
	// says what it saw. A snapshot that gets past the point before the test sees
	// it is killed at once anyway. The last point waits for the snapshot to be
	// reported available, so that a crash right after success is tested too.
	type killPoint struct {
		name string
		wait func(staging, final string) string
	}
	poll := func(done func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !done() && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}
	points := []killPoint{
		{"staging directory appears", func(staging, final string) string {
			poll(func() bool { return exists(staging) || exists(final) })
			return fmt.Sprintf("staging %v, final %v", exists(staging), exists(final))
		}},
		{"RDB a third streamed", func(staging, final string) string {
			tmp := filepath.Join(staging, "0001.rdb.tmp")
			poll(func() bool { return fileSize(tmp) > crashKeys*crashValueSize/3 || exists(final) })
			return fmt.Sprintf("%d bytes streamed, final %v", fileSize(tmp), exists(final))
		}},
		{"staging renamed into place", func(staging, final string) string {
			poll(func() bool { return exists(final) })
			return fmt.Sprintf("final %v, staging %v", exists(final), exists(staging))
		}},
		{"snapshot reported available", func(staging, final string) string {
			status := ""
			poll(func() bool {
				out, err := c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{SnapshotName: aws.String(filepath.Base(final))})
				if err == nil {
					status = aws.ToString(out.Snapshots[0].SnapshotStatus)
				}
				return status != "creating"
			})
			return "status " + status
		}},
	}
	outcomes := map[string]int{}
	for i, p := range points {
		name := fmt.Sprintf("crash-%d", i+1)
		staging, final := filepath.Join(snapshots, name+".staging"), filepath.Join(snapshots, name)
		began := time.Now()
		if _, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{CacheClusterId: aws.String("big"), SnapshotName: aws.String(name)}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		saw := p.wait(staging, final)
		h.kill9()
		killedAfter := time.Since(began)
		h.restart()
		c = h.client("us-east-1") // the new process listens on a new port

		// Within a few seconds the snapshot is available or failed, never creating.
		var status string
		eventually(t, 5*time.Second, func() string {
			out, err := c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{SnapshotName: aws.String(name)})
			if err != nil {
				return err.Error()
			}
			status = aws.ToString(out.Snapshots[0].SnapshotStatus)
			if status != "available" && status != "failed" {
				return fmt.Sprintf("%s is %s after the restart", name, status)
			}
			return ""
		})
		eventually(t, 5*time.Second, func() string {
			if s := aws.ToString(describeCluster(t, c, "big").CacheClusterStatus); s != "available" {
				return fmt.Sprintf("after the crash during %s the cluster is %s", name, s)
			}
			return ""
		})
		if exists(staging) {
			t.Fatalf("%s (%s): the staging directory %s is left", name, status, staging)
		}
		events := eventMessages(t, c, "big")
		switch status {
		case "failed":
			if exists(final) {
				entries, _ := os.ReadDir(final)
				t.Fatalf("%s failed but its directory is left with %d files", name, len(entries))
			}
			want := fmt.Sprintf("Snapshot failed for snapshot with ID '%s' of cache cluster with ID 'big': ", name)
			if !hasMessage(events, want) {
				t.Fatalf("no event explains the failure of %s; events: %q", name, events)
			}
			for _, m := range events {
				if strings.HasPrefix(m, want) {
					saw += "; event: " + strings.TrimPrefix(m, want)
					break
				}
			}
		case "available":
			if fileSize(filepath.Join(final, "0001.rdb")) < crashKeys*crashValueSize {
				t.Fatalf("%s is available but its RDB has %d bytes", name, fileSize(filepath.Join(final, "0001.rdb")))
			}
			if !hasMessage(events, fmt.Sprintf("Snapshot succeeded for snapshot with ID '%s'", name)) {
				t.Fatalf("no event for the snapshot %s; events: %q", name, events)
			}
			// hoard checks the RDB against its checksum when it stages a restore;
			// the restored node must hold every key, every value intact.
			rid := "restored-" + name
			restored := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String(rid), SnapshotName: aws.String(name)})
			checkLarge(t, redisClient(t, restored.CacheNodes[0]), crashKeys)
			if _, err := c.DeleteCacheCluster(ctx(t), &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String(rid)}); err != nil {
				t.Fatal(err)
			}
		}
		// The node was not restarted: it still holds the data.
		if n, err := rc.DBSize(ctx(t)).Result(); err != nil || n != crashKeys {
			t.Fatalf("after the crash the node holds %d keys (%v)", n, err)
		}
		outcomes[status]++
		t.Logf("kill point %q: killed %v after CreateSnapshot (%s); outcome %s (phase %v)",
			p.name, killedAfter.Round(time.Millisecond), saw, status, time.Since(began).Round(time.Millisecond))
	}

	// The last kill point waits for a snapshot taken after three crashes to
	// succeed: the node is not left in a state that stops the next snapshot.
	if outcomes["available"] == 0 {
		t.Fatal("no snapshot succeeded after the crashes")
	}
	left, _ := filepath.Glob(filepath.Join(snapshots, "*.staging"))
	if len(left) > 0 {
		t.Fatalf("staging directories left: %v", left)
	}
	var tally []string
	for _, s := range []string{"available", "failed"} {
		tally = append(tally, fmt.Sprintf("%s %d", s, outcomes[s]))
	}
	t.Logf("outcomes: %s; total %v", strings.Join(tally, ", "), time.Since(start).Round(time.Millisecond))
}

// TestSnapshotCopyCrashKill9LeavesNoFiles kills hoard while CopySnapshot copies a
// large snapshot's files, and checks that the restarted hoard ends with either a
// whole copy or none, with no staging directory left behind.
func TestSnapshotCopyCrashKill9LeavesNoFiles(t *testing.T) {
	const keys = 400 // 100 MiB
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("src"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.m5.large"), NumCacheNodes: aws.Int32(1)})
	fillLarge(t, redisClient(t, cl.CacheNodes[0]), keys)
	if _, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{CacheClusterId: aws.String("src"), SnapshotName: aws.String("base")}); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, c, "base")

	snapshots := filepath.Join(h.dataDir, "snapshots", testAccount, "us-east-1")
	staging, final := filepath.Join(snapshots, "copy-1.staging"), filepath.Join(snapshots, "copy-1")
	copyCtx, copyc := ctx(t), make(chan error, 1)
	go func() {
		_, err := c.CopySnapshot(copyCtx, &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("base"), TargetSnapshotName: aws.String("copy-1")})
		copyc <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !exists(staging) && !exists(final) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	saw := fmt.Sprintf("staging %v (%d bytes copied), final %v", exists(staging), fileSize(filepath.Join(staging, "0001.rdb")), exists(final))
	h.kill9()
	t.Logf("killed hoard during CopySnapshot: %s; the call answered %v", saw, <-copyc)
	h.restart()
	c = h.client("us-east-1")

	// The copy reserves its name with a creating record: after the crash it is
	// either whole (available, and restores) or failed with no files left.
	status := ""
	var err error
	eventually(t, 10*time.Second, func() string {
		out, derr := c.DescribeSnapshots(ctx(t), &elasticache.DescribeSnapshotsInput{SnapshotName: aws.String("copy-1")})
		if err = derr; derr != nil {
			wantAPIError(t, derr, "SnapshotNotFoundFault", 404)
			return ""
		}
		if status = aws.ToString(out.Snapshots[0].SnapshotStatus); status == "creating" {
			return "the interrupted copy is still creating"
		}
		return ""
	})
	switch {
	case err == nil && status == "available":
		restored := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("restored"), SnapshotName: aws.String("copy-1")})
		checkLarge(t, redisClient(t, restored.CacheNodes[0]), keys)
	case err == nil && status != "failed":
		t.Fatalf("after the crash the copy is %q", status)
	case err == nil:
		err = fmt.Errorf("the copy failed") // its files must be gone, as below
	}
	// Give the restarted hoard's reconciler a few passes to clean up.
	eventually(t, 5*time.Second, func() string {
		if exists(staging) {
			entries, _ := os.ReadDir(staging)
			return fmt.Sprintf("the staging directory of the interrupted copy is left with %d files", len(entries))
		}
		if err != nil && exists(final) {
			return "the interrupted copy, which has no record, left its directory"
		}
		return ""
	})
}
