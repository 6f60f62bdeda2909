package mcdump

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const (
	// fetchWindow is the number of mg requests in flight on the fetch
	// connection: enough to hide the round trip, few enough that a stalled
	// writer of the dump does not leave much queued in memcached.
	fetchWindow = 512
	// busyRetry is the longest wait between attempts to start a metadump
	// while memcached's LRU crawler is busy with another request.
	busyRetry = time.Second
)

// Dump writes a dump of every item of the memcached at addr (host:port) to
// w, and returns the number of items and value bytes written and of the
// listed keys it left out (see Stats).
//
// It works in two passes. It first lists the keys with `lru_crawler metadump
// hash` (or `all` on a server that lacks hash) into a temporary file in
// os.TempDir (a byte per key more than the keys' total size), reading the
// list as fast as memcached sends it: a metadump client that falls behind
// stalls memcached's crawler while it holds a lock of the hash table (which
// blocks every request for a key under that lock, including the dump's own
// mg requests if they were sent meanwhile: a deadlock) and the crawler lock
// (which blocks memcached's LRU maintainer and any lru_crawler command). It
// then fetches the items with pipelined `mg <key> u v f t` requests on a
// second connection (u: a dump does not count as a use of the item in
// memcached's LRU).
//
// The dump is not a point in time: see the package documentation. w
// receives the dump as it is made; on error it holds an incomplete dump,
// without trailer.
func Dump(ctx context.Context, addr string, w io.Writer) (Stats, error) {
	var st Stats
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("mcdump: %w", err)
	}
	// The dump starts now: TTLs read later are aged from here when loaded,
	// which errs on the side of expiring early.
	dw := NewWriter(w, time.Now())
	spool, err := os.CreateTemp("", "mcdump-keys-*")
	if err != nil {
		return st, fmt.Errorf("mcdump: creating the key list: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	if st.Unsupported, err = listKeys(ctx, addr, spool); err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx) // the I/O error is the forced deadline
		}
		return st, fmt.Errorf("mcdump: dumping %s: %w", addr, err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("mcdump: rewinding the key list: %w", err)
	}

	g := newGroup(ctx)
	defer g.cancel(nil)
	conn, stop, err := dial(g.ctx, addr)
	if err != nil {
		return st, fmt.Errorf("mcdump: dumping %s: %w", addr, err)
	}
	defer func() { stop(); conn.Close() }()
	var fetched Stats
	pending := make(chan []byte, fetchWindow)
	g.Go(func() error {
		defer close(pending)
		return sendGets(g.ctx, conn, bufio.NewReaderSize(spool, 64<<10), pending)
	})
	g.Go(func() error {
		var err error
		fetched, err = readGets(conn, pending, dw)
		return err
	})
	err = g.Wait(ctx)
	st.Items, st.Bytes, st.Skipped = fetched.Items, fetched.Bytes, fetched.Skipped
	if err != nil {
		return st, fmt.Errorf("mcdump: dumping %s: %w", addr, err)
	}
	if err := dw.Close(); err != nil {
		return st, err
	}
	return st, nil
}

// DumpFile dumps the memcached at addr to the file path. It writes a
// temporary file next to path and renames it to path once the dump is
// complete and synced, so path never holds a partial dump.
func DumpFile(ctx context.Context, addr, path string) (Stats, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return Stats{}, fmt.Errorf("mcdump: %w", err)
	}
	tmp := f.Name()
	st, err := Dump(ctx, addr, f)
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return st, err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return st, fmt.Errorf("mcdump: %w", err) // the os package's errors name the file
	}
	return st, nil
}

