package service

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoardcache/hoard/internal/store"
)

func TestSnapshotWindowDay(t *testing.T) {
	at := func(hhmm string) time.Time {
		tm, _ := time.Parse("2006-01-02 15:04", "2026-03-10 "+hhmm)
		return tm
	}
	cases := []struct {
		window, now, day string
		in               bool
	}{
		{"05:00-06:00", "05:30", "2026-03-10", true},
		{"05:00-06:00", "06:00", "", false},
		{"05:00-06:00", "04:59", "", false},
		{"23:00-01:00", "23:30", "2026-03-10", true},
		{"23:00-01:00", "00:30", "2026-03-09", true}, // the window opened yesterday
		{"23:00-01:00", "01:30", "", false},
		{"bogus", "05:30", "", false},
	}
	for _, c := range cases {
		day, in := snapshotWindowDay(c.window, at(c.now))
		if in != c.in || day != c.day {
			t.Errorf("snapshotWindowDay(%s, %s) = %q %v, want %q %v", c.window, c.now, day, in, c.day, c.in)
		}
	}
}

// Automated snapshots older than the retention limit, and those of clusters that
// are gone, are deleted with their files; recent ones and manual ones stay.
func TestAutomatedSnapshotsArePrunedByRetention(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "hoard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	s := New(st, Config{DataDir: dir, Now: func() time.Time { return now }})
	// The cluster keeps its snapshots 2 days; its window is not now, so no new backup starts.
	cl := &cluster{Account: "123456789012", Region: "us-east-1", ID: "keep2", Engine: "redis", Status: statusAvailable,
		SnapshotRetentionLimit: 2, SnapshotWindow: "03:00-04:00"}
	snaps := []*snapshot{
		{Name: "automatic.keep2-old", ClusterID: "keep2", Source: sourceAutomated, CreatedAt: now.Add(-72 * time.Hour)},
		{Name: "automatic.keep2-new", ClusterID: "keep2", Source: sourceAutomated, CreatedAt: now.Add(-24 * time.Hour)},
		{Name: "manual-old", ClusterID: "keep2", Source: sourceManual, CreatedAt: now.Add(-720 * time.Hour)},
		{Name: "automatic.gone-new", ClusterID: "gone", Source: sourceAutomated, CreatedAt: now.Add(-time.Hour)},
	}
	err = st.Update(func(tx *store.Tx) error {
		if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
			return err
		}
		for _, sn := range snaps {
			sn.Account, sn.Region, sn.Status = cl.Account, cl.Region, snapshotAvailable
			if err := os.MkdirAll(s.snapshotDir(sn), 0o700); err != nil {
				return err
			}
			if err := tx.Put(tableSnapshots, sn.key(), sn); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.autoBackups(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"automatic.keep2-old": false, "automatic.keep2-new": true, "manual-old": true, "automatic.gone-new": false}
	_ = st.View(func(tx *store.Tx) error {
		for _, sn := range snaps {
			kept := tx.Has(tableSnapshots, sn.key())
			_, statErr := os.Stat(s.snapshotDir(sn))
			if kept != want[sn.Name] || (statErr == nil) != want[sn.Name] {
				t.Errorf("%s: record kept %v, files kept %v; want %v", sn.Name, kept, statErr == nil, want[sn.Name])
			}
		}
		return nil
	})
}
