package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// encrypt seals plain under key with the given chunk exponent, writing it in
// pieces of the given size (0: one Write) to exercise the buffering.
func encrypt(t testing.TB, k *Keyring, key Key, plain []byte, chunkExp, piece int) []byte {
	t.Helper()
	e, err := k.resolve(key.ID)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	ew, err := newEncryptWriter(&buf, e, chunkExp)
	if err != nil {
		t.Fatal(err)
	}
	if piece == 0 {
		piece = max(1, len(plain))
	}
	for rest := plain; len(rest) > 0; {
		n := min(piece, len(rest))
		if m, err := ew.Write(rest[:n]); err != nil || m != n {
			t.Fatalf("Write = %d, %v", m, err)
		}
		rest = rest[n:]
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decrypt reads all of ct through the public reader.
func decrypt(k *Keyring, ct []byte) ([]byte, error) {
	r, _, err := k.NewDecryptReader(bytes.NewReader(ct))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTripSizes(t *testing.T) {
	k, _ := openTemp(t)
	key := mustCreate(t, k, "alias/rt", "")
	const c = ChunkSize
	for _, n := range []int{0, 1, c - 1, c, c + 1, 5*c + 7} {
		plain := randomBytes(n, uint64(n))
		var buf bytes.Buffer
		w, err := k.NewEncryptWriter(&buf, "alias/rt")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(plain); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		ct := buf.Bytes()
		if int64(len(ct)) != EncryptedSize(int64(n)) {
			t.Errorf("size %d: encrypted to %d bytes; EncryptedSize says %d", n, len(ct), EncryptedSize(int64(n)))
		}
		if bytes.Contains(ct, plain[:min(n, 64)]) && n >= 16 {
			t.Errorf("size %d: ciphertext contains plaintext", n)
		}
		// Read through Read with odd-sized reads, and through WriteTo.
		r, id, err := k.NewDecryptReader(iotest.HalfReader(bytes.NewReader(ct)))
		if err != nil || id != key.ID {
			t.Fatalf("size %d: NewDecryptReader = %q, %v", n, id, err)
		}
		var rr io.Reader = iotest.OneByteReader(r)
		if n > 3*c {
			rr = iotest.HalfReader(r) // one byte at a time is slow for 5 MiB
		}
		got, err := io.ReadAll(rr)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: Read round trip: %d bytes, %v", n, len(got), err)
		}
		r, _, _ = k.NewDecryptReader(bytes.NewReader(ct))
		var out bytes.Buffer
		if m, err := io.Copy(&out, r); err != nil || m != int64(n) || !bytes.Equal(out.Bytes(), plain) {
			t.Fatalf("size %d: WriteTo round trip: %d bytes, %v", n, m, err)
		}
		// Same plaintext, fresh data key and nonces: different ciphertext.
		if n > 0 && bytes.Equal(ct, encrypt(t, k, key, plain, defaultChunkExp, 0)) {
			t.Errorf("size %d: two encryptions are identical", n)
		}
	}
}

func TestRoundTripSmallChunks(t *testing.T) {
	k, _ := openTemp(t)
	key := mustCreate(t, k, "", "")
	c := 1 << minChunkExp
	for _, n := range []int{0, 1, c - 1, c, c + 1, 2 * c, 7*c + 3} {
		for _, piece := range []int{0, 1, 7, c, c + 1} {
			plain := randomBytes(n, 7)
			ct := encrypt(t, k, key, plain, minChunkExp, piece)
			chunks := max(1, (n+c-1)/c)
			if len(ct) != headerSize+n+chunks*tagSize {
				t.Errorf("n=%d piece=%d: %d bytes; want %d", n, piece, len(ct), headerSize+n+chunks*tagSize)
			}
			if got, err := decrypt(k, ct); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("n=%d piece=%d: round trip: %v", n, piece, err)
			}
		}
	}
}

func TestReadFromMatchesWrite(t *testing.T) {
	k, _ := openTemp(t)
	key := mustCreate(t, k, "", "")
	e, _ := k.resolve(key.ID)
	c := 1 << minChunkExp
	for _, n := range []int{0, 1, c, c + 1, 3 * c, 3*c + 5} {
		plain := randomBytes(n, 3)
		for _, src := range []io.Reader{bytes.NewReader(plain), iotest.OneByteReader(bytes.NewReader(plain)), iotest.DataErrReader(bytes.NewReader(plain))} {
			var buf bytes.Buffer
			ew, _ := newEncryptWriter(&buf, e, minChunkExp)
			if m, err := ew.ReadFrom(src); err != nil || m != int64(n) {
				t.Fatalf("n=%d: ReadFrom = %d, %v", n, m, err)
			}
			ew.Close()
			if buf.Len() != headerSize+n+max(1, (n+c-1)/c)*tagSize {
				t.Errorf("n=%d: ReadFrom wrote %d bytes", n, buf.Len())
			}
			if got, err := decrypt(k, buf.Bytes()); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("n=%d: ReadFrom round trip: %v", n, err)
			}
		}
	}
}

func TestWriterAfterClose(t *testing.T) {
	k, _ := openTemp(t)
	mustCreate(t, k, "alias/w", "")
	w, _ := k.NewEncryptWriter(io.Discard, "alias/w")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if _, err := k.NewEncryptWriter(io.Discard, "alias/none"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("NewEncryptWriter with an unknown key: %v; want ErrUnknownKey", err)
	}
}

