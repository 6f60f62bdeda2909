package engine

// Snapshots and restores of redis and valkey nodes.
//
// A snapshot is the RDB the node streams to a replica: Snapshot speaks the
// replication protocol as `redis-cli --rdb` does (REPLCONF capa eof, REPLCONF
// rdb-only 1, SYNC) and writes the payload to a file as it arrives. redis forks
// to produce it, so the node keeps serving, and the RDB is the data at the
// fork. A restore (Spec.Seed) is a node that starts with the RDB as its
// dump file.

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
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SnapshotIdleTimeout bounds how long Snapshot waits for the node to send
// anything. While it prepares the RDB, redis sends a newline every second; a
// longer silence means the node or the connection is stuck.
var SnapshotIdleTimeout = 60 * time.Second

// redisDBFilename is the dbfilename of every redis and valkey node hoard
// starts: the file a restore puts the seed in.
const redisDBFilename = "dump.rdb"

const (
	// rdbEOFMarkLen is the length of the mark that ends a diskless transfer
	// ($EOF:<mark>, then the payload, then the mark).
	rdbEOFMarkLen = 40
	// rdbHeaderLen is the length of an RDB's magic and version: "REDIS0011",
	// or "VALKEY080" for valkey 9 and later.
	rdbHeaderLen = 9
	// snapshotBufSize is the size of the reads from the node.
	snapshotBufSize = 1 << 20
)

var _ Snapshotter = (*redisDriver)(nil)

