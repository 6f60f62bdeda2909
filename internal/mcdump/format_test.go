package mcdump

// The file format alone, without memcached.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"time"
)

var created = time.Unix(1_700_000_000, 0)

func sampleItems() []Item {
	return []Item{
		{Key: []byte("a"), Value: nil},
		{Key: []byte("plain"), Value: []byte("value"), Flags: 1, TTL: time.Hour},
		{Key: []byte("\x00\xff\r\n bin"), Value: []byte{0, 1, 2, 255}, Flags: 0xFFFFFFFF, TTL: time.Second},
		{Key: bytes.Repeat([]byte("k"), MaxKeyLen), Value: bytes.Repeat([]byte("v"), 3<<20+17), TTL: MaxTTL},
	}
}

func encode(t testing.TB, items []Item) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, created)
	for _, it := range items {
		if err := w.Add(it); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(data []byte) ([]Item, time.Time, error) {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, time.Time{}, err
	}
	var items []Item
	for {
		it, err := r.Next()
		if err == io.EOF {
			return items, r.Created(), nil
		}
		if err != nil {
			return items, r.Created(), err
		}
		items = append(items, it)
	}
}

func TestWriterReaderRoundTrip(t *testing.T) {
	want := sampleItems()
	data := encode(t, want)
	got, c, err := readAll(data)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Equal(created) {
		t.Errorf("Created = %v, want %v", c, created)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d items, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || g.Flags != w.Flags || g.TTL != w.TTL {
			t.Errorf("item %d: got key %q (%d-byte value, flags %d, TTL %v), want key %q (%d, %d, %v)",
				i, g.Key, len(g.Value), g.Flags, g.TTL, w.Key, len(w.Value), w.Flags, w.TTL)
		}
	}
	st, err := Verify(bytes.NewReader(data))
	if err != nil || st.Items != 4 || st.Bytes != 5+4+3<<20+17 {
		t.Errorf("Verify = %+v, %v", st, err)
	}
}

// The layout is the one doc.go documents, byte for byte.
func TestLayout(t *testing.T) {
	data := encode(t, []Item{{Key: []byte("k"), Value: []byte("vv"), Flags: 3, TTL: 1500 * time.Millisecond}})
	want := []byte("HOARDMC\n\x00\x01\x00\x00")
	want = binary.BigEndian.AppendUint64(want, 1_700_000_000)
	want = append(want, 'I', 0, 1, 'k', 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2, 'v', 'v') // TTL rounded up to 2 s
	want = append(want, 'E', 0, 0, 0, 0, 0, 0, 0, 1)
	want = binary.BigEndian.AppendUint32(want, crc32.Checksum(want, crc32.MakeTable(crc32.Castagnoli)))
	if !bytes.Equal(data, want) {
		t.Fatalf("encoding\n got %x\nwant %x", data, want)
	}
	if empty := encode(t, nil); len(empty) != headerLen+trailerLen {
		t.Errorf("empty dump has %d bytes", len(empty))
	}
}

