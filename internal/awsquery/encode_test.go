package awsquery_test

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoardcache/hoard/internal/awsquery"
	"github.com/hoardcache/hoard/internal/ecapi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// encode returns the XML EncodeFields writes for v.
func encode(v any) []byte {
	var b bytes.Buffer
	awsquery.EncodeFields(&b, v)
	return b.Bytes()
}

// checkGolden compares got with testdata/name.golden, which holds the exact bytes
// EncodeFields writes (no trailing newline). With -update it rewrites the file.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("EncodeFields output differs from %s\n got: %s\nwant: %s", path, got, want)
	}
}

// wellFormed parses doc (wrapped in one root element) with encoding/xml.
func wellFormed(t *testing.T, doc []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(append(append([]byte("<Result>"), doc...), "</Result>"...)))
	for {
		_, err := d.Token()
		if err != nil {
			if err == io.EOF {
				return
			}
			t.Fatalf("encoded XML is not well-formed: %v\n%s", err, doc)
		}
	}
}

// est is a non-UTC zone, so that the tests see timestamps converted to UTC.
var est = time.FixedZone("EST", -5*60*60)

func engineDefaults() *ecapi.EngineDefaults {
	return &ecapi.EngineDefaults{
		CacheParameterGroupFamily: "redis7",
		Marker:                    "next-page",
		Parameters: []ecapi.Parameter{
			{
				ParameterName: "maxmemory-policy", ParameterValue: "volatile-lru",
				Description: "Max memory policy.", Source: "system", DataType: "string",
				AllowedValues: "volatile-lru,allkeys-lru,volatile-lfu,allkeys-lfu,volatile-random,allkeys-random,volatile-ttl,noeviction",
				IsModifiable:  true, MinimumEngineVersion: "7.0.0", ChangeType: "immediate",
			},
			{
				ParameterName: "lua-time-limit", ParameterValue: "5000",
				Description: "Max execution time of a Lua script in milliseconds. 0 for unlimited execution without warnings.",
				Source:      "system", DataType: "integer", AllowedValues: "5000",
				IsModifiable: false, MinimumEngineVersion: "2.6.13", ChangeType: "immediate",
			},
		},
		CacheNodeTypeSpecificParameters: []ecapi.CacheNodeTypeSpecificParameter{
			{
				ParameterName: "maxmemory", Description: "The maximum configurable amount of memory to use to store items, in bytes.",
				Source: "system", DataType: "integer", AllowedValues: "0-",
				IsModifiable: false, MinimumEngineVersion: "7.0.0", ChangeType: "immediate",
				CacheNodeTypeSpecificValues: []ecapi.CacheNodeTypeSpecificValue{
					{CacheNodeType: "cache.t4g.micro", Value: "456130560"},
					{CacheNodeType: "cache.r7g.large", Value: "14037181030"},
				},
			},
			{
				ParameterName: "empty-values", DataType: "integer", IsModifiable: true,
				CacheNodeTypeSpecificValues: []ecapi.CacheNodeTypeSpecificValue{},
			},
		},
	}
}

