package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Errors about encrypted data, for errors.Is.
var (
	// ErrCorrupt: an encrypted stream failed authentication (tampered,
	// truncated, reordered, or decrypted with different key material) or has a
	// malformed or unsupported header.
	ErrCorrupt = errors.New("keyring: encrypted data is corrupt or was tampered with")
	// ErrNotEncrypted: the data does not start with the encrypted-file magic.
	ErrNotEncrypted = errors.New("keyring: data is not a hoard encrypted file")
)

// Header layout; doc.go describes it.
const (
	magic        = "HOARDENC"
	formatV1     = 1
	offVersion   = 8
	offChunkExp  = 9
	offKeyID     = 10
	offWrapNonce = offKeyID + 36
	offPrefix    = offWrapNonce + 12
	offWrapped   = offPrefix + prefixSize
	headerSize   = offWrapped + dataKeySize + tagSize // 113

	prefixSize  = 7
	dataKeySize = 32
	tagSize     = 16
	nonceSize   = 12

	minChunkExp     = 10
	maxChunkExp     = 24
	defaultChunkExp = 20 // 1 MiB: big enough to amortise per-chunk cost, small enough to buffer

	// ChunkSize is the plaintext size of every chunk but the last in files
	// hoard writes.
	ChunkSize = 1 << defaultChunkExp
)

// EncryptedSize is the size of the encrypted file hoard writes for n bytes of
// plaintext.
func EncryptedSize(n int64) int64 {
	chunks := max(1, (n+ChunkSize-1)/ChunkSize)
	return headerSize + n + chunks*tagSize
}

// header is a parsed, not yet authenticated, header.
type header struct {
	raw      [headerSize]byte
	chunkExp int
	keyID    string
}

// parseHeader reads and checks a header's syntax. It cannot authenticate it;
// unwrapping the data key does.
func parseHeader(r io.Reader) (*header, error) {
	h := new(header)
	n, err := io.ReadFull(r, h.raw[:])
	if n < len(magic) || string(h.raw[:len(magic)]) != magic {
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("keyring: reading header: %w", err)
		}
		return nil, ErrNotEncrypted
	}
	switch {
	case err == io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("%w: header truncated at %d of %d bytes", ErrCorrupt, n, headerSize)
	case err != nil:
		return nil, fmt.Errorf("keyring: reading header: %w", err)
	case h.raw[offVersion] != formatV1:
		return nil, fmt.Errorf("%w: unsupported format version %d", ErrCorrupt, h.raw[offVersion])
	}
	h.chunkExp = int(h.raw[offChunkExp])
	if h.chunkExp < minChunkExp || h.chunkExp > maxChunkExp {
		return nil, fmt.Errorf("%w: chunk size exponent %d out of range", ErrCorrupt, h.chunkExp)
	}
	h.keyID = string(h.raw[offKeyID:offWrapNonce])
	if !validUUID(h.keyID) {
		return nil, fmt.Errorf("%w: header key id is not a UUID", ErrCorrupt)
	}
	return h, nil
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("keyring: " + err.Error()) // unreachable: keys are always 32 bytes
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic("keyring: " + err.Error()) // unreachable: standard nonce and tag sizes
	}
	return g
}

// encryptWriter seals a stream chunk by chunk. It holds back a full chunk
// until it sees more data, because only then does it know the chunk is not
// the last one.
type encryptWriter struct {
	w        io.Writer
	aead     cipher.AEAD
	nonce    [nonceSize]byte
	counter  uint64 // chunks written
	chunk    int    // plaintext bytes per chunk
	buf      []byte // plaintext buf[:n]; capacity chunk+tagSize, sealed in place
	n        int
	closed   bool
	closeErr error // what Close returned
	err      error // sticky: a write error, or errClosed after Close
}

// NewEncryptWriter returns a writer that encrypts what is written to it under
// the key keyRef names (any form Lookup accepts) and writes the result to w.
// It writes the header at once. Close must be called to write the final
// chunk; it does not close w. Unknown keys are ErrUnknownKey.
func (k *Keyring) NewEncryptWriter(w io.Writer, keyRef string) (io.WriteCloser, error) {
	e, err := k.resolve(keyRef)
	if err != nil {
		return nil, err
	}
	return newEncryptWriter(w, e, defaultChunkExp)
}

