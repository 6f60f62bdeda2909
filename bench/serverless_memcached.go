package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The memcached side of the serverless scenario: the dataset, the plain client
// loops that are its baselines, and a minimal text-protocol client.

// mcData is what the memcached fill wrote: items 0..n-1 (mcKey, mcFlags,
// mcTTL) and the CRC-32 of each value, to check a copy without keeping the data.
type mcData struct {
	n     int
	bytes int64
	crc   []uint32
}

func mcKey(i int) string   { return fmt.Sprintf("item:%08d", i) }
func mcFlags(i int) uint32 { return uint32(i) * 2654435761 }

// mcTTL: one item in four never expires; the others live 2-3 hours, longer than
// any run, so that no item expires between the fill and a check.
func mcTTL(i int) int {
	if i%4 == 0 {
		return 0
	}
	return 7200 + i%3600
}

// mcFill writes -mc-value-kb random values (ChaCha8, fixed seed) until total
// bytes are written, as one pipeline of `set ... noreply` over one connection.
// With noreply memcached sends nothing back, not even a refusal, so check (by
// the caller) is what proves every item landed; the version request at the end
// waits until memcached has read everything before it.
func mcFill(ctx context.Context, addr string, total int64) (*mcData, error) {
	c, err := dialMC(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	d := &mcData{}
	src := rand.NewChaCha8([32]byte{'m', 'c'})
	val := make([]byte, *mcValueKB<<10)
	for d.bytes < total && ctx.Err() == nil {
		_, _ = src.Read(val)
		d.crc = append(d.crc, crc32.ChecksumIEEE(val))
		fmt.Fprintf(c.w, "set %s %d %d %d noreply\r\n", mcKey(d.n), mcFlags(d.n), mcTTL(d.n), len(val))
		_, _ = c.w.Write(val)
		_, _ = c.w.WriteString("\r\n")
		d.n++
		d.bytes += int64(len(val))
	}
	_, _ = c.w.WriteString("version\r\n")
	if err := c.w.Flush(); err != nil { // bufio keeps the first write error
		return nil, err
	}
	if line, err := c.line(); err != nil || !strings.HasPrefix(line, "VERSION ") {
		return nil, fmt.Errorf("memcached answered %q (%v)", line, err)
	}
	return d, ctx.Err()
}

// mcClientDump is the memcached snapshot baseline, the plain client loop: for
// every key of the fill, one mg round trip for the value, flags and remaining
// TTL (what hoard's dump keeps; a plain get would lose the TTL), written to a
// file as "key flags ttl size\n" and the value. The file is synced, as hoard's is.
func (e *slEnv) mcClientDump(out string) error {
	c, err := dialMC(e.mcAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range e.mc.n {
		val, flags, ttl, err := c.metaGet(mcKey(i))
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s %d %d %d\n", mcKey(i), flags, ttl, len(val))
		_, _ = w.Write(val)
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// mcClientLoad is the memcached restore baseline's loop: one set round trip per
// item of an mcClientDump file (a remaining TTL of -1 is none, 0 to set). It
// returns the number of items stored.
func mcClientLoad(addr, file string) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	c, err := dialMC(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	for n := 0; ; n++ {
		var key string
		var flags uint32
		var ttl, size int
		if _, err := fmt.Fscanf(r, "%s %d %d %d\n", &key, &flags, &ttl, &size); err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, fmt.Errorf("%s, record %d: %w", file, n+1, err)
		}
		val := make([]byte, size+1)
		if _, err := io.ReadFull(r, val); err != nil {
			return n, fmt.Errorf("%s, record %d: %w", file, n+1, err)
		}
		fmt.Fprintf(c.w, "set %s %d %d %d\r\n", key, flags, max(ttl, 0), size)
		_, _ = c.w.Write(val[:size])
		_, _ = c.w.WriteString("\r\n")
		if err := c.w.Flush(); err != nil {
			return n, err
		}
		if line, err := c.line(); err != nil || line != "STORED" {
			return n, fmt.Errorf("set %s: %q (%v)", key, line, err)
		}
	}
}

// check checks that the memcached at addr holds exactly the fill's number of
// items (stats curr_items) and every 16th item whole: its flags, its value's
// CRC-32, and no TTL if it was stored without one, else one no longer than it was.
func (d *mcData) check(addr string) error {
	c, err := dialMC(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.stats()
	if err != nil {
		return err
	}
	if st["curr_items"] != strconv.Itoa(d.n) {
		return fmt.Errorf("memcached %s holds %s items, want %d", addr, st["curr_items"], d.n)
	}
	for i := 0; i < d.n; i += 16 {
		val, flags, ttl, err := c.metaGet(mcKey(i))
		switch {
		case err != nil:
			return err
		case flags != mcFlags(i) || crc32.ChecksumIEEE(val) != d.crc[i]:
			return fmt.Errorf("memcached %s: item %s is not the one written (flags %d, want %d)", addr, mcKey(i), flags, mcFlags(i))
		case (mcTTL(i) == 0) != (ttl == -1) || ttl > mcTTL(i):
			return fmt.Errorf("memcached %s: item %s has TTL %d, written with %d", addr, mcKey(i), ttl, mcTTL(i))
		}
	}
	return nil
}

// mcConn is a minimal memcached text-protocol client.
type mcConn struct {
	net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

// dialMC connects to a memcached, retrying for 5s while it is starting.
func dialMC(addr string) (*mcConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	for t0 := time.Now(); err != nil && time.Since(t0) < 5*time.Second; {
		time.Sleep(time.Millisecond)
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(slBudget)) // a stuck server fails the run instead of hanging it
	return &mcConn{Conn: c, r: bufio.NewReaderSize(c, 256<<10), w: bufio.NewWriterSize(c, 256<<10)}, nil
}

func (c *mcConn) line() (string, error) {
	s, err := c.r.ReadString('\n')
	return strings.TrimSuffix(s, "\r\n"), err
}

// metaGet is one `mg <key> f t v` round trip: the value, client flags and
// remaining TTL in seconds (-1: none). A miss is an error.
func (c *mcConn) metaGet(key string) (val []byte, flags uint32, ttl int, err error) {
	fmt.Fprintf(c.w, "mg %s f t v\r\n", key)
	if err := c.w.Flush(); err != nil {
		return nil, 0, 0, err
	}
	// memcached returns the flags in the order asked for: size, f, t.
	line, err := c.line()
	var size int
	if _, serr := fmt.Sscanf(line, "VA %d f%d t%d", &size, &flags, &ttl); err != nil || serr != nil {
		return nil, 0, 0, fmt.Errorf("mg %s: %q (%v)", key, line, errors.Join(err, serr))
	}
	val = make([]byte, size+2)
	if _, err := io.ReadFull(c.r, val); err != nil {
		return nil, 0, 0, fmt.Errorf("mg %s: %w", key, err)
	}
	return val[:len(val)-2], flags, ttl, nil
}

// stats is a memcached's general statistics.
func (c *mcConn) stats() (map[string]string, error) {
	_, _ = c.w.WriteString("stats\r\n")
	err := c.w.Flush()
	st := map[string]string{}
	for line := ""; err == nil && line != "END"; line, err = c.line() {
		if f := strings.Fields(line); len(f) == 3 {
			st[f[1]] = f[2]
		}
	}
	return st, err
}
