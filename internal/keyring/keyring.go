package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Errors callers can test for with errors.Is. Returned errors wrap them with
// the details (the key reference, the file, the failing field).
var (
	// ErrUnknownKey: the reference names no key in the keyring, or is not a key
	// id, key ARN, alias name or alias ARN at all.
	ErrUnknownKey = errors.New("keyring: key not found")
	// ErrInvalidAlias: Create was given an alias KMS would not accept.
	ErrInvalidAlias = errors.New("keyring: invalid alias")
	// ErrAliasExists: Create was given an alias another key already has.
	ErrAliasExists = errors.New("keyring: alias already exists")
)

const (
	fileVersion    = 1
	materialSize   = 32 // AES-256
	maxAliasName   = 250
	maxDescription = 8192 // KMS's limit for a key description
)

// Key is the public view of a master key: everything but its material.
type Key struct {
	ID          string    // lowercase UUID, e.g. 1234abcd-12ab-44cd-96ef-1234567890ab
	Alias       string    // "alias/<name>", or "" for none
	Description string    // free text, possibly ""
	CreatedAt   time.Time // UTC, whole seconds
}

// ARN is the key ARN KMS would report for k in the given region and account,
// for callers that echo a KmsKeyId back in ElastiCache responses.
func (k Key) ARN(region, account string) string {
	return "arn:aws:kms:" + region + ":" + account + ":key/" + k.ID
}

// secret holds key material. Its Format method keeps the bytes out of any
// fmt-based output (logs, %v of a struct, test failures) by accident.
type secret []byte

func (secret) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

// entry is a key with its material. Entries are immutable once built, so a
// pointer to one may be used after the keyring's mutex is released.
type entry struct {
	Key
	material secret
}

// Format prints the public fields only. fmt cannot call secret's Format on an
// unexported field, so the redaction has to happen here too.
func (e entry) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('+') {
		fmt.Fprintf(f, "{Key:%+v material:[redacted]}", e.Key)
		return
	}
	fmt.Fprintf(f, "{%v [redacted]}", e.Key)
}

// state is one parsed version of the keyring file.
type state struct {
	keys    []*entry // creation order
	byID    map[string]*entry
	byAlias map[string]*entry
}

// Keyring is a keyring file opened for use. It is safe for concurrent use.
type Keyring struct {
	path string
	mu   sync.Mutex // guards st; held across reloads and Create
	st   *state
}

// Open opens the keyring at path. A missing file is an empty keyring; the file
// (and its directory) are created with the first key.
func Open(path string) (*Keyring, error) {
	st, err := readState(path)
	if err != nil {
		return nil, err
	}
	return &Keyring{path: path, st: st}, nil
}

// Path is the keyring file's path.
func (k *Keyring) Path() string { return k.path }