func TestWriterRejects(t *testing.T) {
	w := NewWriter(io.Discard, created)
	for _, it := range []Item{
		{Key: nil},
		{Key: bytes.Repeat([]byte("k"), MaxKeyLen+1)},
		{Key: []byte("k"), TTL: -time.Second},
		{Key: []byte("k"), TTL: MaxTTL + time.Second},
	} {
		if err := w.Add(it); err == nil {
			t.Errorf("Add(key of %d bytes, TTL %v) succeeded", len(it.Key), it.TTL)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(Item{Key: []byte("k")}); err == nil {
		t.Error("Add after Close succeeded")
	}
	fw := NewWriter(&failWriter{n: 10}, created)
	if err := fw.Close(); !errors.Is(err, errBoom) {
		t.Errorf("Close on a failing writer: %v", err)
	}
}

func TestReaderRejects(t *testing.T) {
	good := encode(t, sampleItems()[:3])
	withCRC := func(b []byte) []byte { // a fixed-up checksum, to reach the other checks
		b = bytes.Clone(b[:len(b)-4])
		return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	}
	countOff := len(good) - 12
	wrongCount := bytes.Clone(good)
	wrongCount[countOff+7]++
	badKeyLen := bytes.Clone(good)
	badKeyLen[headerLen+1], badKeyLen[headerLen+2] = 0, 0
	hugeValue := append(bytes.Clone(good[:headerLen]), 'I', 0, 1, 'k', 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff)
	claimsGiB := append(bytes.Clone(good[:headerLen]), 'I', 0, 1, 'k', 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 'x')
	v2 := bytes.Clone(good)
	v2[9] = 2
	cases := map[string]struct {
		data []byte
		want error
	}{
		"empty":          {nil, ErrCorrupt},
		"not a dump":     {[]byte("VALUE k 0 1\r\nx\r\nEND\r\n"), ErrCorrupt},
		"version 2":      {v2, ErrVersion},
		"reserved":       {withCRC(append(append(bytes.Clone(good[:10]), 0, 1), good[12:]...)), ErrCorrupt},
		"bad tag":        {withCRC(append(append(bytes.Clone(good[:headerLen]), 'X'), good[headerLen+1:]...)), ErrCorrupt},
		"key length 0":   {withCRC(badKeyLen), ErrCorrupt},
		"wrong count":    {withCRC(wrongCount), ErrCorrupt},
		"wrong checksum": {append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1), ErrCorrupt},
		"trailing data":  {append(bytes.Clone(good), good...), ErrCorrupt},
		"huge value":     {hugeValue, ErrCorrupt},
		"claims 1 GiB":   {claimsGiB, ErrCorrupt},
	}
	for name, c := range cases {
		if _, err := Verify(bytes.NewReader(c.data)); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify error %v, want %v", name, err, c.want)
		}
	}
	// A length that claims a GiB the stream does not hold costs no GiB.
	allocs := testing.AllocsPerRun(5, func() { _, _ = Verify(bytes.NewReader(claimsGiB)) })
	if allocs > 20 {
		t.Errorf("%v allocations for a short stream", allocs)
	}
}

// Every truncation and every single-byte change of a dump is detected.
func TestReaderDetectsEveryDamage(t *testing.T) {
	good := encode(t, sampleItems()[:3])
	for n := range len(good) {
		if _, err := Verify(bytes.NewReader(good[:n])); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d bytes: %v", n, err)
		}
	}
	for pos := range len(good) {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(good)
			bad[pos] ^= x
			if _, err := Verify(bytes.NewReader(bad)); err == nil {
				t.Errorf("byte %d ^ %#x went unnoticed", pos, x)
			}
		}
	}
}

// Errors are sticky, and io.EOF repeats after the end.
func TestReaderSticky(t *testing.T) {
	r, err := NewReader(bytes.NewReader(encode(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("Next = %v, want io.EOF", err)
		}
	}
	good := encode(t, sampleItems()[:2])
	r, _ = NewReader(bytes.NewReader(good[:len(good)-1]))
	_, _ = r.Next()
	_, _ = r.Next()
	_, err1 := r.Next()
	_, err2 := r.Next()
	if !errors.Is(err1, ErrCorrupt) || err1 != err2 {
		t.Fatalf("Next after damage: %v then %v", err1, err2)
	}
}

// A read error that is not the end of the stream is passed on, not called
// corruption.
func TestReaderIOError(t *testing.T) {
	data := encode(t, sampleItems()[:2])
	_, err := Verify(io.MultiReader(bytes.NewReader(data[:30]), errReader{}))
	if !errors.Is(err, errBoom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify over a failing reader: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBoom }

func FuzzReader(f *testing.F) {
	f.Add(encode(f, nil))
	f.Add(encode(f, sampleItems()[:3]))
	good := encode(f, sampleItems()[:2])
	f.Add(good[:len(good)-3])
	f.Add([]byte(Magic))
	f.Add([]byte(strings.Repeat("HOARDMC\n", 4)))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, c, err := readAll(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrVersion: %v", err)
			}
			return
		}
		// The encoding is canonical: an intact dump re-encodes to itself.
		var buf bytes.Buffer
		w := NewWriter(&buf, c)
		for _, it := range items {
			if err := w.Add(it); err != nil {
				t.Fatalf("re-adding %q: %v", it.Key, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("intact dump re-encodes differently:\n in %x\nout %x", data, buf.Bytes())
		}
	})
}