func TestWrongKeyring(t *testing.T) {
	k, path := openTemp(t)
	key := mustCreate(t, k, "alias/x", "")
	ct := encrypt(t, k, key, []byte("secret"), defaultChunkExp, 0)

	// A keyring without the key: ErrUnknownKey, naming the key.
	other, _ := openTemp(t)
	mustCreate(t, other, "alias/x", "") // same alias, different key: irrelevant
	if _, id, err := other.NewDecryptReader(bytes.NewReader(ct)); !errors.Is(err, ErrUnknownKey) || id != key.ID {
		t.Errorf("keyring without the key: id %q, error %v; want %s, ErrUnknownKey", id, err, key.ID)
	}

	// A keyring with the same key id but other material: ErrCorrupt.
	var f fileFormat
	data, _ := os.ReadFile(path)
	json.Unmarshal(data, &f)
	f.Keys[0].Material = base64.StdEncoding.EncodeToString(randomBytes(materialSize, 99))
	data, _ = json.Marshal(f)
	forged := filepath.Join(t.TempDir(), "forged.json")
	os.WriteFile(forged, data, 0o600)
	fk, err := Open(forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := fk.NewDecryptReader(bytes.NewReader(ct)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("same key id, other material: %v; want ErrCorrupt", err)
	}
}

// TestTampering checks that every kind of damage is detected, using 1 KiB
// chunks so that a file has several.
func TestTampering(t *testing.T) {
	k, _ := openTemp(t)
	key := mustCreate(t, k, "", "")
	other := mustCreate(t, k, "", "")
	c := 1<<minChunkExp + tagSize // bytes of a full chunk on disk
	plain := randomBytes(4<<minChunkExp+100, 1)
	ct := encrypt(t, k, key, plain, minChunkExp, 0) // 5 chunks, the last short

	expect := func(name string, data []byte, want ...error) {
		t.Helper()
		got, err := decrypt(k, data)
		for _, w := range want {
			if errors.Is(err, w) {
				return
			}
		}
		t.Errorf("%s: got %d bytes, error %v; want one of %v", name, len(got), err, want)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(ct)) }

	for i := range headerSize {
		data := mod(func(b []byte) []byte { b[i] ^= 0x01; return b })
		switch {
		case i < len(magic):
			expect("flipped magic byte", data, ErrNotEncrypted)
		case i >= offKeyID && i < offWrapNonce:
			// Either no longer a UUID, or the UUID of no key.
			expect("flipped key id byte", data, ErrCorrupt, ErrUnknownKey)
		default:
			expect("flipped header byte", data, ErrCorrupt)
		}
	}
	// The header names another existing key: its material fails to unwrap.
	expect("header names another key", mod(func(b []byte) []byte { copy(b[offKeyID:], other.ID); return b }), ErrCorrupt)
	for _, off := range []int{headerSize, headerSize + c - 1, headerSize + 2*c + 10, len(ct) - 1} {
		expect("flipped chunk byte", mod(func(b []byte) []byte { b[off] ^= 0x80; return b }), ErrCorrupt)
	}
	for i := 0; i <= 4; i++ {
		expect("truncated at chunk boundary", ct[:headerSize+i*c], ErrCorrupt)
	}
	for _, n := range []int{headerSize - 1, headerSize + 5, headerSize + c + 20, headerSize + 3*c + tagSize, len(ct) - 1} {
		expect("truncated mid-chunk", ct[:n], ErrCorrupt)
	}
	chunk := func(i int) []byte { return ct[headerSize+i*c : headerSize+(i+1)*c] }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	expect("chunk duplicated", join(ct[:headerSize+2*c], chunk(1), ct[headerSize+2*c:]), ErrCorrupt)
	expect("chunks swapped", join(ct[:headerSize], chunk(1), chunk(0), ct[headerSize+2*c:]), ErrCorrupt)
	expect("chunk dropped", join(ct[:headerSize+c], ct[headerSize+2*c:]), ErrCorrupt)
	expect("trailing garbage", join(ct, []byte{0}), ErrCorrupt)
	expect("final chunk appended twice", join(ct, ct[headerSize+4*c:]), ErrCorrupt)
	// Splicing a chunk from another file under the same key fails: new data key.
	ct2 := encrypt(t, k, key, plain, minChunkExp, 0)
	expect("chunk from another file", join(ct[:headerSize], ct2[headerSize:headerSize+c], ct[headerSize+c:]), ErrCorrupt)
	expect("empty input", nil, ErrNotEncrypted)
	expect("plain data", []byte("REDIS0011 not encrypted at all, long enough for a header...................................................."), ErrNotEncrypted)

	// No plaintext of a bad chunk is released, and errors are sticky.
	bad := mod(func(b []byte) []byte { b[headerSize+2*c+10] ^= 1; return b })
	r, _, _ := k.NewDecryptReader(bytes.NewReader(bad))
	got, err := io.ReadAll(r)
	if !errors.Is(err, ErrCorrupt) || !bytes.Equal(got, plain[:2<<minChunkExp]) {
		t.Errorf("read %d bytes before the bad chunk (want %d), error %v", len(got), 2<<minChunkExp, err)
	}
	if _, err2 := r.Read(make([]byte, 10)); !errors.Is(err2, ErrCorrupt) {
		t.Errorf("Read after an error = %v; want the same ErrCorrupt", err2)
	}
}

func TestReadErrorIsNotCorruption(t *testing.T) {
	k, _ := openTemp(t)
	key := mustCreate(t, k, "", "")
	ct := encrypt(t, k, key, randomBytes(3000, 2), minChunkExp, 0)
	boom := errors.New("disk on fire")
	r, _, err := k.NewDecryptReader(io.MultiReader(bytes.NewReader(ct[:headerSize+500]), iotest.ErrReader(boom)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Errorf("read error surfaced as %v; want the underlying error, not ErrCorrupt", err)
	}
}
