package mcdump

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"time"
)

// Format constants; doc.go describes the layout they belong to.
const (
	// Magic opens every dump.
	Magic = "HOARDMC\n"
	// Version is the format version this package writes and reads.
	Version = 1
	// MaxKeyLen is memcached's longest key.
	MaxKeyLen = 250
	// MaxValueLen is the longest value a dump may hold: memcached's largest
	// item size (-I 1024m).
	MaxValueLen = 1 << 30
	// MaxTTL is the longest TTL a dump can record.
	MaxTTL = math.MaxUint32 * time.Second

	headerLen  = len(Magic) + 2 + 2 + 8
	tagItem    = 'I'
	tagTrailer = 'E'
	trailerLen = 1 + 8 + 4
	// bufSize is the buffer between the format code and the file or socket:
	// large enough that small items cost no system call each.
	bufSize = 256 << 10
)

var (
	// ErrCorrupt is wrapped by every error that reports a dump as truncated,
	// damaged or not a dump at all.
	ErrCorrupt = errors.New("mcdump: corrupt dump")
	// ErrVersion is wrapped by the error for a dump of another format version.
	ErrVersion = errors.New("mcdump: unsupported dump version")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Item is one memcached item.
type Item struct {
	// Key is the item's key, 1 to MaxKeyLen bytes of any value.
	Key []byte
	// Value is the item's data.
	Value []byte
	// Flags are the item's client flags, opaque to memcached.
	Flags uint32
	// TTL is the time the item has left to live; 0 means it never expires.
	// In a dump it is counted from the dump's creation time and has whole
	// seconds.
	TTL time.Duration
}

// Stats counts what a Dump, Load or Verify did.
type Stats struct {
	// Items is the number of items written to the dump (Dump), stored in
	// memcached (Load) or found in the dump (Verify).
	Items int64
	// Bytes is the total size of those items' values.
	Bytes int64
	// Skipped counts items left out: by Dump, listed keys that were gone when
	// fetched; by Load, items whose TTL had run out.
	Skipped int64
	// Unsupported counts items left out because the meta protocol cannot
	// address their key (see "Keys" in the package documentation).
	Unsupported int64
}

// ttlSeconds converts an Item TTL to the whole seconds a dump stores,
// rounding up so that a short positive TTL does not become 0 ("never").
func ttlSeconds(ttl time.Duration) (uint32, error) {
	if ttl < 0 || ttl > MaxTTL {
		return 0, fmt.Errorf("mcdump: TTL %v out of range [0, %v]", ttl, MaxTTL)
	}
	return uint32((ttl + time.Second - 1) / time.Second), nil
}

// Writer writes a dump. It buffers its output; Close writes the trailer and
// flushes, and must be called for the dump to be complete.
type Writer struct {
	bw     *bufio.Writer
	crc    uint32
	count  uint64
	err    error // sticky: a dump is useless after a failed write
	closed bool
	scr    [16]byte
}

// NewWriter starts a dump created at created on w and returns a Writer for
// its items. created is the instant the TTLs of the items count from: the
// start of the dump. The header goes out with the first flush; an error
// writing it is returned by Add or Close.
func NewWriter(w io.Writer, created time.Time) *Writer {
	dw := &Writer{bw: bufio.NewWriterSize(w, bufSize)}
	var h [headerLen]byte
	copy(h[:], Magic)
	binary.BigEndian.PutUint16(h[8:], Version)
	binary.BigEndian.PutUint64(h[12:], uint64(created.Unix()))
	dw.write(h[:])
	return dw
}

func (w *Writer) write(p []byte) {
	if w.err != nil {
		return
	}
	w.crc = crc32.Update(w.crc, castagnoli, p)
	if _, err := w.bw.Write(p); err != nil {
		w.err = fmt.Errorf("mcdump: writing dump: %w", err)
	}
}

// Add appends it to the dump.
func (w *Writer) Add(it Item) error {
	if w.closed {
		return errors.New("mcdump: Add after Close")
	}
	if w.err != nil {
		return w.err
	}
	if len(it.Key) == 0 || len(it.Key) > MaxKeyLen {
		return fmt.Errorf("mcdump: key of %d bytes, want 1 to %d", len(it.Key), MaxKeyLen)
	}
	if len(it.Value) > MaxValueLen {
		return fmt.Errorf("mcdump: value of key %q has %d bytes, more than %d", it.Key, len(it.Value), MaxValueLen)
	}
	ttl, err := ttlSeconds(it.TTL)
	if err != nil {
		return fmt.Errorf("%w (key %q)", err, it.Key)
	}
	b := w.scr[:3]
	b[0] = tagItem
	binary.BigEndian.PutUint16(b[1:], uint16(len(it.Key)))
	w.write(b)
	w.write(it.Key)
	b = w.scr[:12]
	binary.BigEndian.PutUint32(b[0:], it.Flags)
	binary.BigEndian.PutUint32(b[4:], ttl)
	binary.BigEndian.PutUint32(b[8:], uint32(len(it.Value)))
	w.write(b)
	w.write(it.Value)
	w.count++
	return w.err
}

// Count is the number of items added so far.
func (w *Writer) Count() int64 { return int64(w.count) }

// Close writes the trailer and flushes the dump. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	b := w.scr[:9]
	b[0] = tagTrailer
	binary.BigEndian.PutUint64(b[1:], w.count)
	w.write(b)
	binary.BigEndian.PutUint32(w.scr[:4], w.crc) // not through write: the CRC covers what precedes it
	if w.err == nil {
		if _, err := w.bw.Write(w.scr[:4]); err != nil {
			w.err = fmt.Errorf("mcdump: writing dump: %w", err)
		}
	}
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("mcdump: writing dump: %w", err)
		}
	}
	return w.err
}

