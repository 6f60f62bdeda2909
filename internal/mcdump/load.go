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
	"strconv"
	"time"
)

const (
	// loadBatchItems and loadBatchBytes bound a batch of ms requests: the
	// unit Load waits for memcached to confirm (with mn) and the unit an
	// error is reported for.
	loadBatchItems = 256
	loadBatchBytes = 1 << 20
	// loadWindow is the number of batches in flight.
	loadWindow = 8
	// maxRelativeTTL is the longest TTL memcached takes as relative: a larger
	// number is a Unix time.
	maxRelativeTTL = 30 * 24 * 60 * 60
)

// batch is a run of ms requests closed by an mn. first and last are the
// positions in the dump (from 1) of its first and last items.
type batch struct {
	first, last int64
	items       int64
	bytes       int64
}

// LoadFile verifies the dump in the file path and, only if it is intact,
// loads it into the memcached at addr (see Load). A damaged file loads
// nothing.
func LoadFile(ctx context.Context, addr, path string) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, fmt.Errorf("mcdump: %w", err)
	}
	defer f.Close()
	if _, err := Verify(f); err != nil {
		return Stats{}, fmt.Errorf("mcdump: refusing to load %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Stats{}, fmt.Errorf("mcdump: rewinding %s: %w", path, err)
	}
	return Load(ctx, addr, f)
}

// Load writes every item of the dump in r into the memcached at addr
// (host:port) with pipelined `ms <key> <len> F<flags> T<ttl> q` requests, an
// mn closing each batch, and returns the number of items and value bytes
// stored, of items skipped because their TTL had run out, and of items whose
// key the meta protocol cannot address. Existing items with the same keys are
// replaced; other items are left alone.
//
// TTLs are aged by the time since the dump's creation (see the package
// documentation). Load reads the dump as it loads it, so it learns that the
// dump is damaged only at its end, after loading what precedes the damage;
// it then returns an error wrapping ErrCorrupt. Use LoadFile, or Verify
// first, to load nothing from a damaged dump.
//
// A request memcached refuses (say, an item larger than its -I, or out of
// memory under -M) stops the load with an error that quotes memcached and
// names the batch of dump items it came from. On error, Stats.Items counts
// the items memcached had confirmed; some sent after them may be stored too.
func Load(ctx context.Context, addr string, r io.Reader) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("mcdump: %w", err)
	}
	dr, err := NewReader(r)
	if err != nil {
		return Stats{}, err
	}
	g := newGroup(ctx)
	defer g.cancel(nil)
	conn, stop, err := dial(g.ctx, addr)
	if err != nil {
		return Stats{}, fmt.Errorf("mcdump: loading into %s: %w", addr, err)
	}
	defer func() { stop(); conn.Close() }()

	var sent, stored Stats
	pending := make(chan batch, loadWindow)
	g.Go(func() error {
		defer close(pending)
		var err error
		sent, err = sendSets(g.ctx, conn, dr, pending)
		return err
	})
	g.Go(func() error {
		var err error
		stored, err = readSets(conn, pending)
		return err
	})
	err = g.Wait(ctx)
	st := Stats{Items: stored.Items, Bytes: stored.Bytes, Skipped: sent.Skipped, Unsupported: sent.Unsupported}
	if err != nil {
		return st, fmt.Errorf("mcdump: loading into %s: %w", addr, err)
	}
	return st, nil
}

// expiry returns the T token for an item whose TTL counted from created, at
// time now: 0 for none, seconds for up to 30 days, a Unix time beyond. ok is
// false if the TTL has run out.
func expiry(ttl time.Duration, created, now time.Time) (exp int64, ok bool) {
	if ttl <= 0 {
		return 0, true
	}
	// Whole seconds, as memcached counts; a clock that went back counts as no
	// time elapsed.
	elapsed := max(now.Unix()-created.Unix(), 0)
	left := int64(ttl/time.Second) - elapsed
	switch {
	case left <= 0:
		return 0, false
	case left > maxRelativeTTL:
		return now.Unix() + left, true
	}
	return left, true
}

// sendSets writes an ms request on conn for every item of dr, closes every
// batch with an mn and passes it to pending.
func sendSets(ctx context.Context, conn net.Conn, dr *Reader, pending chan<- batch) (Stats, error) {
	var st Stats
	bw := bufio.NewWriterSize(conn, bufSize)
	var cur batch
	endBatch := func() error {
		_, _ = bw.WriteString("mn\r\n")
		// Flushing every batch keeps memcached busy while the next one is
		// read from the dump.
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("sending ms requests: %w", err)
		}
		select {
		case pending <- cur:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		cur = batch{}
		return nil
	}
	var line []byte
	for n := int64(1); ; n++ {
		it, err := dr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, err
		}
		exp, live := expiry(it.TTL, dr.Created(), time.Now())
		if !live {
			st.Skipped++
			continue
		}
		// The key must be checked here, not left to memcached: when it refuses
		// an ms command line (CLIENT_ERROR) it does not skip the data block
		// but reads it as commands, and a value can hold any command.
		var b, ok bool
		line, b, ok = keyToken(append(line[:0], "ms "...), it.Key)
		if !ok {
			st.Unsupported++
			continue
		}
		line = append(line, ' ')
		line = strconv.AppendInt(line, int64(len(it.Value)), 10)
		if b {
			line = append(line, " b"...)
		}
		if it.Flags != 0 {
			line = append(line, " F"...)
			line = strconv.AppendUint(line, uint64(it.Flags), 10)
		}
		if exp != 0 {
			line = append(line, " T"...)
			line = strconv.AppendInt(line, exp, 10)
		}
		// q: memcached answers only failures; the batch's mn says when all
		// its requests are done.
		line = append(line, " q\r\n"...)
		// bufio.Writer's errors stick: endBatch's Flush reports them.
		_, _ = bw.Write(line)
		_, _ = bw.Write(it.Value)
		_, _ = bw.WriteString("\r\n")
		if cur.items == 0 {
			cur.first = n
		}
		cur.last = n
		cur.items++
		cur.bytes += int64(len(it.Value))
		if cur.items >= loadBatchItems || cur.bytes >= loadBatchBytes {
			if err := endBatch(); err != nil {
				return st, err
			}
		}
	}
	if cur.items > 0 {
		if err := endBatch(); err != nil {
			return st, err
		}
	}
	return st, nil
}

// readSets reads the replies to the batches from pending: nothing but MN for
// a batch memcached stored entirely.
func readSets(conn net.Conn, pending <-chan batch) (Stats, error) {
	var st Stats
	br := bufio.NewReaderSize(conn, 64<<10)
	for b := range pending {
		line, err := readLine(br)
		if err != nil {
			return st, fmt.Errorf("reading ms replies for dump items %d to %d: %w", b.first, b.last, err)
		}
		if !bytes.Equal(line, []byte("MN")) {
			// With q, memcached answers only failures, and its error lines do
			// not say which request failed: name the batch.
			return st, fmt.Errorf("memcached refused one of dump items %d to %d: %q", b.first, b.last, line)
		}
		st.Items += b.items
		st.Bytes += b.bytes
	}
	return st, nil
}