func newEncryptWriter(w io.Writer, e *entry, chunkExp int) (*encryptWriter, error) {
	var h [headerSize]byte
	copy(h[:], magic)
	h[offVersion] = formatV1
	h[offChunkExp] = byte(chunkExp)
	copy(h[offKeyID:], e.ID)
	rand.Read(h[offWrapNonce:offWrapped]) // wrap nonce and stream prefix
	dataKey := make([]byte, dataKeySize)
	rand.Read(dataKey)
	wrapped := newGCM(e.material).Seal(nil, h[offWrapNonce:offPrefix], dataKey, h[:offWrapped])
	copy(h[offWrapped:], wrapped)

	ew := &encryptWriter{
		w:     w,
		aead:  newGCM(dataKey),
		chunk: 1 << chunkExp,
		buf:   make([]byte, 1<<chunkExp+tagSize),
	}
	clear(dataKey)
	copy(ew.nonce[:], h[offPrefix:offWrapped])
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("keyring: writing header: %w", err)
	}
	return ew, nil
}

var errClosed = errors.New("keyring: write to closed encrypting writer")

func (ew *encryptWriter) Write(p []byte) (int, error) {
	if ew.err != nil {
		return 0, ew.err
	}
	written := 0
	for len(p) > 0 {
		if ew.n == ew.chunk {
			if err := ew.seal(false); err != nil {
				return written, err
			}
		}
		m := copy(ew.buf[ew.n:ew.chunk], p)
		ew.n += m
		written += m
		p = p[m:]
	}
	return written, nil
}

