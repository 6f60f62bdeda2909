package mcdump

// Test helpers: real memcached processes and a small client to fill and
// inspect them.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memcachedBin is the memcached the tests run; CI installs it.
const memcachedBin = "/usr/bin/memcached"

// startMemcached starts a memcached on a free port of 127.0.0.1 for the
// test, stops it when the test ends, and returns its address. extra are
// more command-line options.
func startMemcached(tb testing.TB, extra ...string) string {
	tb.Helper()
	if _, err := os.Stat(memcachedBin); err != nil {
		tb.Fatalf("these tests need memcached at %s (apt-get install memcached): %v", memcachedBin, err)
	}
	dir := tb.TempDir()
	for attempt := 1; ; attempt++ {
		port := freePort(tb)
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "128"}
		if os.Geteuid() == 0 {
			// memcached refuses to run as root without -u.
			name := "root"
			if u, err := user.LookupId("0"); err == nil {
				name = u.Username
			}
			args = append(args, "-u", name)
		}
		args = append(args, extra...)
		logPath := filepath.Join(dir, fmt.Sprintf("memcached-%d.log", attempt))
		logf, err := os.Create(logPath)
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(memcachedBin, args...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			tb.Fatalf("starting memcached: %v", err)
		}
		logf.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if waitListening(addr, exited) {
			tb.Cleanup(func() {
				_ = cmd.Process.Kill() // only the process this test started
				<-exited
			})
			return addr
		}
		_ = cmd.Process.Kill()
		<-exited
		out, _ := os.ReadFile(logPath)
		if attempt == 3 {
			tb.Fatalf("memcached %s did not start: %s", strings.Join(args, " "), out)
		}
		// Most likely someone took the port in between: try another.
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits up to 5 s for addr to accept connections; it gives up
// early if the process exits.
func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// client is a minimal memcached client for the tests; every call is one
// round trip unless it says otherwise.
type client struct {
	tb      testing.TB
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	scratch [64]byte
}

func dialClient(tb testing.TB, addr string) *client {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	return &client{tb: tb, conn: conn, br: bufio.NewReaderSize(conn, 1<<20), bw: bufio.NewWriterSize(conn, 1<<20)}
}

func (c *client) line() string {
	c.tb.Helper()
	l, err := readLine(c.br)
	if err != nil {
		c.tb.Fatalf("reading from memcached: %v", err)
	}
	return string(l)
}

// keyArgs is key as a meta command takes it: the token and, if it is
// base64, the b flag.
func (c *client) keyArgs(key []byte) string {
	c.tb.Helper()
	tok, b, ok := keyToken(nil, key)
	if !ok {
		c.tb.Fatalf("key %q cannot be sent", key)
	}
	if b {
		return string(tok) + " b"
	}
	return string(tok)
}

// writeSet buffers an ms for it; exp is the T token, 0 for none. With q,
// memcached answers only failures.
func (c *client) writeSet(key, value []byte, flags uint32, exp int64, q bool) {
	tok, b, _ := keyToken(nil, key)
	fmt.Fprintf(c.bw, "ms %s %d F%d T%d", tok, len(value), flags, exp)
	if b {
		c.bw.WriteString(" b")
	}
	if q {
		c.bw.WriteString(" q")
	}
	c.bw.WriteString("\r\n")
	c.bw.Write(value)
	c.bw.WriteString("\r\n")
}

// setAll stores items, pipelined and quiet, ended by an mn. A goroutine
// sends while this one reads, so that failures cannot fill the socket. exp
// gives each item's T token.
func (c *client) setAll(items []Item, exp func(Item) int64) {
	c.tb.Helper()
	errc := make(chan error, 1)
	go func() {
		for _, it := range items {
			c.writeSet(it.Key, it.Value, it.Flags, exp(it), true)
		}
		c.bw.WriteString("mn\r\n")
		errc <- c.bw.Flush()
	}()
	if l := c.line(); l != "MN" {
		c.tb.Fatalf("storing %d items: %s", len(items), l)
	}
	if err := <-errc; err != nil {
		c.tb.Fatal(err)
	}
}

// getResult is an item read back; ttl is -1 for none.
type getResult struct {
	value []byte
	flags uint32
	ttl   int64
	found bool
}

func (c *client) writeGet(key []byte) {
	fmt.Fprintf(c.bw, "mg %s v f t\r\n", c.keyArgs(key))
}

func (c *client) readGet(key []byte) getResult {
	c.tb.Helper()
	l := c.line()
	if l == "EN" {
		return getResult{}
	}
	var size int
	r := getResult{found: true}
	if _, err := fmt.Sscanf(l, "VA %d f%d t%d", &size, &r.flags, &r.ttl); err != nil {
		c.tb.Fatalf("mg %q: %q: %v", key, l, err)
	}
	r.value = make([]byte, size+2)
	if _, err := io.ReadFull(c.br, r.value); err != nil {
		c.tb.Fatal(err)
	}
	r.value = r.value[:size]
	return r
}

// get fetches key with mg; found is false on a miss. ttl is -1 for none.
func (c *client) get(key []byte) (value []byte, flags uint32, ttl int64, found bool) {
	c.tb.Helper()
	c.writeGet(key)
	if err := c.bw.Flush(); err != nil {
		c.tb.Fatal(err)
	}
	r := c.readGet(key)
	return r.value, r.flags, r.ttl, r.found
}

// getAll fetches keys, pipelined, and calls f with each result in order.
func (c *client) getAll(keys [][]byte, f func(key []byte, r getResult)) {
	c.tb.Helper()
	for _, k := range keys {
		c.keyArgs(k) // fails the test here, not in the goroutine
	}
	errc := make(chan error, 1)
	go func() {
		for _, k := range keys {
			c.writeGet(k)
		}
		errc <- c.bw.Flush()
	}()
	for _, k := range keys {
		f(k, c.readGet(k))
	}
	if err := <-errc; err != nil {
		c.tb.Fatal(err)
	}
}

// stat returns one of memcached's general stats.
func (c *client) stat(name string) int64 {
	c.tb.Helper()
	c.bw.WriteString("stats\r\n")
	if err := c.bw.Flush(); err != nil {
		c.tb.Fatal(err)
	}
	v := int64(-1)
	for l := c.line(); l != "END"; l = c.line() {
		if f := strings.Fields(l); len(f) == 3 && f[1] == name {
			v, _ = strconv.ParseInt(f[2], 10, 64)
		}
	}
	if v < 0 {
		c.tb.Fatalf("no stat %s", name)
	}
	return v
}

// binarySet stores an item with the binary protocol, the only way to give an
// item a key the text protocol cannot carry.
func (c *client) binarySet(key, value []byte, flags uint32) {
	c.tb.Helper()
	var h [24 + 8]byte
	h[0] = 0x80 // request
	h[1] = 0x01 // set
	binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
	h[4] = 8 // extras: flags and expiry
	binary.BigEndian.PutUint32(h[8:], uint32(8+len(key)+len(value)))
	binary.BigEndian.PutUint32(h[24:], flags)
	c.bw.Write(h[:])
	c.bw.Write(key)
	c.bw.Write(value)
	if err := c.bw.Flush(); err != nil {
		c.tb.Fatal(err)
	}
	var r [24]byte
	if _, err := io.ReadFull(c.br, r[:]); err != nil {
		c.tb.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(r[8:]))
	if _, err := io.ReadFull(c.br, body); err != nil {
		c.tb.Fatal(err)
	}
	if st := binary.BigEndian.Uint16(r[6:]); r[0] != 0x81 || st != 0 {
		c.tb.Fatalf("binary set of %q: status %d %s", key, st, body)
	}
}

// countingWriter counts what goes through it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// cancelWriter cancels a context on its first write and then fails, like a
// caller giving up mid-dump.
type cancelWriter struct {
	cancel func()
}

func (w cancelWriter) Write(p []byte) (int, error) {
	w.cancel()
	return len(p), nil
}

var errBoom = errors.New("boom")

// failWriter accepts n bytes and then fails.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errBoom
	}
	w.n -= len(p)
	return len(p), nil
}

// dumpBytes dumps the memcached at addr into memory.
func dumpBytes(tb testing.TB, addr string) ([]byte, Stats) {
	tb.Helper()
	var buf bytes.Buffer
	st, err := Dump(tb.Context(), addr, &buf)
	if err != nil {
		tb.Fatalf("Dump: %v", err)
	}
	return buf.Bytes(), st
}
