package mcdump

// Dump and Load side by side with a plain client loop, one round trip per
// key, over one connection:
//
//	go test -run XXX -bench . -benchtime 5x ./internal/mcdump/

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

const (
	benchItems    = 100_000
	benchValueLen = 1024
)

func benchData() []Item {
	src := rand.NewChaCha8([32]byte{5})
	items := make([]Item, benchItems)
	for i := range items {
		v := make([]byte, benchValueLen)
		_, _ = src.Read(v)
		items[i] = Item{Key: fmt.Appendf(nil, "bench:%06d", i), Value: v, Flags: uint32(i)}
	}
	return items
}

// reportItems adds items/s to b's results, next to the MB/s of SetBytes.
func reportItems(b *testing.B) {
	b.ReportMetric(float64(benchItems)*float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkRead(b *testing.B) {
	items := benchData()
	src := startMemcached(b, "-m", "512")
	dialClient(b, src).setAll(items, func(Item) int64 { return 0 })

	b.Run("mcdump.Dump", func(b *testing.B) {
		b.SetBytes(benchItems * benchValueLen)
		for b.Loop() {
			st, err := Dump(b.Context(), src, &countingWriter{})
			if err != nil || st.Items != benchItems {
				b.Fatalf("Dump = %+v, %v", st, err)
			}
		}
		reportItems(b)
	})
	b.Run("get-loop", func(b *testing.B) {
		c := dialClient(b, src)
		b.SetBytes(benchItems * benchValueLen)
		for b.Loop() {
			_ = c.conn.SetDeadline(time.Now().Add(time.Minute))
			for _, it := range items {
				c.classicGet(it.Key)
			}
		}
		reportItems(b)
	})
}

func BenchmarkWrite(b *testing.B) {
	items := benchData()
	var buf bytes.Buffer
	w := NewWriter(&buf, time.Now())
	for _, it := range items {
		if err := w.Add(it); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	dst := startMemcached(b, "-m", "512")

	b.Run("mcdump.Load", func(b *testing.B) {
		b.SetBytes(benchItems * benchValueLen)
		for b.Loop() {
			st, err := Load(b.Context(), dst, bytes.NewReader(data))
			if err != nil || st.Items != benchItems {
				b.Fatalf("Load = %+v, %v", st, err)
			}
		}
		reportItems(b)
	})
	b.Run("set-loop", func(b *testing.B) {
		c := dialClient(b, dst)
		b.SetBytes(benchItems * benchValueLen)
		for b.Loop() {
			_ = c.conn.SetDeadline(time.Now().Add(time.Minute))
			for _, it := range items {
				c.classicSet(it)
			}
		}
		reportItems(b)
	})
}

// classicGet is one `get` round trip, the way a plain client reads a key.
func (c *client) classicGet(key []byte) []byte {
	c.bw.WriteString("get ")
	c.bw.Write(key)
	c.bw.WriteString("\r\n")
	if err := c.bw.Flush(); err != nil {
		c.tb.Fatal(err)
	}
	l, err := readLine(c.br)
	f := bytes.Fields(l)
	if err != nil || len(f) != 4 || string(f[0]) != "VALUE" {
		c.tb.Fatalf("get %s: %q, %v", key, l, err)
	}
	size, _ := parseUint(f[3])
	v := make([]byte, size+2)
	if _, err := io.ReadFull(c.br, v); err != nil {
		c.tb.Fatal(err)
	}
	if l := c.line(); l != "END" {
		c.tb.Fatalf("get %s: %q", key, l)
	}
	return v[:size]
}

// classicSet is one `set` round trip, the way a plain client writes a key.
func (c *client) classicSet(it Item) {
	c.bw.WriteString("set ")
	c.bw.Write(it.Key)
	c.bw.Write(fmt.Appendf(c.scratch[:0], " %d 0 %d\r\n", it.Flags, len(it.Value)))
	c.bw.Write(it.Value)
	c.bw.WriteString("\r\n")
	if err := c.bw.Flush(); err != nil {
		c.tb.Fatal(err)
	}
	if l := c.line(); l != "STORED" {
		c.tb.Fatalf("set %s: %q", it.Key, l)
	}
}
