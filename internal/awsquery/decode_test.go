package awsquery_test

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoardcache/hoard/internal/apierr"
	"github.com/hoardcache/hoard/internal/awsquery"
	"github.com/hoardcache/hoard/internal/ecapi"
)

func ptr[T any](v T) *T { return &v }

// form parses a raw query string the way the server does (url.ParseQuery).
func form(t testing.TB, raw string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("url.ParseQuery(%q): %v", raw, err)
	}
	return v
}

// decodeCase decodes query into a fresh value from newV and checks either the
// decoded value (want) or the error's wire code (code) and that its message
// mentions every string of msg.
type decodeCase struct {
	name  string
	query string
	newV  func() any // returns a pointer to a zero input shape
	want  any        // pointer to the expected shape, when code == ""
	code  string     // expected apierr code, "" for success
	msg   []string   // substrings the error message must contain
}

func runDecodeCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.newV()
			err := awsquery.Decode(form(t, tc.query), got)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Decode(%q): unexpected error %v", tc.query, err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Decode(%q)\n got: %#v\nwant: %#v", tc.query, got, tc.want)
				}
				return
			}
			checkAPIError(t, err, tc.code, tc.msg...)
		})
	}
}

func checkAPIError(t *testing.T, err error, code string, msg ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	e, ok := apierr.As(err)
	if !ok {
		t.Fatalf("error %v (%T) is not an *apierr.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("error code %q, want %q (error: %v)", e.Code, code, err)
	}
	if e.Status != http.StatusBadRequest || !e.Sender {
		t.Errorf("error %v: status %d sender %v, want 400 sender", err, e.Status, e.Sender)
	}
	for _, m := range msg {
		if !strings.Contains(e.Message, m) {
			t.Errorf("error message %q does not mention %q", e.Message, m)
		}
	}
}

const cpgBase = "Action=CreateCacheParameterGroup&Version=2015-02-02&CacheParameterGroupName=pg&CacheParameterGroupFamily=redis7&Description=my+group"

func newCPG() any { return new(ecapi.CreateCacheParameterGroupMessage) }

func cpg(tags []ecapi.Tag) *ecapi.CreateCacheParameterGroupMessage {
	return &ecapi.CreateCacheParameterGroupMessage{
		CacheParameterGroupName: "pg", CacheParameterGroupFamily: "redis7", Description: "my group", Tags: tags,
	}
}

func TestDecodeLists(t *testing.T) {
	// Twelve items given in reverse order: numeric order puts 10, 11, 12 last;
	// lexical order would put them after 1.
	var twelve strings.Builder
	var twelveWant []string
	for i := 12; i >= 1; i-- {
		fmt.Fprintf(&twelve, "&TagKeys.member.%d=k%d", i, i)
	}
	for i := 1; i <= 12; i++ {
		twelveWant = append(twelveWant, "k"+strconv.Itoa(i))
	}

	runDecodeCases(t, []decodeCase{
		{
			name:  "locationName members",
			query: cpgBase + "&Tags.Tag.1.Key=a&Tags.Tag.1.Value=b&Tags.Tag.2.Key=c",
			newV:  newCPG,
			want:  cpg([]ecapi.Tag{{Key: "a", Value: "b"}, {Key: "c"}}),
		},
		{
			name:  "index 2 before index 1",
			query: cpgBase + "&Tags.Tag.2.Key=second&Tags.Tag.2.Value=2&Tags.Tag.1.Key=first&Tags.Tag.1.Value=1",
			newV:  newCPG,
			want:  cpg([]ecapi.Tag{{Key: "first", Value: "1"}, {Key: "second", Value: "2"}}),
		},
		{
			name: "ParameterNameValues",
			query: "CacheParameterGroupName=pg" +
				"&ParameterNameValues.ParameterNameValue.1.ParameterName=maxmemory-policy" +
				"&ParameterNameValues.ParameterNameValue.1.ParameterValue=allkeys-lru" +
				"&ParameterNameValues.ParameterNameValue.2.ParameterName=timeout" +
				"&ParameterNameValues.ParameterNameValue.2.ParameterValue=300",
			newV: func() any { return new(ecapi.ModifyCacheParameterGroupMessage) },
			want: &ecapi.ModifyCacheParameterGroupMessage{
				CacheParameterGroupName: "pg",
				ParameterNameValues: []ecapi.ParameterNameValue{
					{ParameterName: "maxmemory-policy", ParameterValue: "allkeys-lru"},
					{ParameterName: "timeout", ParameterValue: "300"},
				},
			},
		},
		{
			name:  "member lists",
			query: "ResourceName=arn%3Aaws%3Aelasticache%3Aus-east-1%3A123456789012%3Aparametergroup%3Apg&TagKeys.member.1=env&TagKeys.member.2=team",
			newV:  func() any { return new(ecapi.RemoveTagsFromResourceMessage) },
			want: &ecapi.RemoveTagsFromResourceMessage{
				ResourceName: "arn:aws:elasticache:us-east-1:123456789012:parametergroup:pg",
				TagKeys:      []string{"env", "team"},
			},
		},
		{
			name:  "10 after 9: numeric not lexical order",
			query: "ResourceName=r" + twelve.String(),
			newV:  func() any { return new(ecapi.RemoveTagsFromResourceMessage) },
			want:  &ecapi.RemoveTagsFromResourceMessage{ResourceName: "r", TagKeys: twelveWant},
		},
		{
			name:  "sparse indices keep their order",
			query: "ResourceName=r&TagKeys.member.7=c&TagKeys.member.3=b&TagKeys.member.1=a",
			newV:  func() any { return new(ecapi.RemoveTagsFromResourceMessage) },
			want:  &ecapi.RemoveTagsFromResourceMessage{ResourceName: "r", TagKeys: []string{"a", "b", "c"}},
		},
		{
			name:  "empty list item value",
			query: "ResourceName=r&TagKeys.member.1=&TagKeys.member.2=x",
			newV:  func() any { return new(ecapi.RemoveTagsFromResourceMessage) },
			want:  &ecapi.RemoveTagsFromResourceMessage{ResourceName: "r", TagKeys: []string{"", "x"}},
		},
		{
			name:  "empty list as botocore sends it",
			query: cpgBase + "&Tags=",
			newV:  newCPG,
			want:  cpg([]ecapi.Tag{}),
		},
		{
			name:  "absent list as the Go SDK sends it",
			query: cpgBase,
			newV:  newCPG,
			want:  cpg(nil),
		},
		{
			name:  "required list given empty",
			query: "ResourceName=r&TagKeys=",
			newV:  func() any { return new(ecapi.RemoveTagsFromResourceMessage) },
			want:  &ecapi.RemoveTagsFromResourceMessage{ResourceName: "r", TagKeys: []string{}},
		},
		{
			name: "list of structures with nested lists and filters",
			query: "Filters.member.1.Name=user-id&Filters.member.1.Values.member.2=u2&Filters.member.1.Values.member.1=u1" +
				"&Filters.member.2.Name=engine&Filters.member.2.Values=",
			newV: func() any { return new(ecapi.DescribeUsersMessage) },
			want: &ecapi.DescribeUsersMessage{Filters: []ecapi.Filter{
				{Name: "user-id", Values: []string{"u1", "u2"}},
				{Name: "engine", Values: []string{}},
			}},
		},
		{
			name:  "index 0",
			query: cpgBase + "&Tags.Tag.0.Key=a",
			newV:  newCPG,
			code:  "InvalidParameterValue",
			msg:   []string{`"0"`, "Tags.Tag"},
		},
		{
			name:  "negative index",
			query: cpgBase + "&Tags.Tag.-1.Key=a",
			newV:  newCPG,
			code:  "InvalidParameterValue",
			msg:   []string{`"-1"`},
		},
		{
			name:  "non-numeric index",
			query: "ResourceName=r&TagKeys.member.first=a",
			newV:  func() any { return new(ecapi.RemoveTagsFromResourceMessage) },
			code:  "InvalidParameterValue",
			msg:   []string{`"first"`, "TagKeys.member"},
		},
		{
			name:  "index overflowing int",
			query: "ResourceName=r&TagKeys.member.99999999999999999999999=a",
			newV:  func() any { return new(ecapi.RemoveTagsFromResourceMessage) },
			code:  "InvalidParameterValue",
		},
	})
}

// TestDecodeEmptyVersusAbsentList checks nil-ness explicitly, since that is the
// whole point: an empty list and no list mean different things to a service.
func TestDecodeEmptyVersusAbsentList(t *testing.T) {
	var empty, absent ecapi.CreateCacheParameterGroupMessage
	if err := awsquery.Decode(form(t, cpgBase+"&Tags="), &empty); err != nil {
		t.Fatal(err)
	}
	if empty.Tags == nil || len(empty.Tags) != 0 {
		t.Errorf("Tags= gave %#v, want a non-nil empty slice", empty.Tags)
	}
	if err := awsquery.Decode(form(t, cpgBase), &absent); err != nil {
		t.Fatal(err)
	}
	if absent.Tags != nil {
		t.Errorf("no Tags gave %#v, want nil", absent.Tags)
	}
}

func TestDecodeNestedStructures(t *testing.T) {
	newSC := func() any { return new(ecapi.CreateServerlessCacheRequest) }
	newDRC := func() any { return new(ecapi.DecreaseReplicaCountMessage) }
	runDecodeCases(t, []decodeCase{
		{
			name: "nested struct pointers",
			query: "ServerlessCacheName=sc&Engine=valkey" +
				"&CacheUsageLimits.DataStorage.Maximum=10&CacheUsageLimits.DataStorage.Unit=GB" +
				"&CacheUsageLimits.ECPUPerSecond.Minimum=1000" +
				"&SecurityGroupIds.SecurityGroupId.1=sg-1&SubnetIds.SubnetId.1=subnet-1&SubnetIds.SubnetId.2=subnet-2" +
				"&SnapshotRetentionLimit=3",
			newV: newSC,
			want: &ecapi.CreateServerlessCacheRequest{
				ServerlessCacheName: "sc", Engine: "valkey",
				CacheUsageLimits: &ecapi.CacheUsageLimits{
					DataStorage:   &ecapi.DataStorage{Maximum: ptr(int32(10)), Unit: "GB"},
					ECPUPerSecond: &ecapi.ECPUPerSecond{Minimum: ptr(int32(1000))},
				},
				SecurityGroupIds:       []string{"sg-1"},
				SubnetIds:              []string{"subnet-1", "subnet-2"},
				SnapshotRetentionLimit: ptr(int32(3)),
			},
		},
		{
			name:  "absent nested struct stays nil",
			query: "ServerlessCacheName=sc&Engine=valkey",
			newV:  newSC,
			want:  &ecapi.CreateServerlessCacheRequest{ServerlessCacheName: "sc", Engine: "valkey"},
		},
		{
			name:  "required member of nested struct",
			query: "ServerlessCacheName=sc&Engine=valkey&CacheUsageLimits.DataStorage.Maximum=10",
			newV:  newSC,
			code:  "MissingParameter",
			msg:   []string{"CacheUsageLimits.DataStorage.Unit"},
		},
		{
			name:  "invalid value in nested struct names its path",
			query: "ServerlessCacheName=sc&Engine=valkey&CacheUsageLimits.DataStorage.Unit=GB&CacheUsageLimits.DataStorage.Maximum=ten",
			newV:  newSC,
			code:  "InvalidParameterValue",
			msg:   []string{"CacheUsageLimits.DataStorage.Maximum", `"ten"`},
		},
		{
			name: "list of structs with nested list",
			query: "ReplicationGroupId=rg&ApplyImmediately=true" +
				"&ReplicaConfiguration.ConfigureShard.1.NodeGroupId=0001" +
				"&ReplicaConfiguration.ConfigureShard.1.NewReplicaCount=2" +
				"&ReplicaConfiguration.ConfigureShard.1.PreferredAvailabilityZones.PreferredAvailabilityZone.1=us-east-1a" +
				"&ReplicaConfiguration.ConfigureShard.1.PreferredAvailabilityZones.PreferredAvailabilityZone.2=us-east-1b" +
				"&ReplicasToRemove.member.1=rg-003",
			newV: newDRC,
			want: &ecapi.DecreaseReplicaCountMessage{
				ReplicationGroupId: "rg", ApplyImmediately: true,
				ReplicaConfiguration: []ecapi.ConfigureShard{{
					NodeGroupId: "0001", NewReplicaCount: 2,
					PreferredAvailabilityZones: []string{"us-east-1a", "us-east-1b"},
				}},
				ReplicasToRemove: []string{"rg-003"},
			},
		},
		{
			name:  "required member of a list item",
			query: "ReplicationGroupId=rg&ApplyImmediately=true&ReplicaConfiguration.ConfigureShard.1.NodeGroupId=0001",
			newV:  newDRC,
			code:  "MissingParameter",
			msg:   []string{"ReplicaConfiguration.ConfigureShard.1.NewReplicaCount"},
		},
		{
			name:  "nested timestamps",
			query: "ServiceUpdateTimeRange.StartTime=2026-01-02T03:04:05Z&ServiceUpdateTimeRange.EndTime=2026-01-03",
			newV:  func() any { return new(ecapi.DescribeUpdateActionsMessage) },
			want: &ecapi.DescribeUpdateActionsMessage{ServiceUpdateTimeRange: &ecapi.TimeRangeFilter{
				StartTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
				EndTime:   time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC),
			}},
		},
	})
}