// listKeys runs a metadump on a connection of its own and writes every key
// it lists to spool, as a length byte and the key. It returns the number of
// keys it left out because the meta commands cannot address them.
func listKeys(ctx context.Context, addr string, spool io.Writer) (unsupported int64, err error) {
	conn, stop, err := dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer func() { stop(); conn.Close() }()
	br := bufio.NewReaderSize(conn, 64<<10)
	bw := bufio.NewWriterSize(spool, 64<<10)
	mode := "hash" // walks the hash table: unlike an LRU walk, it skips no item for being in use
	wait := 50 * time.Millisecond
	var line []byte
	for {
		// Nothing else may be sent on conn while the metadump runs: memcached's
		// crawler reads and discards it.
		if _, err := fmt.Fprintf(conn, "lru_crawler metadump %s\r\n", mode); err != nil {
			return 0, fmt.Errorf("sending lru_crawler metadump: %w", err)
		}
		if line, err = readLine(br); err != nil {
			return 0, fmt.Errorf("reading lru_crawler metadump: %w", err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("key=")), bytes.Equal(line, []byte("END")):
		case bytes.HasPrefix(line, []byte("BADCLASS")) && mode == "hash":
			mode = "all" // a server older than metadump hash
			continue
		case bytes.HasPrefix(line, []byte("BUSY")), bytes.HasPrefix(line, []byte("ERROR locked")):
			// Another crawl holds the crawler (1.6.18 says BUSY, newer
			// versions "ERROR locked try again later"); 1.6.18 answers only
			// once that crawl is over, so a short wait is enough.
			select {
			case <-ctx.Done():
				return 0, context.Cause(ctx)
			case <-time.After(wait):
			}
			wait = min(2*wait, busyRetry)
			continue
		default:
			return 0, fmt.Errorf("lru_crawler metadump %s: memcached replied %q", mode, line)
		}
		break
	}
	for n := 1; !bytes.Equal(line, []byte("END")); n++ {
		key, err := metadumpKey(line)
		if err != nil {
			return unsupported, fmt.Errorf("metadump line %d: %w", n, err)
		}
		if !addressable(key) {
			unsupported++
		} else {
			_ = bw.WriteByte(byte(len(key))) // errors stick in bw until Flush
			_, _ = bw.Write(key)
		}
		if line, err = readLine(br); err != nil {
			return unsupported, fmt.Errorf("reading lru_crawler metadump after %d keys: %w", n, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return unsupported, fmt.Errorf("writing the key list: %w", err)
	}
	return unsupported, nil
}

// metadumpKey returns the key of a metadump line, "key=<uri-encoded key>
// exp=... la=... cas=... fetch=... cls=... size=...".
func metadumpKey(line []byte) ([]byte, error) {
	enc, ok := bytes.CutPrefix(line, []byte("key="))
	if !ok {
		return nil, fmt.Errorf("unexpected metadump line %q", line)
	}
	enc, _, _ = bytes.Cut(enc, []byte(" "))
	key, err := uriDecode(nil, enc)
	if err != nil {
		return nil, fmt.Errorf("metadump key: %w", err)
	}
	return key, nil
}

// sendGets writes an mg request on conn for every key listed in keys (as
// listKeys writes them), and passes the key on to pending, in order, for
// readGets to match with the reply.
func sendGets(ctx context.Context, conn net.Conn, keys *bufio.Reader, pending chan<- []byte) error {
	bw := bufio.NewWriterSize(conn, 64<<10)
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("sending mg requests: %w", err)
		}
		return nil
	}
	var line []byte
	for {
		n, err := keys.ReadByte()
		if errors.Is(err, io.EOF) {
			return flush()
		}
		key := make([]byte, n)
		if err == nil {
			_, err = io.ReadFull(keys, key)
		}
		if err != nil {
			return fmt.Errorf("reading the key list: %w", err)
		}
		select {
		case pending <- key:
		default:
			// The window is full: the replies cannot come before the
			// requests are sent.
			if err := flush(); err != nil {
				return err
			}
			select {
			case pending <- key:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		var b bool
		line, b, _ = keyToken(append(line[:0], "mg "...), key) // listKeys kept only keys that have a token
		if b {
			line = append(line, " b"...)
		}
		line = append(line, " u v f t\r\n"...)
		if _, err := bw.Write(line); err != nil {
			return fmt.Errorf("sending mg requests: %w", err)
		}
	}
}

// readGets reads the mg replies for the keys from pending and adds the items
// to dw. A miss (EN) is an item that expired or was deleted since it was
// listed.
func readGets(conn net.Conn, pending <-chan []byte, dw *Writer) (Stats, error) {
	var st Stats
	var buf []byte
	br := bufio.NewReaderSize(conn, bufSize)
	for key := range pending {
		line, err := readLine(br)
		if err != nil {
			return st, fmt.Errorf("reading mg reply for key %q: %w", key, err)
		}
		if bytes.Equal(line, []byte("EN")) {
			st.Skipped++
			continue
		}
		size, flags, ttl, err := parseVA(line)
		if err != nil {
			return st, fmt.Errorf("mg of key %q: %w", key, err)
		}
		// Add copies the value into the dump, so one buffer serves all items.
		buf = slices.Grow(buf[:0], size+2)
		value := buf[:size+2]
		if _, err := io.ReadFull(br, value); err != nil {
			return st, fmt.Errorf("reading value of key %q: %w", key, err)
		}
		if !bytes.HasSuffix(value, []byte("\r\n")) {
			return st, fmt.Errorf("value of key %q does not end with CRLF", key)
		}
		if err := dw.Add(Item{Key: key, Value: value[:size], Flags: flags, TTL: ttl}); err != nil {
			return st, err
		}
		st.Items++
		st.Bytes += int64(size)
	}
	return st, nil
}

// parseVA parses the reply line to `mg <key> u v f t`: "VA <size> f<flags>
// t<ttl>", where ttl is -1 for an item that never expires. memcached returns
// the flags in the order asked, "though this is not strict", so they are
// taken by their letter.
func parseVA(line []byte) (size int, flags uint32, ttl time.Duration, err error) {
	rest, ok := bytes.CutPrefix(line, []byte("VA "))
	if !ok {
		return 0, 0, 0, fmt.Errorf("memcached replied %q", line)
	}
	tok, rest, _ := bytes.Cut(rest, []byte(" "))
	n, ok := parseUint(tok)
	if !ok || n > MaxValueLen {
		return 0, 0, 0, fmt.Errorf("bad value size in %q", line)
	}
	var haveF, haveT bool
	for len(rest) > 0 {
		tok, rest, _ = bytes.Cut(rest, []byte(" "))
		if len(tok) == 0 {
			continue
		}
		switch tok[0] {
		case 'f':
			v, ok := parseUint(tok[1:])
			if !ok || v > 1<<32-1 {
				return 0, 0, 0, fmt.Errorf("bad client flags in %q", line)
			}
			flags, haveF = uint32(v), true
		case 't':
			if string(tok[1:]) == "-1" {
				ttl, haveT = 0, true
				break
			}
			v, ok := parseUint(tok[1:])
			if !ok || v > 1<<32-1 {
				return 0, 0, 0, fmt.Errorf("bad TTL in %q", line)
			}
			// A TTL of 0 left is an item expiring within the second; 0 would
			// mean "never" in the dump.
			ttl, haveT = time.Duration(max(v, 1))*time.Second, true
		}
	}
	if !haveF || !haveT {
		return 0, 0, 0, fmt.Errorf("reply %q lacks client flags or TTL", line)
	}
	return int(n), flags, ttl, nil
}

// parseUint parses a decimal number without allocating (the replies are read
// as byte slices).
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
