package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestPutGetScanDelete(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "hoard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type rec struct{ N int }
	err = s.Update(func(tx *Tx) error {
		for _, k := range []string{"a/2", "a/1", "b/1", "a/3"} {
			if err := tx.Put("t", k, rec{N: len(k)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A failed transaction leaves nothing behind.
	boom := errors.New("boom")
	if err := s.Update(func(tx *Tx) error { _ = tx.Put("t", "a/9", rec{}); return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update returned %v", err)
	}
	_ = s.View(func(tx *Tx) error {
		var keys []string
		_ = tx.Scan("t", "a/", func(k string, _ []byte) error { keys = append(keys, k); return nil })
		if len(keys) != 3 || keys[0] != "a/1" || keys[2] != "a/3" {
			t.Errorf("scan a/: %v", keys)
		}
		if tx.Count("t", "") != 4 || tx.Has("t", "a/9") {
			t.Errorf("count %d, rolled-back key present: %v", tx.Count("t", ""), tx.Has("t", "a/9"))
		}
		var r rec
		if err := tx.Get("t", "nope", &r); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get of a missing key: %v", err)
		}
		if err := tx.Get("missing-table", "x", &r); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get from a missing table: %v", err)
		}
		recs, err := ScanAs[rec](tx, "t", "b/")
		if err != nil || len(recs) != 1 || recs[0].N != 3 {
			t.Errorf("ScanAs: %v %v", recs, err)
		}
		return nil
	})
	if err := s.Update(func(tx *Tx) error { return tx.Delete("t", "a/1") }); err != nil {
		t.Fatal(err)
	}
	_ = s.View(func(tx *Tx) error {
		if tx.Has("t", "a/1") {
			t.Error("deleted key still present")
		}
		return nil
	})
}

// A second process (here: a second Open) cannot open the same database: the data
// dir belongs to one hoard at a time.
func TestOpenIsExclusive(t *testing.T) {
	defer func(old time.Duration) { OpenTimeout = old }(OpenTimeout)
	OpenTimeout = 200 * time.Millisecond
	path := filepath.Join(t.TempDir(), "hoard.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := Open(path); err == nil {
		s2.Close()
		t.Fatal("a second Open of the same file succeeded")
	}
}