func TestEncodeGolden(t *testing.T) {
	cases := []struct {
		name string
		v    any
	}{
		{"cache_parameter_groups", &ecapi.CacheParameterGroupsMessage{
			Marker: "m-1",
			CacheParameterGroups: []ecapi.CacheParameterGroup{
				{CacheParameterGroupName: "default.redis7", CacheParameterGroupFamily: "redis7",
					Description: "Default parameter group for redis7", IsGlobal: false,
					ARN: "arn:aws:elasticache:us-east-1:123456789012:parametergroup:default.redis7"},
				{CacheParameterGroupName: "global-pg", CacheParameterGroupFamily: "redis7",
					IsGlobal: true, ARN: "arn:aws:elasticache:us-east-1:123456789012:parametergroup:global-pg"},
			},
		}},
		// A value, not a pointer, works the same.
		{"cache_parameter_group_value", ecapi.CacheParameterGroup{CacheParameterGroupName: "pg"}},
		{"tag_list_empty", &ecapi.TagListMessage{TagList: []ecapi.Tag{}}},
		{"tag_list_nil", &ecapi.TagListMessage{}},
		{"tag_list", &ecapi.TagListMessage{TagList: []ecapi.Tag{{Key: "env", Value: "prod"}, {Key: "empty-value"}}}},
		{"engine_defaults", engineDefaults()},
		{"events_timestamps", &ecapi.EventsMessage{Events: []ecapi.Event{
			{SourceIdentifier: "pg", SourceType: "cache-parameter-group", Message: "created",
				// 22:04:05.123456789 EST is 03:04:05.123 UTC the next day; sub-millisecond digits are cut.
				Date: time.Date(2026, 1, 1, 22, 4, 5, 123456789, est)},
			{SourceIdentifier: "whole-second", Date: time.Date(2026, 7, 4, 12, 0, 0, 0, time.UTC)},
			{SourceIdentifier: "zero-time-absent"},
		}}},
		{"serverless_cache", &ecapi.ServerlessCache{
			ServerlessCacheName: "sc", CreateTime: time.Date(2026, 2, 3, 4, 5, 6, 7e6, time.UTC),
			Status: "available", Engine: "valkey",
			CacheUsageLimits: &ecapi.CacheUsageLimits{
				DataStorage:   &ecapi.DataStorage{Maximum: ptr(int32(10)), Unit: "GB"},
				ECPUPerSecond: &ecapi.ECPUPerSecond{Minimum: ptr(int32(0))},
			},
			SecurityGroupIds:       []string{"sg-1", "sg-2"},
			Endpoint:               &ecapi.Endpoint{Address: "sc.serverless.use1.cache.amazonaws.com", Port: 6379},
			ReaderEndpoint:         &ecapi.Endpoint{},
			SnapshotRetentionLimit: ptr(int32(0)),
		}},
		{"reserved_node_floats", &ecapi.ReservedCacheNode{
			ReservedCacheNodeId: "r1", FixedPrice: ptr(1234.5), UsagePrice: ptr(0.0),
			RecurringCharges: []ecapi.RecurringCharge{{RecurringChargeAmount: ptr(0.25), RecurringChargeFrequency: "Hourly"}},
		}},
		{"escaping", &ecapi.Tag{
			Key:   `a&b<c>d"e'f]]>`,
			Value: "nul\x00 bel\x07 esc\x1b us\x1f tab\t lf\n cr\r del\x7f bad\xff\xfe fffe\uFFFE ffff\uFFFF fffd\uFFFD surrogate\xed\xa0\x80 é 日本 😀",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := encode(tc.v)
			checkGolden(t, tc.name, got)
			wellFormed(t, got)
		})
	}
}