func TestDecodeBooleans(t *testing.T) {
	newDUA := func() any { return new(ecapi.DescribeUpdateActionsMessage) }
	newDCEV := func() any { return new(ecapi.DescribeCacheEngineVersionsMessage) }
	cases := []decodeCase{
		{name: "pointer true", query: "ShowNodeLevelUpdateStatus=true", newV: newDUA,
			want: &ecapi.DescribeUpdateActionsMessage{ShowNodeLevelUpdateStatus: ptr(true)}},
		{name: "pointer false is set, not nil", query: "ShowNodeLevelUpdateStatus=false", newV: newDUA,
			want: &ecapi.DescribeUpdateActionsMessage{ShowNodeLevelUpdateStatus: ptr(false)}},
		{name: "pointer TRUE", query: "ShowNodeLevelUpdateStatus=TRUE", newV: newDUA,
			want: &ecapi.DescribeUpdateActionsMessage{ShowNodeLevelUpdateStatus: ptr(true)}},
		{name: "pointer absent", query: "", newV: newDUA, want: &ecapi.DescribeUpdateActionsMessage{}},
		{name: "value True", query: "DefaultOnly=True", newV: newDCEV,
			want: &ecapi.DescribeCacheEngineVersionsMessage{DefaultOnly: true}},
		{name: "value FALSE", query: "DefaultOnly=FALSE", newV: newDCEV,
			want: &ecapi.DescribeCacheEngineVersionsMessage{}},
		{name: "required false is present", query: "ReplicationGroupId=rg&ApplyImmediately=false",
			newV: func() any { return new(ecapi.DecreaseReplicaCountMessage) },
			want: &ecapi.DecreaseReplicaCountMessage{ReplicationGroupId: "rg"}},
		{name: "required bool missing", query: "ReplicationGroupId=rg",
			newV: func() any { return new(ecapi.DecreaseReplicaCountMessage) },
			code: "MissingParameter", msg: []string{"ApplyImmediately"}},
	}
	for _, bad := range []string{"yes", "no", "1", "0", "", "t", " true", "truee"} {
		cases = append(cases,
			decodeCase{name: "pointer " + strconv.Quote(bad), query: "ShowNodeLevelUpdateStatus=" + url.QueryEscape(bad),
				newV: newDUA, code: "InvalidParameterValue", msg: []string{"ShowNodeLevelUpdateStatus", strconv.Quote(bad)}},
			decodeCase{name: "value " + strconv.Quote(bad), query: "DefaultOnly=" + url.QueryEscape(bad),
				newV: newDCEV, code: "InvalidParameterValue", msg: []string{"DefaultOnly"}})
	}
	runDecodeCases(t, cases)
}