// Create adds a new key with fresh random material and returns its public
// view. alias may be "" for none; otherwise it must be "alias/" followed by 1
// to 250 of [A-Za-z0-9/_-], must not start with "alias/aws/" (reserved by KMS
// for AWS managed keys), and must not be taken (ErrAliasExists).
func (k *Keyring) Create(alias, description string) (Key, error) {
	if alias != "" {
		if err := validateAlias(alias); err != nil {
			return Key{}, err
		}
	}
	if len(description) > maxDescription || !utf8.ValidString(description) {
		return Key{}, fmt.Errorf("keyring: description must be valid UTF-8 of at most %d bytes", maxDescription)
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	dir := filepath.Dir(k.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, fmt.Errorf("keyring: creating directory for %s: %w", k.path, err)
	}
	unlock, err := lockFile(k.path + ".lock")
	if err != nil {
		return Key{}, fmt.Errorf("keyring: locking %s: %w", k.path, err)
	}
	defer unlock()

	// Re-read under the lock: another process may have added keys (or taken
	// the alias) since this Keyring last looked.
	st, err := readState(k.path)
	if err != nil {
		return Key{}, err
	}
	if alias != "" && st.byAlias[alias] != nil {
		return Key{}, fmt.Errorf("%w: %s", ErrAliasExists, alias)
	}
	e := &entry{
		Key: Key{
			Alias:       alias,
			Description: description,
			CreatedAt:   time.Now().UTC().Truncate(time.Second),
		},
		material: make(secret, materialSize),
	}
	rand.Read(e.material) // never fails (crypto/rand panics rather than return short)
	for e.ID == "" || st.byID[e.ID] != nil {
		e.ID = newUUID()
	}
	next := &state{
		keys:    append(st.keys[:len(st.keys):len(st.keys)], e),
		byID:    st.byID,
		byAlias: st.byAlias,
	}
	next.byID[e.ID] = e
	if alias != "" {
		next.byAlias[alias] = e
	}
	if err := writeState(k.path, next); err != nil {
		return Key{}, err
	}
	k.st = next
	return e.Key, nil
}

// List returns every key in creation order. It re-reads the file first, so it
// includes keys other processes created.
func (k *Keyring) List() ([]Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(); err != nil {
		return nil, err
	}
	keys := make([]Key, len(k.st.keys))
	for i, e := range k.st.keys {
		keys[i] = e.Key
	}
	return keys, nil
}

// Lookup resolves a key id, key ARN, alias name or alias ARN (see the package
// documentation) to its key. A miss re-reads the file before failing with
// ErrUnknownKey, so keys created by another process are found.
func (k *Keyring) Lookup(ref string) (Key, error) {
	e, err := k.resolve(ref)
	if err != nil {
		return Key{}, err
	}
	return e.Key, nil
}

// refKind says which index a parsed reference is looked up in.
type refKind int

const (
	refID refKind = iota
	refAlias
)

// resolve is Lookup returning the entry with its material.
func (k *Keyring) resolve(ref string) (*entry, error) {
	kind, name, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if e := k.st.find(kind, name); e != nil {
		return e, nil
	}
	if err := k.reloadLocked(); err != nil {
		return nil, err
	}
	if e := k.st.find(kind, name); e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("%w: %q in %s", ErrUnknownKey, ref, k.path)
}

func (st *state) find(kind refKind, name string) *entry {
	if kind == refAlias {
		return st.byAlias[name]
	}
	return st.byID[name]
}

// reloadLocked replaces the in-memory keys with the file's. The file is the
// truth: keys are only ever added to it, so nothing a caller holds goes stale.
func (k *Keyring) reloadLocked() error {
	st, err := readState(k.path)
	if err != nil {
		return err
	}
	k.st = st
	return nil
}

// parseRef classifies a key reference and extracts the id (lowercased) or the
// alias name ("alias/..."), checking its syntax so that garbage never reaches
// the indexes (nor, via an encrypted file's header, an alias lookup).
func parseRef(ref string) (refKind, string, error) {
	bad := func(why string) (refKind, string, error) {
		return 0, "", fmt.Errorf("%w: %q is %s", ErrUnknownKey, ref, why)
	}
	name := ref
	if strings.HasPrefix(ref, "arn:") {
		// arn:<partition>:kms:<region>:<account>:key/<id> or .../alias/<name>
		parts := strings.SplitN(ref, ":", 6)
		if len(parts) != 6 || parts[1] == "" || parts[2] != "kms" || parts[3] == "" || parts[4] == "" {
			return bad("not a KMS key or alias ARN")
		}
		name = parts[5]
		if id, ok := strings.CutPrefix(name, "key/"); ok {
			name = id
		} else if !strings.HasPrefix(name, "alias/") {
			return bad("not a KMS key or alias ARN")
		}
	}
	if strings.HasPrefix(name, "alias/") {
		if err := checkAliasSyntax(name); err != nil {
			return bad("not a valid alias")
		}
		return refAlias, name, nil
	}
	name = strings.ToLower(name)
	if !validUUID(name) {
		return bad("not a key id, key ARN, alias name or alias ARN")
	}
	return refID, name, nil
}

// validateAlias checks an alias for Create.
func validateAlias(alias string) error {
	if err := checkAliasSyntax(alias); err != nil {
		return err
	}
	if strings.HasPrefix(alias, "alias/aws/") {
		return fmt.Errorf("%w: %q: the alias/aws/ prefix is reserved for AWS managed keys", ErrInvalidAlias, alias)
	}
	return nil
}

func checkAliasSyntax(alias string) error {
	name, ok := strings.CutPrefix(alias, "alias/")
	if !ok || len(name) < 1 || len(name) > maxAliasName {
		return fmt.Errorf("%w: %q: must be alias/ followed by 1 to %d characters", ErrInvalidAlias, alias, maxAliasName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q: only letters, digits, '/', '_' and '-' may follow alias/", ErrInvalidAlias, alias)
		}
	}
	return nil
}

// newUUID returns a random (version 4) UUID in the lowercase form KMS uses for
// key ids.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	const hexdigits = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexdigits[c>>4], hexdigits[c&0x0f])
	}
	return string(out)
}