// ReadFrom reads r to EOF straight into the chunk buffer, sparing io.Copy's
// intermediate buffer and copy. It does not write the final chunk: Close does.
func (ew *encryptWriter) ReadFrom(r io.Reader) (int64, error) {
	if ew.err != nil {
		return 0, ew.err
	}
	var total int64
	for {
		var m int
		var err error
		if ew.n < ew.chunk {
			m, err = r.Read(ew.buf[ew.n:ew.chunk])
			ew.n += m
		} else {
			// The buffer is full: read one byte into the tag space to learn
			// whether the chunk is the last, saving it before the seal.
			m, err = r.Read(ew.buf[ew.chunk : ew.chunk+1])
			if m > 0 {
				b := ew.buf[ew.chunk]
				if serr := ew.seal(false); serr != nil {
					return total, serr
				}
				ew.buf[0] = b
				ew.n = 1
			}
		}
		total += int64(m)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close writes the final chunk. It does not close the underlying writer.
// Closing again returns the first Close's result.
func (ew *encryptWriter) Close() error {
	if ew.closed {
		return ew.closeErr
	}
	ew.closed = true
	if ew.err == nil {
		ew.seal(true) // sets ew.err on failure
	}
	ew.closeErr = ew.err
	if ew.err == nil {
		ew.err = errClosed
	}
	return ew.closeErr
}

// seal encrypts buf[:n] in place as the next chunk and writes it.
func (ew *encryptWriter) seal(final bool) error {
	if ew.counter > math.MaxUint32 {
		ew.err = fmt.Errorf("keyring: stream longer than %d chunks", uint64(math.MaxUint32)+1)
		return ew.err
	}
	setChunkNonce(&ew.nonce, ew.counter, final)
	out := ew.aead.Seal(ew.buf[:0], ew.nonce[:], ew.buf[:ew.n], nil)
	if _, err := ew.w.Write(out); err != nil {
		ew.err = fmt.Errorf("keyring: writing chunk %d: %w", ew.counter, err)
		return ew.err
	}
	ew.counter++
	ew.n = 0
	return nil
}

// setChunkNonce fills in the counter and last-chunk flag after the prefix.
func setChunkNonce(nonce *[nonceSize]byte, counter uint64, final bool) {
	binary.BigEndian.PutUint32(nonce[prefixSize:], uint32(counter))
	nonce[nonceSize-1] = 0
	if final {
		nonce[nonceSize-1] = 1
	}
}

// decryptReader opens a stream chunk by chunk. To tell the final chunk, which
// is short or followed by EOF, from a full middle one, it reads one byte past
// each full chunk and carries it over to the next.
type decryptReader struct {
	r        io.Reader
	aead     cipher.AEAD
	nonce    [nonceSize]byte
	counter  uint64 // chunks opened
	ctSize   int    // ciphertext bytes of a full chunk
	buf      []byte // ctSize+1: a chunk and the lookahead byte
	carry    byte   // lookahead byte read past the previous chunk
	hasCarry bool
	plain    []byte // opened plaintext not yet returned, within buf
	done     bool   // the final chunk authenticated
	err      error  // sticky
}

// NewDecryptReader reads the header from r, finds its key in the keyring and
// returns a reader of the plaintext, along with the key id. The reader fails
// with ErrCorrupt at the first chunk that does not authenticate and returns
// io.EOF only after the final chunk did. On ErrUnknownKey the key id is still
// returned, to name the missing key. Input that is not an encrypted file is
// ErrNotEncrypted.
func (k *Keyring) NewDecryptReader(r io.Reader) (io.Reader, string, error) {
	dr, keyID, err := k.newDecryptReader(r)
	if err != nil {
		return nil, keyID, err
	}
	return dr, keyID, nil
}

func (k *Keyring) newDecryptReader(r io.Reader) (*decryptReader, string, error) {
	h, err := parseHeader(r)
	if err != nil {
		return nil, "", err
	}
	e, err := k.resolve(h.keyID)
	if err != nil {
		return nil, h.keyID, err
	}
	dataKey, err := newGCM(e.material).Open(nil, h.raw[offWrapNonce:offPrefix], h.raw[offWrapped:], h.raw[:offWrapped])
	if err != nil {
		return nil, h.keyID, fmt.Errorf("%w: header of key %s failed authentication (tampered header or different key material)", ErrCorrupt, h.keyID)
	}
	// Only now, with the header authenticated, is the chunk size trusted
	// enough to allocate for.
	ctSize := 1<<h.chunkExp + tagSize
	dr := &decryptReader{
		r:      r,
		aead:   newGCM(dataKey),
		ctSize: ctSize,
		buf:    make([]byte, ctSize+1),
	}
	clear(dataKey)
	copy(dr.nonce[:], h.raw[offPrefix:offWrapped])
	return dr, h.keyID, nil
}

func (dr *decryptReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(dr.plain) == 0 {
		if err := dr.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, dr.plain)
	dr.plain = dr.plain[n:]
	return n, nil
}

// WriteTo writes each chunk's plaintext straight from the chunk buffer,
// sparing io.Copy's intermediate buffer and copy.
func (dr *decryptReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(dr.plain) > 0 {
			n, err := w.Write(dr.plain)
			total += int64(n)
			dr.plain = dr.plain[n:]
			if err != nil {
				return total, err
			}
		}
		if err := dr.next(); err == io.EOF {
			return total, nil
		} else if err != nil {
			return total, err
		}
	}
}

// next reads and opens the next chunk into dr.plain, or returns io.EOF after
// the final one.
func (dr *decryptReader) next() error {
	if dr.err != nil {
		return dr.err
	}
	if dr.done {
		return io.EOF
	}
	n := 0
	if dr.hasCarry {
		dr.buf[0] = dr.carry
		n = 1
	}
	m, err := io.ReadFull(dr.r, dr.buf[n:])
	n += m
	final := false
	switch err {
	case nil: // a full chunk and one byte more: not the last chunk
		dr.carry, dr.hasCarry = dr.buf[dr.ctSize], true
		n = dr.ctSize
	case io.EOF, io.ErrUnexpectedEOF:
		final = true
	default:
		dr.err = fmt.Errorf("keyring: reading chunk %d: %w", dr.counter, err)
		return dr.err
	}
	if n < tagSize {
		dr.err = fmt.Errorf("%w: truncated: chunk %d is %d bytes, shorter than its tag", ErrCorrupt, dr.counter, n)
		return dr.err
	}
	if dr.counter > math.MaxUint32 {
		dr.err = fmt.Errorf("%w: more than %d chunks", ErrCorrupt, uint64(math.MaxUint32)+1)
		return dr.err
	}
	setChunkNonce(&dr.nonce, dr.counter, final)
	plain, oerr := dr.aead.Open(dr.buf[:0], dr.nonce[:], dr.buf[:n], nil)
	if oerr != nil {
		why := "tampered, reordered or duplicated"
		if final {
			why = "truncated, tampered or reordered"
		}
		dr.err = fmt.Errorf("%w: chunk %d failed authentication (%s)", ErrCorrupt, dr.counter, why)
		return dr.err
	}
	dr.counter++
	dr.plain = plain
	dr.done = final
	return nil
}