func TestDecodeIntegers(t *testing.T) {
	newDE := func() any { return new(ecapi.DescribeEventsMessage) }
	newShard := func() any { return new(ecapi.ModifyReplicationGroupShardConfigurationMessage) }
	cases := []decodeCase{
		{name: "50", query: "MaxRecords=50", newV: newDE, want: &ecapi.DescribeEventsMessage{MaxRecords: ptr(int32(50))}},
		{name: "zero is set, not nil", query: "MaxRecords=0", newV: newDE, want: &ecapi.DescribeEventsMessage{MaxRecords: ptr(int32(0))}},
		{name: "negative", query: "Duration=-5", newV: newDE, want: &ecapi.DescribeEventsMessage{Duration: ptr(int32(-5))}},
		{name: "max int32", query: "MaxRecords=2147483647", newV: newDE, want: &ecapi.DescribeEventsMessage{MaxRecords: ptr(int32(2147483647))}},
		{name: "min int32", query: "MaxRecords=-2147483648", newV: newDE, want: &ecapi.DescribeEventsMessage{MaxRecords: ptr(int32(-2147483648))}},
		{name: "surrounding space trimmed", query: "MaxRecords=+50+", newV: newDE, want: &ecapi.DescribeEventsMessage{MaxRecords: ptr(int32(50))}},
		{name: "non-pointer required int", query: "ReplicationGroupId=rg&NodeGroupCount=3&ApplyImmediately=true", newV: newShard,
			want: &ecapi.ModifyReplicationGroupShardConfigurationMessage{ReplicationGroupId: "rg", NodeGroupCount: 3, ApplyImmediately: true}},
		{name: "non-pointer required int missing", query: "ReplicationGroupId=rg&ApplyImmediately=true", newV: newShard,
			code: "MissingParameter", msg: []string{"NodeGroupCount"}},
		{name: "non-pointer int invalid", query: "ReplicationGroupId=rg&NodeGroupCount=x&ApplyImmediately=true", newV: newShard,
			code: "InvalidParameterValue", msg: []string{"NodeGroupCount", `"x"`}},
	}
	for _, bad := range []string{"abc", "99999999999", "2147483648", "-2147483649", "", "1.5", "1e3", "0x10", "50abc"} {
		cases = append(cases, decodeCase{name: "invalid " + strconv.Quote(bad), query: "MaxRecords=" + url.QueryEscape(bad),
			newV: newDE, code: "InvalidParameterValue", msg: []string{"MaxRecords", strconv.Quote(bad), "integer"}})
	}
	runDecodeCases(t, cases)
}

