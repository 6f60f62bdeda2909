package keyring

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTemp(t *testing.T) (*Keyring, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyring.json")
	k, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return k, path
}

func mustCreate(t *testing.T, k *Keyring, alias, desc string) Key {
	t.Helper()
	key, err := k.Create(alias, desc)
	if err != nil {
		t.Fatalf("Create(%q): %v", alias, err)
	}
	return key
}

func TestOpenMissingFileIsEmpty(t *testing.T) {
	k, path := openTemp(t)
	keys, err := k.List()
	if err != nil || len(keys) != 0 {
		t.Fatalf("List = %v, %v; want empty", keys, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open or List created the file: %v", err)
	}
}

func TestCreateListLookup(t *testing.T) {
	k, path := openTemp(t)
	a := mustCreate(t, k, "alias/snapshots", "nightly snapshots")
	b := mustCreate(t, k, "", "no alias")
	if !validUUID(a.ID) || a.ID[14] != '4' || !strings.ContainsRune("89ab", rune(a.ID[19])) {
		t.Errorf("id %q is not a version 4 UUID", a.ID)
	}
	if a.ID == b.ID {
		t.Fatal("two keys got the same id")
	}
	if a.Alias != "alias/snapshots" || a.Description != "nightly snapshots" || a.CreatedAt.IsZero() {
		t.Errorf("created key = %+v", a)
	}

	keys, err := k.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != a || keys[1] != b {
		t.Fatalf("List = %+v; want [%+v %+v] in creation order", keys, a, b)
	}

	for _, ref := range []string{
		a.ID,
		strings.ToUpper(a.ID),
		"arn:aws:kms:us-east-1:123456789012:key/" + a.ID,
		"arn:aws-cn:kms:cn-north-1:000000000000:key/" + a.ID,
		a.ARN("eu-west-2", "111122223333"),
		"alias/snapshots",
		"arn:aws:kms:us-west-2:123456789012:alias/snapshots",
	} {
		got, err := k.Lookup(ref)
		if err != nil || got != a {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v", ref, got, err, a)
		}
	}
	if got, err := k.Lookup(b.ID); err != nil || got != b {
		t.Errorf("Lookup(%q) = %+v, %v", b.ID, got, err)
	}

	for _, ref := range []string{
		"",
		"alias/other",
		"Alias/snapshots",
		"alias/", // not even a valid alias
		"00000000-0000-4000-8000-000000000000",
		a.ID[:35],
		a.ID + "0",
		"arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-000000000000",
		"arn:aws:s3:us-east-1:123456789012:key/" + a.ID, // not kms
		"arn:aws:kms:us-east-1:123456789012:" + a.ID,    // no key/
		"arn:aws:kms:us-east-1::key/" + a.ID,            // no account
		"arn:aws:kms::123456789012:key/" + a.ID,         // no region
		"key/" + a.ID,
		"snapshots",
	} {
		if _, err := k.Lookup(ref); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("Lookup(%q) error = %v; want ErrUnknownKey", ref, err)
		}
	}
	_, err = k.Lookup("alias/other")
	if msg := fmt.Sprint(err); !strings.Contains(msg, `"alias/other"`) || !strings.Contains(msg, path) {
		t.Errorf("unknown-key error %q should name the reference and the keyring", msg)
	}
}

func TestAliasValidation(t *testing.T) {
	k, _ := openTemp(t)
	valid := []string{
		"alias/a",
		"alias/My_Key-1",
		"alias/team/prod/snapshots",
		"alias/aws", // only the alias/aws/ prefix is reserved
		"alias/" + strings.Repeat("x", 250),
	}
	for _, alias := range valid {
		if _, err := k.Create(alias, ""); err != nil {
			t.Errorf("Create(%q) = %v; want success", alias, err)
		}
	}
	invalid := []string{
		"alias/",
		"snapshots",
		"Alias/x",
		"alias/has space",
		"alias/dot.ted",
		"alias/colon:x",
		"alias/ünïcode",
		"alias/aws/ebs",
		"alias/" + strings.Repeat("x", 251),
	}
	for _, alias := range invalid {
		if _, err := k.Create(alias, ""); !errors.Is(err, ErrInvalidAlias) {
			t.Errorf("Create(%q) error = %v; want ErrInvalidAlias", alias, err)
		}
	}
	if _, err := k.Create("", strings.Repeat("d", maxDescription+1)); err == nil {
		t.Error("Create accepted an over-long description")
	}
	if _, err := k.Create("", "bad utf-8 \xff"); err == nil {
		t.Error("Create accepted a description that is not UTF-8")
	}
	keys, _ := k.List()
	if len(keys) != len(valid) {
		t.Errorf("keyring has %d keys; want %d (failed creates must add nothing)", len(keys), len(valid))
	}
}

func TestDuplicateAlias(t *testing.T) {
	k, path := openTemp(t)
	mustCreate(t, k, "alias/dup", "")
	if _, err := k.Create("alias/dup", ""); !errors.Is(err, ErrAliasExists) {
		t.Fatalf("second Create error = %v; want ErrAliasExists", err)
	}
	// The check also covers aliases another instance created meanwhile.
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, other, "alias/later", "")
	if _, err := k.Create("alias/later", ""); !errors.Is(err, ErrAliasExists) {
		t.Fatalf("Create of an alias another instance took: error = %v; want ErrAliasExists", err)
	}
}

