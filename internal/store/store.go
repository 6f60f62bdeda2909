// Package store is hoard's durable metadata: JSON records in named tables, kept in
// one bbolt file. Every Update is one transaction that is fsynced before it
// returns, so whatever a caller acknowledged survives a kill -9.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store is an open metadata database.
type Store struct {
	db *bolt.DB
}

// OpenTimeout is how long Open waits for another process holding the file to let go.
var OpenTimeout = 5 * time.Second

// Open opens (creating if needed) the database file at path. Only one process can
// hold it: Open fails after OpenTimeout when another one does.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: OpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("open metadata store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close releases the database.
func (s *Store) Close() error { return s.db.Close() }

// Tx is a transaction over the tables.
type Tx struct {
	btx *bolt.Tx
}

// Update runs fn in one read-write transaction; it is durable when Update returns nil.
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(btx *bolt.Tx) error { return fn(&Tx{btx}) })
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(btx *bolt.Tx) error { return fn(&Tx{btx}) })
}

// ErrNotFound is returned by Get when the key is absent.
var ErrNotFound = errors.New("not found")

// Get decodes the record at table/key into v.
func (tx *Tx) Get(table, key string, v any) error {
	b := tx.btx.Bucket([]byte(table))
	if b == nil {
		return ErrNotFound
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return ErrNotFound
	}
	return json.Unmarshal(raw, v)
}

// Has reports whether table/key holds a record.
func (tx *Tx) Has(table, key string) bool {
	b := tx.btx.Bucket([]byte(table))
	return b != nil && b.Get([]byte(key)) != nil
}

// Put stores v at table/key.
func (tx *Tx) Put(table, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b, err := tx.btx.CreateBucketIfNotExists([]byte(table))
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// Delete removes table/key; removing an absent key is not an error.
func (tx *Tx) Delete(table, key string) error {
	b := tx.btx.Bucket([]byte(table))
	if b == nil {
		return nil
	}
	return b.Delete([]byte(key))
}

// Scan calls fn for every record of table whose key starts with prefix, in key order.
func (tx *Tx) Scan(table, prefix string, fn func(key string, raw []byte) error) error {
	b := tx.btx.Bucket([]byte(table))
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
	return nil
}

// Count returns how many records of table have keys starting with prefix.
func (tx *Tx) Count(table, prefix string) int {
	n := 0
	_ = tx.Scan(table, prefix, func(string, []byte) error { n++; return nil })
	return n
}

// ScanAs decodes every record of table under prefix as a T, in key order.
func ScanAs[T any](tx *Tx, table, prefix string) ([]T, error) {
	var out []T
	err := tx.Scan(table, prefix, func(key string, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%s/%s: %w", table, key, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}