func TestDecodeTimestamps(t *testing.T) {
	newDE := func() any { return new(ecapi.DescribeEventsMessage) }
	at := func(ts time.Time) *ecapi.DescribeEventsMessage { return &ecapi.DescribeEventsMessage{StartTime: ts} }
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []decodeCase{
		{name: "Z", query: "StartTime=2026-01-02T03:04:05Z", want: at(base)},
		{name: "milliseconds", query: "StartTime=2026-01-02T03:04:05.123Z", want: at(base.Add(123 * time.Millisecond))},
		{name: "nanoseconds", query: "StartTime=2026-01-02T03:04:05.123456789Z", want: at(base.Add(123456789))},
		{name: "offset is converted to UTC", query: "StartTime=2026-01-02T03:04:05%2B01:00", want: at(base.Add(-time.Hour))},
		{name: "negative offset", query: "StartTime=2026-01-02T03:04:05-05:30", want: at(base.Add(5*time.Hour + 30*time.Minute))},
		{name: "basic offset", query: "StartTime=2026-01-02T03:04:05%2B0100", want: at(base.Add(-time.Hour))},
		{name: "no zone means UTC", query: "StartTime=2026-01-02T03:04:05", want: at(base)},
		{name: "date only", query: "StartTime=2026-01-02", want: at(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))},
		{name: "epoch seconds", query: "StartTime=1767323045", want: at(base)},
		{name: "epoch with milliseconds", query: "StartTime=1767323045.123", want: at(base.Add(123 * time.Millisecond))},
		{name: "both ends", query: "StartTime=2026-01-02T03:04:05Z&EndTime=2026-01-02T04:04:05.5Z",
			want: &ecapi.DescribeEventsMessage{StartTime: base, EndTime: base.Add(time.Hour + 500*time.Millisecond)}},
		{name: "absent stays zero", query: "Duration=60", want: &ecapi.DescribeEventsMessage{Duration: ptr(int32(60))}},
	}
	for _, bad := range []string{"yesterday", "", "2026-13-01T00:00:00Z", "2026-01-02T25:00:00Z", "2026-01-02 03:04:05", "02/01/2026", "2026-01-02T03:04:05Zjunk"} {
		cases = append(cases, decodeCase{name: "invalid " + strconv.Quote(bad), query: "StartTime=" + url.QueryEscape(bad),
			code: "InvalidParameterValue", msg: []string{"StartTime", strconv.Quote(bad), "timestamp"}})
	}
	for i := range cases {
		cases[i].newV = newDE
	}
	runDecodeCases(t, cases)

	// Decoded times are in UTC whatever the offset given.
	var m ecapi.DescribeEventsMessage
	if err := awsquery.Decode(form(t, "StartTime=2026-01-02T03:04:05%2B01:00"), &m); err != nil {
		t.Fatal(err)
	}
	if m.StartTime.Location() != time.UTC {
		t.Errorf("StartTime location %v, want UTC", m.StartTime.Location())
	}
}

