package mcdump

// Dump and Load against real memcached processes.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixtureItem is an item and the TTL it was stored with, in seconds, or 0.
type fixtureItem struct {
	Item
	ttl int64
}

// fixture builds ~5,000 items covering the cases a dump must carry: empty and
// 500 KB values, binary keys and keys with characters metadump escapes,
// keys of every length class, all kinds of flags, TTLs none, short, long and
// beyond memcached's 30-day relative limit.
func fixture() []fixtureItem {
	rng := rand.New(rand.NewPCG(1, 2))
	src := rand.NewChaCha8([32]byte{1})
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		_, _ = src.Read(b)
		return b
	}
	keys := [][]byte{
		[]byte("key=with=equals"),
		[]byte("percent%41%zz%"),
		[]byte("plus+and&amp;?#/:;"),
		[]byte("tilde~dot.dash-under_"),
		[]byte("quote\"'`{}[]|\\^<>"),
		[]byte("utf8-ключ-キー-🔑"),
		[]byte(strings.Repeat("L", 250)),                     // longest plain key
		[]byte(strings.Repeat("é", 100)),                     // 200 bytes, not ASCII, too long for base64
		[]byte("\x00"),                                       // NUL: base64 only
		[]byte("\r\n"),                                       // line end
		[]byte("space in key"),                               // space
		[]byte(strings.Repeat("\x01\xff", 93)),               // longest base64 key, 186 bytes
		[]byte("tab\tand\x7fdel" + strings.Repeat("x", 190)), // control bytes, too long for base64: sent as is
		[]byte("END"),
		[]byte("EN"),
	}
	for range 40 {
		keys = append(keys, randBytes(1+rng.IntN(186)))
	}
	for i := len(keys); i < 5000; i++ {
		keys = append(keys, fmt.Appendf(nil, "k:%05d", i))
	}
	flagSet := []uint32{0, 1, 42, 1 << 31, 0xFFFFFFFF}
	items := make([]fixtureItem, 0, len(keys))
	for i, k := range keys {
		var size int
		switch {
		case i%997 == 0:
			size = 500 << 10
		case i%50 == 0:
			size = 0
		case i%10 == 0:
			size = 4096 + rng.IntN(60000)
		default:
			size = rng.IntN(1024)
		}
		var ttl int64
		switch i % 4 {
		case 1:
			ttl = 3600
		case 2:
			ttl = 45 * 24 * 3600 // beyond memcached's relative limit
		case 3:
			ttl = 100 + int64(rng.IntN(1000))
		}
		items = append(items, fixtureItem{
			Item: Item{Key: k, Value: randBytes(size), Flags: flagSet[i%len(flagSet)] ^ uint32(i%3)},
			ttl:  ttl,
		})
	}
	return items
}

// fill stores items in the memcached at addr.
func fill(t *testing.T, addr string, items []fixtureItem) {
	t.Helper()
	ttls := make(map[string]int64, len(items))
	plain := make([]Item, len(items))
	for i, it := range items {
		plain[i] = it.Item
		ttls[string(it.Key)] = it.ttl
	}
	now := time.Now().Unix()
	dialClient(t, addr).setAll(plain, func(it Item) int64 {
		ttl := ttls[string(it.Key)]
		if ttl > maxRelativeTTL {
			return now + ttl
		}
		return ttl
	})
}

