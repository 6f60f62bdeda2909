// Package mcdump snapshots the items of a running memcached into a portable,
// versioned, checksummed dump file and restores such a dump into a memcached
// (the same one or another).
//
// memcached has no persistence of its own, so hoard takes a memcached snapshot
// by reading every item over the ordinary text protocol: Dump lists the keys
// with `lru_crawler metadump`, then fetches each item with the meta-get
// command (mg), pipelined on a second connection; Load writes the items back with the
// meta-set command (ms), pipelined in batches closed by a meta no-op (mn).
// Writer, Reader and Verify work on the file format alone.
//
// # Consistency
//
// A dump is not an atomic point in time. The keys are listed while the cache
// keeps serving, and then every item is read separately: an item written,
// replaced or deleted during the dump may or may not be in it, and if it is,
// it has one of the values it had during the dump. An item that disappears
// between listing and fetching is left out (counted in Stats.Skipped). Should the crawler list a key twice, its item is in the
// dump twice, and loading it stores it twice, which is harmless.
//
// # TTLs
//
// The dump records, for each item, the TTL it had left when it was read, in
// whole seconds, and the header records when the dump started. Load ages every
// TTL by the time between the dump's start and the load, so an item never
// outlives the expiry it had in the source (it may expire up to the dump's
// duration early, as items read late in a dump are aged from its start), and it
// skips the items whose TTL has run out (counted in Stats.Skipped). A remaining
// TTL longer than 30 days is sent to memcached as an absolute Unix time, since
// memcached reads any relative TTL above 30 days as one; that makes it depend on
// the target server's clock.
//
// # Keys
//
// memcached keys are 1 to 250 bytes. A key with no space or control byte is
// sent to memcached as it is; another key of up to 186 bytes goes
// base64-encoded, with the meta commands' b flag. A longer one cannot:
// memcached limits a meta command's key token to 250 bytes before decoding
// it. It goes as it is, which memcached's tokenizer accepts unless the key
// holds NUL, space, CR or LF. A key that does and is longer than 186 bytes
// (which only the binary protocol can store) cannot be read or written with
// the meta commands: Dump and Load leave such items out and count them in
// Stats.Unsupported.
//
// # File format, version 1
//
// All integers are unsigned and big-endian unless stated otherwise. A file is
// a header, zero or more item records and a trailer, with nothing after the
// trailer.
//
// Header, 20 bytes:
//
//	offset size field
//	0      8    magic: the ASCII bytes "HOARDMC\n" (48 4F 41 52 44 4D 43 0A)
//	8      2    format version: 1
//	10     2    reserved: 0 (a reader rejects anything else)
//	12     8    creation time: signed 64-bit Unix seconds at which the dump
//	            started; the TTLs below count from it
//
// Item record, 15 bytes plus the key and the value:
//
//	size   field
//	1      tag: 'I' (0x49)
//	2      key length K, 1 to 250
//	K      key, raw bytes (binary-safe; no encoding)
//	4      client flags, memcached's opaque 32-bit item flags
//	4      TTL: seconds the item had left at the creation time; 0 means the
//	       item never expires (a TTL that has run out is never written; an
//	       item about to expire is written with TTL 1)
//	4      value length V, 0 to 1073741824 (2^30, memcached's largest item)
//	V      value, raw bytes
//
// Trailer, 13 bytes:
//
//	size   field
//	1      tag: 'E' (0x45)
//	8      item count: the number of item records in the file
//	4      CRC-32C (Castagnoli polynomial, as computed by Go's hash/crc32
//	       with crc32.Castagnoli, by iSCSI and by SSE4.2's crc32
//	       instruction) of every byte of the file before this field: the
//	       header, all records, the trailer's tag and its item count
//
// A reader must treat as corrupt: a wrong magic, a non-zero reserved field, a
// tag other than 'I' or 'E', a key length outside 1-250, a value length above
// 2^30, an end of file before the trailer is complete, an item count or a
// checksum that does not match, and any byte after the trailer. A reader for
// version 1 must refuse other versions. Records can be read one at a time, so
// neither writing nor reading needs the whole dump in memory; but since the
// checksum comes last, a reader that acts on records as it reads them (as Load
// does) learns that a dump is corrupt only at its end: LoadFile verifies the
// whole file first.
package mcdump