func TestDecodeRequired(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{name: "CreateCacheParameterGroup without Description",
			query: "CacheParameterGroupName=pg&CacheParameterGroupFamily=redis7",
			newV:  newCPG, code: "MissingParameter", msg: []string{"Description"}},
		{name: "CreateCacheParameterGroup empty", query: "", newV: newCPG, code: "MissingParameter"},
		{name: "ModifyCacheParameterGroup without ParameterNameValues", query: "CacheParameterGroupName=pg",
			newV: func() any { return new(ecapi.ModifyCacheParameterGroupMessage) },
			code: "MissingParameter", msg: []string{"ParameterNameValues"}},
		{name: "RemoveTagsFromResource without TagKeys", query: "ResourceName=r",
			newV: func() any { return new(ecapi.RemoveTagsFromResourceMessage) },
			code: "MissingParameter", msg: []string{"TagKeys"}},
		{name: "RemoveTagsFromResource without ResourceName", query: "TagKeys.member.1=a",
			newV: func() any { return new(ecapi.RemoveTagsFromResourceMessage) },
			code: "MissingParameter", msg: []string{"ResourceName"}},
		{name: "required member of a filter", query: "Filters.member.1.Values.member.1=x",
			newV: func() any { return new(ecapi.DescribeUsersMessage) },
			code: "MissingParameter", msg: []string{"Filters.member.1.Name"}},
		{name: "names are case-sensitive", query: "cacheparametergroupname=pg&CacheParameterGroupFamily=redis7&Description=d",
			newV: newCPG, code: "MissingParameter", msg: []string{"CacheParameterGroupName"}},
	})
}

