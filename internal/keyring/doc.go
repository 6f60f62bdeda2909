// Package keyring is hoard's local stand-in for AWS KMS: a file of named
// 256-bit master keys, and envelope encryption of snapshot files under them.
//
// ElastiCache snapshots accept a KmsKeyId. hoard resolves it against the
// keyring in its data directory and writes the snapshot encrypted under that
// key, so the file is unreadable without the keyring.
//
// # Key references
//
// Lookup, NewEncryptWriter and EncryptFile accept any of the forms KMS accepts
// for a symmetric key:
//
//	1234abcd-12ab-34cd-56ef-1234567890ab                          key id
//	arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-...      key ARN
//	alias/snapshots                                               alias name
//	arn:aws:kms:us-east-1:123456789012:alias/snapshots            alias ARN
//
// The region and account in an ARN are not checked: a keyring is local, so any
// are accepted (the partition may be aws, aws-cn, aws-us-gov, ...). Key ids are
// matched case-insensitively, aliases exactly. Anything unknown or malformed is
// ErrUnknownKey.
//
// # Keyring file
//
// The keyring is one JSON file, mode 0600, replaced atomically on every change
// (temporary file in the same directory, fsync, rename, fsync of the
// directory), so readers never see a partial file and need no lock:
//
//	{
//	  "version": 1,
//	  "keys": [
//	    {
//	      "id": "1234abcd-12ab-44cd-96ef-1234567890ab",
//	      "alias": "alias/snapshots",
//	      "description": "nightly snapshots",
//	      "created_at": "2025-01-02T03:04:05Z",
//	      "material": "<32 bytes, standard base64 with padding>"
//	    }
//	  ]
//	}
//
// id is a random (version 4) UUID in lowercase; alias and description may be
// absent. Keys are listed in creation order and are never removed or changed.
//
// Writers (Create) additionally hold an flock(2) on "<path>.lock" while they
// re-read, extend and replace the file, so a server and the `hoard keys create`
// command adding keys at the same time cannot lose one another's key. A
// Keyring re-reads the file whenever a lookup misses and on List, which is how
// a running server sees keys created by another process.
//
// # Encrypted file format, version 1
//
// An encrypted file is a 113-byte header followed by one or more chunks. All
// integers are big-endian.
//
//	offset  size  field
//	     0     8  magic "HOARDENC"
//	     8     1  format version, 1
//	     9     1  chunk size exponent e: each chunk holds 2^e plaintext
//	              bytes, 10 <= e <= 24 (hoard writes 20, i.e. 1 MiB)
//	    10    36  key id, ASCII, the lowercase UUID of the master key
//	    46    12  wrap nonce, random
//	    58     7  stream nonce prefix, random
//	    65    48  wrapped data key: AES-256-GCM under the master key with the
//	              wrap nonce, sealing the file's random 32-byte data key, with
//	              header bytes 0..64 as additional data (32 bytes + 16-byte tag)
//	   113        chunks
//
// Because every header field is additional data of the wrapped key, changing
// any of them makes the data key fail to unwrap.
//
// Chunk i (counting from 0) is the AES-256-GCM sealing, under the data key, of
// the i-th 2^e bytes of plaintext, with no additional data and the 12-byte
// nonce
//
//	prefix (7 bytes) || i (uint32) || last (1 byte: 1 for the final chunk, else 0)
//
// This is the STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár,
// "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
// 2015): the counter in the nonce detects reordered, dropped or duplicated
// chunks, and the last flag detects truncation at a chunk boundary, since the
// chunk that ends the file must authenticate as final. Every chunk but the
// final one holds exactly 2^e plaintext bytes (2^e+16 bytes on disk); the final
// chunk holds 0..2^e bytes, so a file is never without one: an empty plaintext
// is one empty final chunk (16 bytes). A file whose plaintext length is a
// multiple of 2^e ends in a full final chunk, not an extra empty one. The
// encrypted size of n plaintext bytes is thus 113 + n + 16*max(1, ceil(n/2^e)),
// which EncryptedSize computes.
//
// A fresh data key per file means chunk nonces never repeat under one key even
// though the 7-byte prefix is short, and that chunks cannot be spliced between
// files. The 32-bit counter limits a file to 2^32 chunks (4 PiB at 1 MiB).
//
// A reader releases a chunk's plaintext only after the chunk authenticated,
// and reports io.EOF only after the final chunk did; any authentication failure
// or malformed header is ErrCorrupt.
//
// Use Encrypted to tell an encrypted file from a plain one: it reads only the
// header and needs no key. Its key id is not authenticated until decryption.
package keyring