// Snapshot streams an RDB of the running node to path through the replication
// protocol: it connects, authenticates with the node's requirepass if it has
// one, announces `REPLCONF capa eof` (so that redis sends the RDB straight from
// its fork, without writing it to the node's disk, when repl-diskless-sync is
// on, the default since redis 7) and `REPLCONF rdb-only 1` (redis 7 and later:
// the connection gets the RDB only, not the replication stream a replica would
// get next; older servers answer with an error, which is ignored), then SYNC. It
// takes both forms of the reply: `$<length>` and exactly length bytes (an RDB
// written to disk first), or `$EOF:<mark>` and the payload up to the same
// 40-byte mark (diskless). The payload goes to path+".tmp" as it arrives, is
// checked (the magic and version as it starts, the EOF opcode at its end),
// fsynced, and renamed to path, which must not exist; the directory
// is then fsynced. Cancelling ctx closes the connection; on any error the
// temporary file is removed and nothing is left at path.
//
// redis starts the transfer after repl-diskless-sync-delay (5 seconds by
// default) in the hope of serving more replicas with one fork: the data is that
// of the moment the fork happens, after the delay.
func (d *redisDriver) Snapshot(ctx context.Context, h Handle, path string) (int64, error) {
	if path == "" {
		return 0, errors.New("snapshot: empty path")
	}
	if err := checkNode(h); err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	st, err := loadState(h.Dir)
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		return 0, fmt.Errorf("snapshot: %s already exists", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	addr := hostPort(h.Host, h.Port)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil { // a stale tmp file kept its mode
		return 0, fmt.Errorf("snapshot: %w", err)
	}

	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("snapshot of node %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// Socket reads arrive in pieces of tens of KiB; writing them through a
	// 1 MiB buffer makes one write system call per MiB instead of per piece.
	out := bufio.NewWriterSize(f, snapshotBufSize)
	sink := &rdbSink{w: out}
	err = streamRDB(conn, st.Params["requirepass"], st.Params["rename-commands"], sink)
	conn.Close()
	if err == nil {
		err = sink.finish()
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("snapshot of node %s: %w", addr, context.Cause(ctx))
		}
		return 0, fmt.Errorf("snapshot of node %s: %w", addr, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	if err := renameNoReplace(tmp, path); err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	ok = true
	if err := syncDir(filepath.Dir(path)); err != nil {
		os.Remove(path)
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	return sink.n, nil
}

// redisError is an error reply of the node.
type redisError string

func (e redisError) Error() string { return string(e) }

// streamRDB asks the node on conn for an RDB and writes the payload to w.
func streamRDB(conn net.Conn, password, renames string, w io.Writer) error {
	r := bufio.NewReaderSize(idleReader{conn}, 64<<10)
	call := func(args ...string) error {
		if _, err := conn.Write(respCommand(args...)); err != nil {
			return err
		}
		line, err := readReplyLine(r)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(line, "+"):
			return nil
		case strings.HasPrefix(line, "-"):
			return redisError(line[1:])
		}
		return fmt.Errorf("unexpected reply to %s: %q", args[0], line)
	}
	if password != "" {
		if err := call(renamedCommand(renames, "AUTH"), password); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	replconf := renamedCommand(renames, "REPLCONF")
	for _, opt := range [][2]string{{"capa", "eof"}, {"rdb-only", "1"}} {
		err := call(replconf, opt[0], opt[1])
		var re redisError
		if err != nil && !errors.As(err, &re) {
			return fmt.Errorf("REPLCONF %s: %w", opt[0], err)
		}
		// An error reply is a server without the option: not fatal.
	}
	sync := renamedCommand(renames, "SYNC")
	if _, err := conn.Write(respCommand(sync)); err != nil {
		return fmt.Errorf("SYNC: %w", err)
	}
	// The reply, after any number of newlines sent while the RDB is prepared.
	var line string
	for line == "" {
		var err error
		if line, err = readReplyLine(r); err != nil {
			return fmt.Errorf("SYNC: %w", err)
		}
	}
	buf := make([]byte, snapshotBufSize+rdbEOFMarkLen)
	switch {
	case strings.HasPrefix(line, "-"):
		return fmt.Errorf("SYNC: %w", redisError(line[1:]))
	case strings.HasPrefix(line, "$EOF:"):
		mark := []byte(line[len("$EOF:"):])
		if len(mark) != rdbEOFMarkLen {
			return fmt.Errorf("SYNC: malformed reply %q", line)
		}
		return copyUntilMark(w, r, mark, buf)
	case strings.HasPrefix(line, "$"):
		size, err := strconv.ParseInt(line[1:], 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("SYNC: malformed reply %q", line)
		}
		return copyN(w, r, size, buf[:snapshotBufSize])
	}
	return fmt.Errorf("SYNC: unexpected reply %q", line)
}

// copyN copies exactly n bytes from r to w.
func copyN(w io.Writer, r io.Reader, n int64, buf []byte) error {
	for n > 0 {
		b := buf
		if int64(len(b)) > n {
			b = b[:n]
		}
		k, err := r.Read(b)
		if k > 0 {
			if _, werr := w.Write(b[:k]); werr != nil {
				return werr
			}
			n -= int64(k)
		}
		if err != nil && n > 0 {
			return truncated(err, n)
		}
	}
	return nil
}

// copyUntilMark copies r to w until r has sent mark, which is not copied. The
// last len(mark) bytes read are held back until more arrive, so that the mark
// is found whichever reads it is split across. buf must be larger than mark.
func copyUntilMark(w io.Writer, r io.Reader, mark, buf []byte) error {
	m := len(mark)
	held := 0 // bytes at the start of buf, not written yet
	for {
		k, err := r.Read(buf[held:])
		held += k
		if k > 0 && held >= m && bytes.Equal(buf[held-m:held], mark) {
			_, werr := w.Write(buf[:held-m])
			return werr
		}
		if held > m {
			if _, werr := w.Write(buf[:held-m]); werr != nil {
				return werr
			}
			held = copy(buf, buf[held-m:held])
		}
		if err != nil {
			return truncated(err, -1)
		}
	}
}

func truncated(err error, missing int64) error {
	if errors.Is(err, io.EOF) {
		if missing >= 0 {
			return fmt.Errorf("the node closed the connection %d bytes before the end of the RDB", missing)
		}
		return errors.New("the node closed the connection before the end of the RDB")
	}
	return fmt.Errorf("reading the RDB: %w", err)
}

// readReplyLine reads a line of the node's reply without its line ending. A
// keep-alive newline reads as "".
func readReplyLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", errors.New("reply line too long")
		}
		if errors.Is(err, io.EOF) {
			return "", errors.New("the node closed the connection")
		}
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// respCommand encodes a command as a RESP array of bulk strings.
func respCommand(args ...string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// idleReader sets a read deadline of SnapshotIdleTimeout before every read.
type idleReader struct{ c net.Conn }

func (r idleReader) Read(p []byte) (int, error) {
	if err := r.c.SetReadDeadline(time.Now().Add(SnapshotIdleTimeout)); err != nil {
		return 0, err
	}
	return r.c.Read(p)
}

// rdbSink writes an RDB to w as it arrives and checks it: the magic and version
// as soon as they arrive, and at the end the EOF opcode. (The CRC-64 that ends
// the RDB is not verified here: on loopback it would cost a quarter of the
// snapshot's CPU for no gain, and redis verifies it when it loads the file.)
type rdbSink struct {
	w       io.Writer
	n       int64
	head    []byte              // the first rdbHeaderLen bytes
	version int                 // RDB version, once head is complete
	tail    [rdbEOFTrailer]byte // the last bytes written, right-aligned
}

// rdbEOFTrailer is the end of an RDB of version 5 or later: the EOF opcode and
// an 8-byte checksum.
const rdbEOFTrailer = 9

func (s *rdbSink) Write(p []byte) (int, error) {
	if len(s.head) < rdbHeaderLen {
		k := min(rdbHeaderLen-len(s.head), len(p))
		s.head = append(s.head, p[:k]...)
		if len(s.head) == rdbHeaderLen {
			v, err := rdbHeader(s.head)
			if err != nil {
				return 0, fmt.Errorf("the node sent %w", err)
			}
			s.version = v
		}
	}
	if _, err := s.w.Write(p); err != nil {
		return 0, err
	}
	s.n += int64(len(p))
	if len(p) >= len(s.tail) {
		copy(s.tail[:], p[len(p)-len(s.tail):])
	} else {
		copy(s.tail[:], s.tail[len(p):])
		copy(s.tail[len(s.tail)-len(p):], p)
	}
	return len(p), nil
}

// finish checks the RDB is complete: it ends with the EOF opcode (0xff),
// followed from RDB version 5 by the 8-byte checksum.
func (s *rdbSink) finish() error {
	if len(s.head) < rdbHeaderLen {
		return fmt.Errorf("the node sent %d bytes, not an RDB", s.n)
	}
	eof := len(s.tail) - 1
	if s.version >= 5 {
		eof = 0
	}
	if s.n < int64(rdbHeaderLen+len(s.tail)-eof) || s.tail[eof] != 0xff {
		return errors.New("the RDB does not end with the EOF opcode")
	}
	return nil
}

// rdbHeader checks b starts with an RDB's magic and version and returns the
// version.
func rdbHeader(b []byte) (int, error) {
	digits := func(d []byte) (int, bool) {
		for _, c := range d {
			if c < '0' || c > '9' {
				return 0, false
			}
		}
		v, err := strconv.Atoi(string(d))
		return v, err == nil
	}
	if len(b) >= rdbHeaderLen {
		if string(b[:5]) == "REDIS" {
			if v, ok := digits(b[5:rdbHeaderLen]); ok {
				return v, nil
			}
		}
		if string(b[:6]) == "VALKEY" {
			if v, ok := digits(b[6:rdbHeaderLen]); ok {
				return v, nil
			}
		}
	}
	return 0, fmt.Errorf("no RDB: the data starts with %q, not REDIS and a 4-digit RDB version", b[:min(len(b), rdbHeaderLen)])
}

// checkRDBFile checks the file at path starts like an RDB and returns its
// version.
func checkRDBFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b := make([]byte, rdbHeaderLen)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%s is not an RDB file: it is empty", path)
	}
	v, err := rdbHeader(b[:n])
	if err != nil {
		return 0, fmt.Errorf("%s is not an RDB file: it starts with %q, not REDIS and a 4-digit RDB version", path, b[:n])
	}
	return v, nil
}

// copySeed puts the seed RDB at dst: a hard link, or else a copy through a
// temporary file so that a partial copy never has dst's name.
func copySeed(src, dst string) (err error) {
	// A hard link is instant and as good as a copy here: redis only reads the
	// file, and when it saves it writes a new file and renames it over dst, so
	// the seed's own contents never change. Copy where links are impossible.
	_ = os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".seed.tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(out, in); err != nil { // copy_file_range where it can
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// seedLogLine picks, in redis's log, the lines that say why it did not load an
// RDB: warnings (" # ") about the data file, and the findings of the RDB check
// redis runs on a file it fails to load.
var seedLogLine = regexp.MustCompile(`(?i) # .*(rdb|loading|signature|short read|can't handle|data file|databases)|^\[offset \d+\]`)

// seedRefusal returns what the last start's log in dir says about refusing the
// seed RDB, or "".
func seedRefusal(dir string) string {
	lines := strings.Split(logTail(dir, 200), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "--- hoard: ") {
			lines = lines[i+1:]
			break
		}
	}
	var out []string
	for _, l := range lines {
		if !seedLogLine.MatchString(l) || strings.Contains(l, "# WARNING") || strings.Contains(l, "Checking RDB file") {
			continue
		}
		if _, msg, ok := strings.Cut(l, " # "); ok {
			l = msg
		}
		out = append(out, strings.TrimSpace(l))
	}
	return strings.Join(out, "; ")
}

// renameNoReplace renames oldpath to newpath, failing if newpath exists.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%s already exists", newpath)
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTSUP) {
		// A filesystem without RENAME_NOREPLACE.
		if _, err := os.Lstat(newpath); err == nil {
			return fmt.Errorf("%s already exists", newpath)
		}
		return os.Rename(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// syncDir fsyncs a directory, making the renames and removals in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}

// removeIfExists removes path; a missing file is not an error.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
