package service

import (
	"fmt"
	"testing"

	"github.com/hoardcache/hoard/internal/apierr"
	"github.com/hoardcache/hoard/internal/ecapi"
)

func TestValidateName(t *testing.T) {
	cases := map[string]bool{
		"a": true, "my-group-1": true, "A1": true,
		"": false, "1a": false, "-a": false, "a-": false, "a--b": false, "a.b": false, "a_b": false, "a b": false,
	}
	for name, ok := range cases {
		err := validateName("CacheParameterGroupName", name, 255)
		if (err == nil) != ok {
			t.Errorf("validateName(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && !ecapi.InvalidParameterValueException.Is(err) {
			t.Errorf("validateName(%q) gave %v, want InvalidParameterValue", name, err)
		}
	}
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'a'
	}
	if validateName("X", string(long), 255) == nil || validateName("X", string(long[:255]), 255) != nil {
		t.Error("the length limit is 255 characters")
	}
}

func int32p(v int32) *int32 { return &v }

func TestPage(t *testing.T) {
	// Walk 250 items 20 at a time: every item once, in order, the last marker empty.
	next, seen := "", 0
	for pages := 1; ; pages++ {
		start, end, marker, err := page(int32p(20), next, 250)
		if err != nil {
			t.Fatal(err)
		}
		if start != seen || end-start > 20 {
			t.Fatalf("page %d is [%d,%d) after %d items", pages, start, end, seen)
		}
		seen = end
		if marker == "" {
			if seen != 250 || pages != 13 {
				t.Fatalf("ended after %d items in %d pages", seen, pages)
			}
			break
		}
		next = marker
	}
	if start, end, marker, err := page(nil, "", 30); err != nil || start != 0 || end != 30 || marker != "" {
		t.Errorf("default page size: [%d,%d) %q %v", start, end, marker, err)
	}
	for _, bad := range []*int32{int32p(19), int32p(101), int32p(0), int32p(-5)} {
		if _, _, _, err := page(bad, "", 10); !apierr.InvalidParameterValue.Is(err) {
			t.Errorf("MaxRecords %d: %v", *bad, err)
		}
	}
	for _, bad := range []string{"garbage", encodeMarker(11), "b2Zmc2V0Oi0x"} {
		if _, _, _, err := page(nil, bad, 10); !apierr.InvalidParameterValue.Is(err) {
			t.Errorf("marker %q: %v", bad, err)
		}
	}
}

func TestSplitPage(t *testing.T) {
	params := make([]ecapi.Parameter, 5)
	nodeParams := make([]ecapi.CacheNodeTypeSpecificParameter, 3)
	cases := []struct{ start, end, plain, nodeType int }{
		{0, 5, 5, 0}, {0, 8, 5, 3}, {3, 7, 2, 2}, {5, 8, 0, 3}, {6, 8, 0, 2}, {0, 2, 2, 0},
	}
	for _, c := range cases {
		p, n := splitPage(params, nodeParams, c.start, c.end)
		if len(p) != c.plain || len(n) != c.nodeType || p == nil || n == nil {
			t.Errorf("splitPage(%d,%d) = %d+%d, want %d+%d (non-nil)", c.start, c.end, len(p), len(n), c.plain, c.nodeType)
		}
	}
}

func TestVersions(t *testing.T) {
	if compareVersions("7.0.15", "7.0.9") <= 0 || compareVersions("6.2", "6.2.0") != 0 || compareVersions("1.4.5", "1.6.18") >= 0 {
		t.Error("compareVersions orders components numerically")
	}
	for _, c := range []struct {
		req, installed string
		ok             bool
	}{{"7.0.15", "7.0.15", true}, {"7.0", "7.0.15", true}, {"7", "7.0.15", true}, {"7.0.1", "7.0.15", false}, {"70", "7.0.15", false}} {
		if versionMatches(c.req, c.installed) != c.ok {
			t.Errorf("versionMatches(%s, %s) != %v", c.req, c.installed, c.ok)
		}
	}
}

// Markers of changing lists survive deletions: the next page starts after the last
// key returned, wherever that now is.
func TestPageByKeySurvivesDeletions(t *testing.T) {
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = fmt.Sprintf("c%03d", i)
	}
	_, end, marker, err := pageByKey(int32p(20), "", keys)
	if err != nil || end != 20 || marker == "" {
		t.Fatalf("first page: %d %q %v", end, marker, err)
	}
	// Ten earlier items, and the last one returned, are deleted before the next call.
	shrunk := append([]string(nil), keys[11:19]...)
	shrunk = append(shrunk, keys[20:]...)
	start, end, _, err := pageByKey(int32p(20), marker, shrunk)
	if err != nil || shrunk[start] != "c020" || end-start != 20 {
		t.Fatalf("after deletions the next page starts at %s (%d..%d), %v", shrunk[start], start, end, err)
	}
	// Newest-first lists page the same way.
	desc := []string{"e9", "e8", "e7", "e6", "e5", "e4", "e3", "e2", "e1", "e0", "d9", "d8", "d7", "d6", "d5", "d4", "d3", "d2", "d1", "d0", "c9"}
	_, _, marker, _ = pageByKey(int32p(20), "", desc)
	if start, _, _, _ := pageByKey(int32p(20), marker, desc); desc[start] != "c9" {
		t.Fatalf("descending next page starts at %s", desc[start])
	}
	if _, _, _, err := pageByKey(nil, "bm9wZQ", keys); !apierr.InvalidParameterValue.Is(err) {
		t.Fatalf("a foreign marker: %v", err)
	}
}