// TestEncodeSpecifics states the properties the golden files show, so that a
// wrong -update cannot silently bless a regression.
func TestEncodeSpecifics(t *testing.T) {
	contains := func(t *testing.T, got []byte, want ...string) {
		t.Helper()
		for _, w := range want {
			if !bytes.Contains(got, []byte(w)) {
				t.Errorf("output does not contain %s\n%s", w, got)
			}
		}
	}
	t.Run("false booleans are written", func(t *testing.T) {
		got := encode(&ecapi.CacheParameterGroupsMessage{CacheParameterGroups: []ecapi.CacheParameterGroup{{CacheParameterGroupName: "a"}, {IsGlobal: true}}})
		want := "<CacheParameterGroups><CacheParameterGroup><CacheParameterGroupName>a</CacheParameterGroupName><IsGlobal>false</IsGlobal></CacheParameterGroup>" +
			"<CacheParameterGroup><IsGlobal>true</IsGlobal></CacheParameterGroup></CacheParameterGroups>"
		if string(got) != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	})
	t.Run("empty list written, nil list absent", func(t *testing.T) {
		if got := encode(&ecapi.TagListMessage{TagList: []ecapi.Tag{}}); string(got) != "<TagList></TagList>" {
			t.Errorf("empty list: got %q", got)
		}
		if got := encode(&ecapi.TagListMessage{}); len(got) != 0 {
			t.Errorf("nil list: got %q, want nothing", got)
		}
	})
	t.Run("nil pointer writes nothing", func(t *testing.T) {
		if got := encode((*ecapi.TagListMessage)(nil)); len(got) != 0 {
			t.Errorf("got %q", got)
		}
		var pp **ecapi.Tag
		if got := encode(pp); len(got) != 0 {
			t.Errorf("got %q", got)
		}
	})
	t.Run("nested list item names", func(t *testing.T) {
		contains(t, encode(engineDefaults()),
			"<Parameters><Parameter><ParameterName>maxmemory-policy</ParameterName>",
			"<CacheNodeTypeSpecificParameters><CacheNodeTypeSpecificParameter><ParameterName>maxmemory</ParameterName>",
			"<CacheNodeTypeSpecificValues><CacheNodeTypeSpecificValue><CacheNodeType>cache.t4g.micro</CacheNodeType><Value>456130560</Value></CacheNodeTypeSpecificValue>",
			"<IsModifiable>false</IsModifiable>",
			"<CacheNodeTypeSpecificValues></CacheNodeTypeSpecificValues>")
	})
	t.Run("timestamps in UTC with milliseconds", func(t *testing.T) {
		in := time.Date(2026, 1, 1, 22, 4, 5, 123999999, est)
		got := string(encode(&ecapi.Event{Date: in}))
		if want := "<Date>2026-01-02T03:04:05.123Z</Date>"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		if got := awsquery.FormatTime(in); got != "2026-01-02T03:04:05.123Z" {
			t.Errorf("FormatTime: got %s", got)
		}
		if got := string(encode(&ecapi.Event{SourceIdentifier: "x"})); strings.Contains(got, "Date") {
			t.Errorf("zero time written: %s", got)
		}
	})
	t.Run("timestamps parse back", func(t *testing.T) {
		in := time.Date(2026, 1, 1, 22, 4, 5, 123999999, est)
		back, err := awsquery.ParseTime(awsquery.FormatTime(in))
		if err != nil || !back.Equal(in.Truncate(time.Millisecond)) {
			t.Errorf("ParseTime(FormatTime(%v)) = %v, %v", in, back, err)
		}
	})
	t.Run("escaping", func(t *testing.T) {
		for in, want := range map[string]string{
			`&`:  "&amp;",
			`<`:  "&lt;",
			`>`:  "&gt;",
			`"`:  "&quot;",
			`'`:  "&apos;",
			"\r": "&#xD;", // kept: a raw CR would be normalised away by parsers
			"\t": "\t",
			"\n": "\n",
			// Characters XML 1.0 cannot carry become U+FFFD.
			"\x00":         "\uFFFD",
			"\x08":         "\uFFFD",
			"\x1f":         "\uFFFD",
			"\xff":         "\uFFFD",
			"\uFFFE":       "\uFFFD",
			"\uFFFF":       "\uFFFD",
			"\xed\xa0\x80": "\uFFFD\uFFFD\uFFFD", // an encoded surrogate is three invalid bytes
			// Legal characters pass through.
			"\uFFFD":     "\uFFFD",
			"\x7f":       "\x7f",
			"\u0085":     "\u0085",
			"😀":          "😀",
			"a&&b":       "a&amp;&amp;b",
			"plain text": "plain text",
			"":           "",
		} {
			var b bytes.Buffer
			awsquery.Escape(&b, in)
			if b.String() != want {
				t.Errorf("Escape(%q) = %q, want %q", in, b.String(), want)
			}
		}
	})
	t.Run("empty strings absent", func(t *testing.T) {
		if got := encode(&ecapi.Tag{}); len(got) != 0 {
			t.Errorf("got %q", got)
		}
	})
}

// Found: EncodeFields dropped empty strings that are list items, not only empty
// string fields: []string{"a", "", "b"} is written with two members, so the client
// sees a list of a different length. The decoder keeps such items
// (TagKeys.member.1= gives ""), so the codec is not symmetric.
func TestEncodeEmptyStringListItem(t *testing.T) {
	got := string(encode(&ecapi.ServerlessCache{SecurityGroupIds: []string{"a", "", "b"}}))
	want := "<SecurityGroupIds><SecurityGroupId>a</SecurityGroupId><SecurityGroupId></SecurityGroupId><SecurityGroupId>b</SecurityGroupId></SecurityGroupIds>"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
