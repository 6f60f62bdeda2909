package awsquery_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/url"
	"testing"

	"github.com/hoardcache/hoard/internal/apierr"
	"github.com/hoardcache/hoard/internal/awsquery"
	"github.com/hoardcache/hoard/internal/ecapi"
)

// fuzzTargets are input shapes covering every kind the decoder handles: strings,
// *bool and bool, *int32 and int32, time.Time (also nested), []string and
// lists of structures (with nested lists and required members), and nested
// structure pointers several levels deep.
var fuzzTargets = []func() any{
	func() any { return new(ecapi.CreateCacheParameterGroupMessage) },
	func() any { return new(ecapi.ModifyCacheParameterGroupMessage) },
	func() any { return new(ecapi.RemoveTagsFromResourceMessage) },
	func() any { return new(ecapi.AddTagsToResourceMessage) },
	func() any { return new(ecapi.DescribeEventsMessage) },
	func() any { return new(ecapi.DescribeCacheEngineVersionsMessage) },
	func() any { return new(ecapi.CreateServerlessCacheRequest) },
	func() any { return new(ecapi.DescribeUsersMessage) },
	func() any { return new(ecapi.DescribeUpdateActionsMessage) },
	func() any { return new(ecapi.DecreaseReplicaCountMessage) },
	func() any { return new(ecapi.ModifyReplicationGroupShardConfigurationMessage) },
	func() any { return new(ecapi.ModifyCacheClusterMessage) },
	func() any { return new(ecapi.CreateReplicationGroupMessage) },
}

var fuzzSeeds = []string{
	"",
	"Action=DescribeCacheParameterGroups&Version=2015-02-02&MaxRecords=20",
	cpgBase + "&Tags.Tag.1.Key=a&Tags.Tag.1.Value=b&Tags.Tag.2.Key=c",
	cpgBase + "&Tags=",
	"Action=ModifyCacheParameterGroup&CacheParameterGroupName=pg" +
		"&ParameterNameValues.ParameterNameValue.1.ParameterName=timeout&ParameterNameValues.ParameterNameValue.1.ParameterValue=300" +
		"&ParameterNameValues.ParameterNameValue.2.ParameterName=maxmemory-policy&ParameterNameValues.ParameterNameValue.2.ParameterValue=allkeys-lru",
	"Action=RemoveTagsFromResource&ResourceName=arn%3Aaws%3Aelasticache%3Aus-east-1%3A1%3Acluster%3Ac&TagKeys.member.1=a&TagKeys.member.10=b&TagKeys.member.9=c",
	"Action=AddTagsToResource&ResourceName=r&Tags.Tag.1.Key=k&Tags.Tag.1.Value=v",
	"Action=DescribeEvents&StartTime=2026-01-02T03:04:05Z&EndTime=2026-01-02T03:04:05.123%2B01:00&Duration=60&MaxRecords=50",
	"StartTime=1767323045.5&EndTime=2026-01-02",
	"DefaultOnly=TRUE&Engine=redis&MaxRecords=99999999999",
	"ServerlessCacheName=sc&Engine=valkey&CacheUsageLimits.DataStorage.Maximum=10&CacheUsageLimits.DataStorage.Unit=GB&CacheUsageLimits.ECPUPerSecond.Minimum=1000&SecurityGroupIds.SecurityGroupId.1=sg-1",
	"Filters.member.1.Name=user-id&Filters.member.1.Values.member.1=u1&Filters.member.2.Name=engine&Filters.member.2.Values=",
	"ServiceUpdateTimeRange.StartTime=2026-01-02T03:04:05Z&ShowNodeLevelUpdateStatus=yes",
	"ReplicationGroupId=rg&ApplyImmediately=true&ReplicaConfiguration.ConfigureShard.1.NodeGroupId=0001&ReplicaConfiguration.ConfigureShard.1.NewReplicaCount=2" +
		"&ReplicaConfiguration.ConfigureShard.1.PreferredAvailabilityZones.PreferredAvailabilityZone.1=us-east-1a",
	"ReplicationGroupId=rg&NodeGroupCount=2&ApplyImmediately=false&ReshardingConfiguration.ReshardingConfiguration.1.NodeGroupId=0001" +
		"&ReshardingConfiguration.ReshardingConfiguration.1.PreferredAvailabilityZones.AvailabilityZone.1=us-east-1a&NodeGroupsToRemove.NodeGroupToRemove.1=0002",
	"CacheClusterId=c&LogDeliveryConfigurations.LogDeliveryConfigurationRequest.1.LogType=slow-log" +
		"&LogDeliveryConfigurations.LogDeliveryConfigurationRequest.1.DestinationDetails.CloudWatchLogsDetails.LogGroup=g" +
		"&LogDeliveryConfigurations.LogDeliveryConfigurationRequest.1.Enabled=true&ScaleConfig.ScalePercentage=20",
	"ReplicationGroupId=rg&ReplicationGroupDescription=d&NodeGroupConfiguration.NodeGroupConfiguration.1.Slots=0-8191" +
		"&NodeGroupConfiguration.NodeGroupConfiguration.1.ReplicaAvailabilityZones.AvailabilityZone.1=us-east-1a&Port=6379",
	"Tags.Tag.0.Key=a&TagKeys.member.x=b&Tags.Tag.-1=&TagKeys.member.01=c",
	"a=%zz&b&&=c&.=.&..Tags..=x;y",
}

// FuzzDecode: whatever the form, Decode never panics, and any error it returns
// is an *apierr.Error (so the server answers with a 400, not an internal failure).
// A value Decode accepts is also encoded into well-formed XML.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		// A malformed query still yields the pairs that parsed; decode those too.
		values, _ := url.ParseQuery(raw)
		for _, newV := range fuzzTargets {
			v := newV()
			err := awsquery.Decode(values, v)
			if err != nil {
				e, ok := apierr.As(err)
				if !ok {
					t.Fatalf("Decode(%q) into %T: error %v (%T) is not an *apierr.Error", raw, v, err, err)
				}
				if !apierr.MissingParameter.Is(e) && !apierr.InvalidParameterValue.Is(e) {
					t.Fatalf("Decode(%q) into %T: unexpected error code %s", raw, v, e.Code)
				}
				continue
			}
			var b bytes.Buffer
			b.WriteString("<R>")
			awsquery.EncodeFields(&b, v)
			b.WriteString("</R>")
			d := xml.NewDecoder(&b)
			for {
				if _, err := d.Token(); err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatalf("Decode(%q) into %T, then EncodeFields: XML not well-formed: %v", raw, v, err)
					}
					break
				}
			}
		}
	})
}