// checkItems fetches every item from the memcached at addr and compares it.
// The items were stored with their TTLs at stored: a TTL must be within 2 s
// of what is left of it.
func checkItems(t *testing.T, addr string, items []fixtureItem, stored time.Time) {
	t.Helper()
	keys := make([][]byte, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	bad, i := 0, 0
	dialClient(t, addr).getAll(keys, func(key []byte, got getResult) {
		want := items[i]
		i++
		slack := int64(time.Since(stored)/time.Second) + 2
		switch {
		case !got.found:
			t.Errorf("key %q missing", key)
		case !bytes.Equal(got.value, want.Value):
			t.Errorf("key %q: value of %d bytes differs (want %d bytes)", key, len(got.value), len(want.Value))
		case got.flags != want.Flags:
			t.Errorf("key %q: flags %d, want %d", key, got.flags, want.Flags)
		case want.ttl == 0 && got.ttl != -1:
			t.Errorf("key %q: TTL %d, want none", key, got.ttl)
		// memcached's clock ticks once a second, behind the wall clock, so a
		// TTL over 30 days (stored as an absolute time) may read back 1 s long.
		case want.ttl != 0 && (got.ttl > want.ttl+1 || got.ttl < want.ttl-slack):
			t.Errorf("key %q: TTL %d, want %d (-%d s)", key, got.ttl, want.ttl, slack)
		default:
			return
		}
		if bad++; bad > 20 {
			t.Fatal("too many differences")
		}
	})
}

func TestDumpLoadRoundTrip(t *testing.T) {
	items := fixture()
	src := startMemcached(t)
	stored := time.Now()
	fill(t, src, items)

	path := filepath.Join(t.TempDir(), "cache.mcdump")
	st, err := DumpFile(t.Context(), src, path)
	if err != nil {
		t.Fatal(err)
	}
	var wantBytes int64
	for _, it := range items {
		wantBytes += int64(len(it.Value))
	}
	if st.Items != int64(len(items)) || st.Bytes != wantBytes || st.Skipped != 0 || st.Unsupported != 0 {
		t.Fatalf("Dump stats %+v, want %d items, %d bytes", st, len(items), wantBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	vst, err := Verify(f)
	f.Close()
	if err != nil || vst.Items != st.Items || vst.Bytes != st.Bytes {
		t.Fatalf("Verify = %+v, %v; want %+v", vst, err, st)
	}

	dst := startMemcached(t)
	lst, err := LoadFile(t.Context(), dst, path)
	if err != nil {
		t.Fatal(err)
	}
	if lst.Items != st.Items || lst.Bytes != st.Bytes || lst.Skipped != 0 {
		t.Fatalf("Load stats %+v, want %+v", lst, st)
	}
	checkItems(t, dst, items, stored)
	if n := dialClient(t, dst).stat("curr_items"); n != int64(len(items)) {
		t.Errorf("target holds %d items, want %d", n, len(items))
	}
	// Dumping leaves the source as it was.
	checkItems(t, src, items, stored)
}

// An item whose key only the binary protocol can store is counted, not
// lost silently; the others still make it.
func TestDumpUnsupportedKey(t *testing.T) {
	src := startMemcached(t)
	c := dialClient(t, src)
	c.binarySet([]byte(strings.Repeat("sp ace", 40)), []byte("v1"), 1) // 240 bytes with spaces
	c.binarySet([]byte("nul\x00in the middle"), []byte("v2"), 2)       // base64 works
	c.binarySet([]byte(strings.Repeat("\x01", 250)), []byte("v3"), 3)  // control bytes, sent as is
	data, st := dumpBytes(t, src)
	if st.Items != 2 || st.Unsupported != 1 {
		t.Fatalf("Dump stats %+v, want 2 items and 1 unsupported", st)
	}
	dst := startMemcached(t)
	if _, err := Load(t.Context(), dst, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	checkItems(t, dst, []fixtureItem{
		{Item: Item{Key: []byte("nul\x00in the middle"), Value: []byte("v2"), Flags: 2}},
		{Item: Item{Key: []byte(strings.Repeat("\x01", 250)), Value: []byte("v3"), Flags: 3}},
	}, time.Now())
}

// Load ages TTLs by the dump's age and skips what has run out.
func TestLoadAgesTTLs(t *testing.T) {
	created := time.Now().Add(-100 * time.Second)
	var buf bytes.Buffer
	w := NewWriter(&buf, created)
	add := func(key string, ttl time.Duration) {
		if err := w.Add(Item{Key: []byte(key), Value: []byte("v-" + key), Flags: 7, TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	add("expired", 50*time.Second)
	add("just-expired", 100*time.Second)
	add("aged", 500*time.Second)
	add("forever", 0)
	add("long", 40*24*time.Hour)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dst := startMemcached(t)
	st, err := Load(t.Context(), dst, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Items != 3 || st.Skipped != 2 {
		t.Fatalf("Load stats %+v, want 3 items and 2 skipped", st)
	}
	c := dialClient(t, dst)
	for _, k := range []string{"expired", "just-expired"} {
		if _, _, _, ok := c.get([]byte(k)); ok {
			t.Errorf("expired item %q was loaded", k)
		}
	}
	for k, want := range map[string]int64{"aged": 400, "forever": -1, "long": 40*24*3600 - 100} {
		v, flags, ttl, ok := c.get([]byte(k))
		if !ok || string(v) != "v-"+k || flags != 7 {
			t.Errorf("%q: got %q flags %d found %v", k, v, flags, ok)
		}
		if ttl > want || ttl < want-3 {
			t.Errorf("%q: TTL %d, want %d (-3 s)", k, ttl, want)
		}
	}
}

// A damaged dump file is refused whole by LoadFile, and by Verify.
func TestLoadFileRejectsDamage(t *testing.T) {
	src := startMemcached(t)
	items := fixture()[1:300] // not item 0, of 500 KB: 30 verifications of it are slow under -race
	fill(t, src, items)
	good, _ := dumpBytes(t, src)
	dst := startMemcached(t)
	dc := dialClient(t, dst)
	dir := t.TempDir()

	try := func(name string, data []byte, wantCorrupt bool) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(bytes.NewReader(data)); err == nil || wantCorrupt && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Verify error %v, want ErrCorrupt", name, err)
		}
		st, err := LoadFile(t.Context(), dst, path)
		if err == nil || st.Items != 0 {
			t.Errorf("%s: LoadFile = %+v, %v; want an error and nothing loaded", name, st, err)
		}
		if n := dc.stat("curr_items"); n != 0 {
			t.Fatalf("%s: target holds %d items after a refused load", name, n)
		}
	}
	for _, n := range []int{0, 5, headerLen, headerLen + 1, len(good) / 2, len(good) - trailerLen, len(good) - 1} {
		try(fmt.Sprintf("truncated-%d", n), good[:n], true)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	positions := []int{0, 7, 8, 9, 11, 12, headerLen, headerLen + 2, len(good) - 13, len(good) - 5, len(good) - 1}
	for range 8 {
		positions = append(positions, rng.IntN(len(good)))
	}
	for _, pos := range positions {
		bad := bytes.Clone(good)
		bad[pos] ^= 1 << rng.IntN(8)
		try(fmt.Sprintf("flipped-%d", pos), bad, pos != 8 && pos != 9) // 8-9: version
	}
	try("trailing-garbage", append(bytes.Clone(good), 0), true)

	// Load on a stream cannot take back what it sent, but still reports it.
	bad := bytes.Clone(good)
	bad[len(bad)-2] ^= 0x10
	if _, err := Load(t.Context(), dst, bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Load of a damaged stream: %v, want ErrCorrupt", err)
	}
}

// Keys listed but gone by the time they are fetched are skipped.
func TestFetchSkipsVanished(t *testing.T) {
	addr := startMemcached(t)
	dialClient(t, addr).setAll([]Item{{Key: []byte("here"), Value: []byte("v")}}, func(Item) int64 { return 0 })
	conn, stop, err := dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stop(); conn.Close() }()
	var list bytes.Buffer
	for _, k := range []string{"gone", "here", "also gone"} {
		list.WriteByte(byte(len(k)))
		list.WriteString(k)
	}
	keys := bufio.NewReader(&list)
	pending := make(chan []byte, 2)
	errc := make(chan error, 1)
	go func() { defer close(pending); errc <- sendGets(t.Context(), conn, keys, pending) }()
	var buf bytes.Buffer
	w := NewWriter(&buf, time.Now())
	st, err := readGets(conn, pending, w)
	if err != nil || <-errc != nil {
		t.Fatal(err)
	}
	if st.Items != 1 || st.Skipped != 2 {
		t.Fatalf("stats %+v, want 1 item and 2 skipped", st)
	}
}

func TestDumpCancel(t *testing.T) {
	src := startMemcached(t)
	items := make([]Item, 2000)
	for i := range items {
		items[i] = Item{Key: fmt.Appendf(nil, "c%d", i), Value: bytes.Repeat([]byte{'x'}, 1000)}
	}
	dialClient(t, src).setAll(items, func(Item) int64 { return 0 })

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Dump(ctx, src, &countingWriter{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dump with a cancelled context: %v", err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	start := time.Now()
	if _, err := Dump(ctx, src, cancelWriter{cancel}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dump cancelled midway: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled Dump took %v", d)
	}
	if _, err := Dump(t.Context(), src, &failWriter{n: 1000}); !errors.Is(err, errBoom) {
		t.Fatalf("Dump to a failing writer: %v", err)
	}
	// The server is still usable: the crawler was not left busy.
	if _, st := dumpBytes(t, src); st.Items != int64(len(items)) {
		t.Fatalf("Dump after cancellations: %+v", st)
	}
}

// A refused item fails Load with memcached's words and the batch.
func TestLoadReportsRefusal(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, time.Now())
	_ = w.Add(Item{Key: []byte("small"), Value: []byte("ok")})
	_ = w.Add(Item{Key: []byte("huge"), Value: bytes.Repeat([]byte("mn\r\n"), 300<<10)}) // 1.2 MB
	_ = w.Close()
	dst := startMemcached(t) // -I 1m
	_, err := Load(t.Context(), dst, &buf)
	if err == nil || !strings.Contains(err.Error(), "too large") || !strings.Contains(err.Error(), "items 1 to 2") {
		t.Fatalf("Load of an oversized item: %v", err)
	}
	// memcached swallowed the value rather than run it as commands.
	if v, _, _, ok := dialClient(t, dst).get([]byte("small")); !ok || string(v) != "ok" {
		t.Fatalf("small item: %q %v", v, ok)
	}
}

// A failed DumpFile leaves nothing behind, and LoadFile reports a missing
// file.
func TestDumpFileFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.mcdump")
	if _, err := DumpFile(t.Context(), "127.0.0.1:1", path); err == nil {
		t.Fatal("DumpFile of a closed port succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("DumpFile left %v behind", ents)
	}
	if _, err := LoadFile(t.Context(), "127.0.0.1:1", path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile of a missing file: %v", err)
	}
}

// Many keys: the metadump outruns the fetches by far more than socket
// buffers hold. (With the fetches fed straight from a stalled metadump,
// memcached 1.6.18 deadlocks: its crawler waits for the lister while holding
// a hash-table lock an mg waits for.)
func TestDumpManyKeys(t *testing.T) {
	const n = 50_000
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{Key: fmt.Appendf(nil, "many:%d", i), Value: fmt.Appendf(nil, "%d", i)}
	}
	src := startMemcached(t)
	dialClient(t, src).setAll(items, func(Item) int64 { return 0 })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := Dump(ctx, src, &countingWriter{})
	if err != nil || st.Items != n {
		t.Fatalf("Dump = %+v, %v; want %d items", st, err, n)
	}
}