func TestDecodeUnknownParametersIgnored(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{
			name: "unknown top-level and nested parameters",
			query: cpgBase + "&Bogus=1&Another.Deep.1.Thing=x&X-Amz-Date=20260102T030405Z" +
				"&Tags.Tag.1.Key=a&Tags.Tag.1.Colour=red&Description.Extra=ignored",
			newV: newCPG,
			want: cpg([]ecapi.Tag{{Key: "a"}}),
		},
		{
			name:  "first of repeated values wins",
			query: "MaxRecords=5&MaxRecords=6&Marker=m1&Marker=m2",
			newV:  func() any { return new(ecapi.DescribeEventsMessage) },
			want:  &ecapi.DescribeEventsMessage{MaxRecords: ptr(int32(5)), Marker: "m1"},
		},
		{
			name:  "values are taken verbatim after URL decoding",
			query: "CacheParameterGroupName=pg&CacheParameterGroupFamily=redis7&Description=a%26b%3Dc+d%2Be%25",
			newV:  newCPG,
			want:  &ecapi.CreateCacheParameterGroupMessage{CacheParameterGroupName: "pg", CacheParameterGroupFamily: "redis7", Description: "a&b=c d+e%"},
		},
	})
}

func TestDecodeNeedsStructPointer(t *testing.T) {
	var m ecapi.DescribeEventsMessage
	for _, v := range []any{m, &[]int{}, nil, new(int)} {
		if err := awsquery.Decode(url.Values{}, v); err == nil {
			t.Errorf("Decode(%T) succeeded, want an error", v)
		}
	}
}