// validUUID reports whether s is a UUID in 8-4-4-4-12 lowercase hex form. The
// version bits are not checked: any such id is a plausible KMS key id.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// fileFormat and fileKey are the keyring file's JSON (see doc.go).
type fileFormat struct {
	Version int       `json:"version"`
	Keys    []fileKey `json:"keys"`
}

type fileKey struct {
	ID          string    `json:"id"`
	Alias       string    `json:"alias,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	Material    string    `json:"material"`
}

// readState parses and checks the keyring file; a missing (or empty) file is
// an empty keyring. Errors name the file and the key but never the material.
func readState(path string) (*state, error) {
	st := &state{byID: map[string]*entry{}, byAlias: map[string]*entry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(bytes.TrimSpace(data)) == 0 {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: reading %s: %w", path, err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("keyring: %s is not a valid keyring file: %w", path, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("keyring: %s has unsupported version %d (want %d)", path, f.Version, fileVersion)
	}
	for i, fk := range f.Keys {
		bad := func(format string, args ...any) (*state, error) {
			return nil, fmt.Errorf("keyring: %s: key %d (%q): %s", path, i, fk.ID, fmt.Sprintf(format, args...))
		}
		if !validUUID(fk.ID) {
			return bad("id is not a lowercase UUID")
		}
		if st.byID[fk.ID] != nil {
			return bad("duplicate id")
		}
		if fk.Alias != "" {
			if err := validateAlias(fk.Alias); err != nil {
				return bad("%v", err)
			}
			if st.byAlias[fk.Alias] != nil {
				return bad("duplicate alias %s", fk.Alias)
			}
		}
		material, err := base64.StdEncoding.DecodeString(fk.Material)
		if err != nil || len(material) != materialSize {
			return bad("material is not %d bytes of base64", materialSize)
		}
		e := &entry{
			Key:      Key{ID: fk.ID, Alias: fk.Alias, Description: fk.Description, CreatedAt: fk.CreatedAt},
			material: material,
		}
		st.keys = append(st.keys, e)
		st.byID[e.ID] = e
		if e.Alias != "" {
			st.byAlias[e.Alias] = e
		}
	}
	return st, nil
}

// writeState replaces the keyring file atomically with st, mode 0600.
func writeState(path string, st *state) (err error) {
	f := fileFormat{Version: fileVersion, Keys: make([]fileKey, len(st.keys))}
	for i, e := range st.keys {
		f.Keys[i] = fileKey{
			ID:          e.ID,
			Alias:       e.Alias,
			Description: e.Description,
			CreatedAt:   e.CreatedAt,
			Material:    base64.StdEncoding.EncodeToString(e.material),
		}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("keyring: encoding %s: %w", path, err)
	}
	data = append(data, '\n')
	if err := writeFileAtomic(path, 0o600, func(w *os.File) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		return fmt.Errorf("keyring: writing %s: %w", path, err)
	}
	return nil
}