// Reader reads a dump item by item.
type Reader struct {
	br      *bufio.Reader
	crc     uint32
	created time.Time
	count   uint64
	err     error // sticky; io.EOF once the trailer has been verified
	scr     [16]byte
}

// NewReader reads and checks the header of the dump in r.
func NewReader(r io.Reader) (*Reader, error) {
	dr := &Reader{br: bufio.NewReaderSize(r, bufSize)}
	var h [headerLen]byte
	if err := dr.read(h[:], "header"); err != nil {
		return nil, err
	}
	if string(h[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: bad magic %q, not an mcdump file", ErrCorrupt, h[:len(Magic)])
	}
	if v := binary.BigEndian.Uint16(h[8:]); v != Version {
		return nil, fmt.Errorf("%w: version %d, this reader knows version %d", ErrVersion, v, Version)
	}
	if f := binary.BigEndian.Uint16(h[10:]); f != 0 {
		return nil, fmt.Errorf("%w: reserved header field is %#x, want 0", ErrCorrupt, f)
	}
	dr.created = time.Unix(int64(binary.BigEndian.Uint64(h[12:])), 0)
	return dr, nil
}

// Created is the dump's creation time, which its items' TTLs count from.
func (r *Reader) Created() time.Time { return r.created }

// read fills p from the dump and adds it to the checksum. An end of file is
// a truncated dump: the trailer says where a dump ends.
func (r *Reader) read(p []byte, what string) error {
	if _, err := io.ReadFull(r.br, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated in %s after %d items", ErrCorrupt, what, r.count)
		}
		return fmt.Errorf("mcdump: reading %s after %d items: %w", what, r.count, err)
	}
	r.crc = crc32.Update(r.crc, castagnoli, p)
	return nil
}

// readBlob reads n bytes. It grows the buffer as data arrives rather than
// trusting n up front, so that a damaged length cannot make it allocate far
// more than the stream holds.
func (r *Reader) readBlob(n int, what string) ([]byte, error) {
	const step = 1 << 20
	buf := make([]byte, 0, min(n, step))
	for len(buf) < n {
		k := min(n-len(buf), step)
		buf = slices.Grow(buf, k)
		if err := r.read(buf[len(buf):len(buf)+k], what); err != nil {
			return nil, err
		}
		buf = buf[:len(buf)+k]
	}
	return buf, nil
}

// Next returns the next item. After the last one, it checks the trailer and
// returns io.EOF if the dump is intact, or an error wrapping ErrCorrupt. The
// returned item's slices are the caller's.
func (r *Reader) Next() (Item, error) {
	if r.err != nil {
		return Item{}, r.err
	}
	it, err := r.next()
	if err != nil {
		r.err = err
	}
	return it, err
}

func (r *Reader) next() (Item, error) {
	tag := r.scr[:1]
	if err := r.read(tag, "record tag"); err != nil {
		return Item{}, err
	}
	switch tag[0] {
	case tagItem:
	case tagTrailer:
		return Item{}, r.trailer()
	default:
		return Item{}, fmt.Errorf("%w: unknown record tag %#x after %d items", ErrCorrupt, tag[0], r.count)
	}
	b := r.scr[:2]
	if err := r.read(b, "key length"); err != nil {
		return Item{}, err
	}
	klen := int(binary.BigEndian.Uint16(b))
	if klen == 0 || klen > MaxKeyLen {
		return Item{}, fmt.Errorf("%w: key length %d in item %d", ErrCorrupt, klen, r.count+1)
	}
	var it Item
	var err error
	if it.Key, err = r.readBlob(klen, "key"); err != nil {
		return Item{}, err
	}
	b = r.scr[:12]
	if err := r.read(b, "item header"); err != nil {
		return Item{}, err
	}
	it.Flags = binary.BigEndian.Uint32(b[0:])
	it.TTL = time.Duration(binary.BigEndian.Uint32(b[4:])) * time.Second
	vlen := binary.BigEndian.Uint32(b[8:])
	if vlen > MaxValueLen {
		return Item{}, fmt.Errorf("%w: value length %d in item %d", ErrCorrupt, vlen, r.count+1)
	}
	if it.Value, err = r.readBlob(int(vlen), "value"); err != nil {
		return Item{}, err
	}
	r.count++
	return it, nil
}

// trailer checks the item count, the checksum and the end of the stream.
func (r *Reader) trailer() error {
	b := r.scr[:8]
	if err := r.read(b, "trailer"); err != nil {
		return err
	}
	count := binary.BigEndian.Uint64(b)
	want := r.crc
	b = r.scr[:4]
	if err := r.read(b, "trailer"); err != nil {
		return err
	}
	if got := binary.BigEndian.Uint32(b); got != want {
		return fmt.Errorf("%w: checksum %08x, computed %08x", ErrCorrupt, got, want)
	}
	if count != r.count {
		return fmt.Errorf("%w: trailer counts %d items, read %d", ErrCorrupt, count, r.count)
	}
	switch _, err := r.br.ReadByte(); {
	case err == nil:
		return fmt.Errorf("%w: data after the trailer", ErrCorrupt)
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("mcdump: reading after the trailer: %w", err)
	}
	return io.EOF
}

// Verify reads the whole dump in r and checks it. It returns the number of
// items and value bytes, or an error wrapping ErrCorrupt if the dump is
// damaged. It holds one item in memory at a time.
func Verify(r io.Reader) (Stats, error) {
	var st Stats
	dr, err := NewReader(r)
	if err != nil {
		return st, err
	}
	for {
		it, err := dr.Next()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, err
		}
		st.Items++
		st.Bytes += int64(len(it.Value))
	}
}