// TestDecodeDoesNotTouchAbsentFields: fields the form does not name keep the
// value they had.
func TestDecodeDoesNotTouchAbsentFields(t *testing.T) {
	m := ecapi.DescribeEventsMessage{Marker: "keep", MaxRecords: ptr(int32(7))}
	if err := awsquery.Decode(form(t, "SourceType=cache-cluster"), &m); err != nil {
		t.Fatal(err)
	}
	want := ecapi.DescribeEventsMessage{Marker: "keep", MaxRecords: ptr(int32(7)), SourceType: "cache-cluster"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %#v, want %#v", m, want)
	}
}

// TestDecodeConcurrent exercises the per-type plan cache from many goroutines
// (meaningful under -race).
func TestDecodeConcurrent(t *testing.T) {
	values := form(t, cpgBase+"&Tags.Tag.1.Key=a&Tags.Tag.1.Value=b")
	want := cpg([]ecapi.Tag{{Key: "a", Value: "b"}})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for range 50 {
				var m ecapi.CreateCacheParameterGroupMessage
				if err := awsquery.Decode(values, &m); err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(&m, want) {
					errs <- fmt.Errorf("got %#v", m)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// --- Regressions: bugs these tests found, now fixed.

// Found: a list index was read with strconv.Atoi, so "01", "001" and "+1" are all
// accepted as index 1 alongside "1"; each became a separate item, in an order that
// changed from one Decode to the next. Only canonical indices are accepted now.
func TestDecodeNonCanonicalListIndex(t *testing.T) {
	values := form(t, "ResourceName=r&TagKeys.member.1=a&TagKeys.member.01=b&TagKeys.member.%2B1=c")
	seen := map[string]bool{}
	for range 100 {
		var m ecapi.RemoveTagsFromResourceMessage
		err := awsquery.Decode(values, &m)
		if err != nil {
			checkAPIError(t, err, "InvalidParameterValue")
			seen["error"] = true
			continue
		}
		if len(m.TagKeys) != 1 {
			t.Fatalf("index 1 given as 1, 01 and +1 decoded to %d items %q, want one item or an error", len(m.TagKeys), m.TagKeys)
		}
		seen[strings.Join(m.TagKeys, ",")] = true
	}
	if len(seen) != 1 {
		t.Fatalf("Decode is not deterministic: results %v", seen)
	}
}

// Found: ParseTime falls back to strconv.ParseFloat for epoch seconds, which also
// accepts "NaN", "Inf", "1e300" and hex floats. int64(NaN*1000) and overflowing
// conversions give math.MinInt64 on amd64 (implementation-defined), so these are
// accepted as the timestamp -292275055-05-16T16:47:04.192Z instead of being
// rejected.
func TestDecodeNonFiniteEpoch(t *testing.T) {
	for _, s := range []string{"NaN", "Inf", "-Inf", "Infinity", "1e300", "-1e300"} {
		var m ecapi.DescribeEventsMessage
		err := awsquery.Decode(form(t, "StartTime="+url.QueryEscape(s)), &m)
		if err == nil {
			t.Errorf("StartTime=%s decoded to %v, want InvalidParameterValue", s, m.StartTime)
			continue
		}
		checkAPIError(t, err, "InvalidParameterValue", "StartTime")
	}
}

// Found: ParseTime converts epoch seconds with int64(secs*1000), truncating the
// binary floating-point product: "1.005" is 1004.9999999999999 ms and becomes
// 1.004 s. Exact millisecond inputs should keep their millisecond (round, or
// parse the decimal digits).
func TestParseTimeEpochMillisecondTruncation(t *testing.T) {
	for s, wantMS := range map[string]int64{"1.005": 1005, "0.001": 1, "4.35": 4350, "1767323045.123": 1767323045123} {
		got, err := awsquery.ParseTime(s)
		if err != nil {
			t.Fatalf("ParseTime(%q): %v", s, err)
		}
		if got.UnixMilli() != wantMS {
			t.Errorf("ParseTime(%q) = %s, want %d ms since the epoch", s, awsquery.FormatTime(got), wantMS)
		}
	}
}