func TestPersistenceAndFileMode(t *testing.T) {
	k, path := openTemp(t)
	a := mustCreate(t, k, "alias/one", "first")
	b := mustCreate(t, k, "", "")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring file mode = %v; want 0600", fi.Mode().Perm())
	}
	k2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := k2.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != a || keys[1] != b {
		t.Fatalf("reopened List = %+v; want [%+v %+v]", keys, a, b)
	}
	e1, _ := k.resolve(a.ID)
	e2, _ := k2.resolve(a.ID)
	if string(e1.material) != string(e2.material) || len(e2.material) != materialSize {
		t.Error("key material did not survive a reopen")
	}
	// No temporary files are left beside the keyring.
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, de := range entries {
		if de.Name() != "keyring.json" && de.Name() != "keyring.json.lock" {
			t.Errorf("stray file %s beside the keyring", de.Name())
		}
	}
}

func TestLookupReloadsOnMiss(t *testing.T) {
	_, path := openTemp(t)
	server, err := Open(path) // opened before the key exists
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	key := mustCreate(t, cli, "alias/from-cli", "")
	for _, ref := range []string{key.ID, "alias/from-cli"} {
		got, err := server.Lookup(ref)
		if err != nil || got != key {
			t.Errorf("server Lookup(%q) = %+v, %v; want the key the other instance created", ref, got, err)
		}
	}
	cli2, _ := Open(path)
	key2 := mustCreate(t, cli2, "", "")
	keys, err := server.List()
	if err != nil || len(keys) != 2 || keys[1] != key2 {
		t.Errorf("server List = %+v, %v; want both keys", keys, err)
	}
}

func TestMaterialNeverFormatted(t *testing.T) {
	k, _ := openTemp(t)
	key := mustCreate(t, k, "", "")
	e, _ := k.resolve(key.ID)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, e)
		if strings.Contains(out, fmt.Sprintf("%x", []byte(e.material))) || !strings.Contains(out, "[redacted]") {
			t.Errorf("Sprintf(%q, entry) = %q; material must be redacted", verb, out)
		}
		if out := fmt.Sprintf(verb, e.material); out != "[redacted]" {
			t.Errorf("Sprintf(%q, material) = %q; want [redacted]", verb, out)
		}
	}
}

func TestConcurrentCreatorsLoseNothing(t *testing.T) {
	_, path := openTemp(t)
	const instances, perInstance = 4, 8
	var wg sync.WaitGroup
	errs := make(chan error, instances*perInstance*2)
	for i := range instances {
		k, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perInstance {
				key, err := k.Create(fmt.Sprintf("alias/k%d-%d", i, j), "")
				if err != nil {
					errs <- err
					continue
				}
				if _, err := k.Lookup(key.ID); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	k, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := k.List()
	if len(keys) != instances*perInstance {
		t.Fatalf("keyring has %d keys after concurrent creates; want %d", len(keys), instances*perInstance)
	}
}

func TestOpenRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := fileKey{ID: "1234abcd-12ab-44cd-96ef-1234567890ab", Material: strings.Repeat("A", 43) + "="}
	cases := map[string]any{
		"not json":          "{",
		"wrong version":     fileFormat{Version: 2},
		"bad id":            fileFormat{Version: 1, Keys: []fileKey{{ID: "nope", Material: good.Material}}},
		"duplicate id":      fileFormat{Version: 1, Keys: []fileKey{good, good}},
		"short material":    fileFormat{Version: 1, Keys: []fileKey{{ID: good.ID, Material: "AAAA"}}},
		"material not b64":  fileFormat{Version: 1, Keys: []fileKey{{ID: good.ID, Material: strings.Repeat("!", 44)}}},
		"reserved alias":    fileFormat{Version: 1, Keys: []fileKey{{ID: good.ID, Alias: "alias/aws/x", Material: good.Material}}},
		"duplicate aliases": fileFormat{Version: 1, Keys: []fileKey{{ID: good.ID, Alias: "alias/a", Material: good.Material}, {ID: "2234abcd-12ab-44cd-96ef-1234567890ab", Alias: "alias/a", Material: good.Material}}},
	}
	for name, c := range cases {
		var data []byte
		if s, ok := c.(string); ok {
			data = []byte(s)
		} else {
			data, _ = json.Marshal(c)
		}
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Open error = %v; want an error naming the file", name, err)
		} else if strings.Contains(err.Error(), "AAAA") {
			t.Errorf("%s: error %q leaks material", name, err)
		}
	}
	path := filepath.Join(dir, "good")
	data, _ := json.Marshal(fileFormat{Version: 1, Keys: []fileKey{good}})
	os.WriteFile(path, data, 0o600)
	if _, err := Open(path); err != nil {
		t.Errorf("Open of a valid hand-written file: %v", err)
	}
}
