package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
)

func describeSubnetGroup(t *testing.T, c *elasticache.Client, name string) types.CacheSubnetGroup {
	t.Helper()
	out, err := c.DescribeCacheSubnetGroups(ctx(t), &elasticache.DescribeCacheSubnetGroupsInput{CacheSubnetGroupName: aws.String(name)})
	if err != nil {
		t.Fatalf("describe subnet group %s: %v", name, err)
	}
	if len(out.CacheSubnetGroups) != 1 {
		t.Fatalf("describe subnet group %s: %d groups", name, len(out.CacheSubnetGroups))
	}
	return out.CacheSubnetGroups[0]
}

// subnetZones maps each subnet of a group to its availability zone, checking the
// network types on the way.
func subnetZones(t *testing.T, g types.CacheSubnetGroup) map[string]string {
	t.Helper()
	if len(g.SupportedNetworkTypes) != 1 || g.SupportedNetworkTypes[0] != types.NetworkTypeIpv4 {
		t.Errorf("group %s: network types %v", aws.ToString(g.CacheSubnetGroupName), g.SupportedNetworkTypes)
	}
	zones := map[string]string{}
	for _, sn := range g.Subnets {
		if sn.SubnetAvailabilityZone == nil {
			t.Fatalf("subnet %s has no availability zone", aws.ToString(sn.SubnetIdentifier))
		}
		if len(sn.SupportedNetworkTypes) != 1 || sn.SupportedNetworkTypes[0] != types.NetworkTypeIpv4 {
			t.Errorf("subnet %s: network types %v", aws.ToString(sn.SubnetIdentifier), sn.SupportedNetworkTypes)
		}
		zones[aws.ToString(sn.SubnetIdentifier)] = aws.ToString(sn.SubnetAvailabilityZone.Name)
	}
	return zones
}

// summary renders a group's values (the SDK shapes hold pointers) for comparisons.
func summary(g types.CacheSubnetGroup) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s|%s|%v", aws.ToString(g.CacheSubnetGroupName), aws.ToString(g.CacheSubnetGroupDescription),
		aws.ToString(g.VpcId), aws.ToString(g.ARN), g.SupportedNetworkTypes)
	for _, sn := range g.Subnets {
		az := ""
		if sn.SubnetAvailabilityZone != nil {
			az = aws.ToString(sn.SubnetAvailabilityZone.Name)
		}
		fmt.Fprintf(&b, "|%s@%s%v", aws.ToString(sn.SubnetIdentifier), az, sn.SupportedNetworkTypes)
	}
	return b.String()
}

func TestDefaultSubnetGroup(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-west-2")
	out, err := c.DescribeCacheSubnetGroups(ctx(t), &elasticache.DescribeCacheSubnetGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.CacheSubnetGroups) != 1 || out.Marker != nil {
		t.Fatalf("a fresh region has %d subnet groups (marker %v), want the default one", len(out.CacheSubnetGroups), out.Marker)
	}
	g := out.CacheSubnetGroups[0]
	if aws.ToString(g.CacheSubnetGroupName) != "default" || aws.ToString(g.CacheSubnetGroupDescription) != "Default CacheSubnetGroup" ||
		aws.ToString(g.ARN) != "arn:aws:elasticache:us-west-2:"+testAccount+":subnetgroup:default" ||
		!strings.HasPrefix(aws.ToString(g.VpcId), "vpc-") {
		t.Fatalf("default group: %+v", g)
	}
	zones := subnetZones(t, g)
	seen := map[string]bool{}
	for id, az := range zones {
		if !strings.HasPrefix(id, "subnet-") {
			t.Errorf("default subnet id %s", id)
		}
		seen[az] = true
	}
	if len(zones) != 3 || !seen["us-west-2a"] || !seen["us-west-2b"] || !seen["us-west-2c"] {
		t.Fatalf("default subnets: %v", zones)
	}
	// The same on every call: ids are stable.
	if again := describeSubnetGroup(t, c, "DEFAULT"); summary(again) != summary(g) {
		t.Fatalf("the default group changed between calls: %+v", again)
	}
	_, err = c.ModifyCacheSubnetGroup(ctx(t), &elasticache.ModifyCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("default"), CacheSubnetGroupDescription: aws.String("mine")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DeleteCacheSubnetGroup(ctx(t), &elasticache.DeleteCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("default")})
	wantAPIError(t, err, "CacheSubnetGroupInUse", 400)
	_, err = c.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("Default"),
		CacheSubnetGroupDescription: aws.String("d"), SubnetIds: []string{"subnet-1"}})
	wantAPIError(t, err, "CacheSubnetGroupAlreadyExists", 400)
}

func TestSubnetGroupLifecycle(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-east-1")
	def := describeSubnetGroup(t, c, "default")
	created, err := c.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{
		CacheSubnetGroupName:        aws.String("My-Subnets"),
		CacheSubnetGroupDescription: aws.String("private & <escaped>"),
		SubnetIds:                   []string{"subnet-0a1b2c3d", "subnet-0b1b2c3d", "subnet-0c1b2c3d", "subnet-0a1b2c3d"},
		Tags:                        []types.Tag{{Key: aws.String("team"), Value: aws.String("cache")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	g := created.CacheSubnetGroup
	arn := "arn:aws:elasticache:us-east-1:" + testAccount + ":subnetgroup:my-subnets"
	if aws.ToString(g.CacheSubnetGroupName) != "my-subnets" || aws.ToString(g.CacheSubnetGroupDescription) != "private & <escaped>" ||
		aws.ToString(g.ARN) != arn || aws.ToString(g.VpcId) != aws.ToString(def.VpcId) {
		t.Fatalf("created group: %+v", g)
	}
	// Duplicates collapse, order is kept, and new subnets go round-robin over the zones.
	want := map[string]string{"subnet-0a1b2c3d": "us-east-1a", "subnet-0b1b2c3d": "us-east-1b", "subnet-0c1b2c3d": "us-east-1c"}
	if got := subnetZones(t, *g); fmt.Sprint(got) != fmt.Sprint(want) || aws.ToString(g.Subnets[0].SubnetIdentifier) != "subnet-0a1b2c3d" {
		t.Fatalf("subnets %v, want %v", got, want)
	}
	if got := describeSubnetGroup(t, c, "MY-SUBNETS"); summary(got) != summary(*g) {
		t.Fatalf("describe gives %+v, create gave %+v", got, *g)
	}

	// A subnet keeps its zone in every group that names it.
	other, err := c.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("other"),
		CacheSubnetGroupDescription: aws.String("o"), SubnetIds: []string{"subnet-0b1b2c3d", "subnet-0d1b2c3d"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := subnetZones(t, *other.CacheSubnetGroup); got["subnet-0b1b2c3d"] != "us-east-1b" || got["subnet-0d1b2c3d"] != "us-east-1a" {
		t.Fatalf("zones of the second group: %v", got)
	}

	// Modify: the description alone, then the subnets alone.
	mod, err := c.ModifyCacheSubnetGroup(ctx(t), &elasticache.ModifyCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("my-subnets"),
		CacheSubnetGroupDescription: aws.String("renamed")})
	if err != nil {
		t.Fatal(err)
	}
	if d := aws.ToString(mod.CacheSubnetGroup.CacheSubnetGroupDescription); d != "renamed" || len(mod.CacheSubnetGroup.Subnets) != 3 {
		t.Fatalf("after modifying the description: %+v", mod.CacheSubnetGroup)
	}
	mod, err = c.ModifyCacheSubnetGroup(ctx(t), &elasticache.ModifyCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("My-Subnets"),
		SubnetIds: []string{"subnet-0c1b2c3d", "subnet-0e1b2c3d"}})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"subnet-0c1b2c3d": "us-east-1c", "subnet-0e1b2c3d": "us-east-1b"}
	if got := subnetZones(t, *mod.CacheSubnetGroup); fmt.Sprint(got) != fmt.Sprint(want) || aws.ToString(mod.CacheSubnetGroup.CacheSubnetGroupDescription) != "renamed" {
		t.Fatalf("after modifying the subnets: %v %+v", got, mod.CacheSubnetGroup)
	}

	// It all survives a crash.
	h.kill9()
	h.restart()
	c = h.client("us-east-1")
	if got := describeSubnetGroup(t, c, "my-subnets"); summary(got) != summary(*mod.CacheSubnetGroup) {
		t.Fatalf("after kill -9 and restart: %+v", got)
	}
	tags, err := c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: aws.String(arn)})
	if err != nil || len(tags.TagList) != 1 || aws.ToString(tags.TagList[0].Key) != "team" || aws.ToString(tags.TagList[0].Value) != "cache" {
		t.Fatalf("tags of the group: %+v, %v", tags, err)
	}
	if _, err := c.AddTagsToResource(ctx(t), &elasticache.AddTagsToResourceInput{ResourceName: aws.String(arn),
		Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("test")}}}); err != nil {
		t.Fatal(err)
	}

	if _, err := c.DeleteCacheSubnetGroup(ctx(t), &elasticache.DeleteCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("MY-subnets")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeCacheSubnetGroups(ctx(t), &elasticache.DescribeCacheSubnetGroupsInput{CacheSubnetGroupName: aws.String("my-subnets")})
	wantAPIError(t, err, "CacheSubnetGroupNotFoundFault", 400)
	_, err = c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: aws.String(arn)})
	wantAPIError(t, err, "CacheSubnetGroupNotFoundFault", 400)
	// Its tags went with it: a new group of the same name starts untagged.
	if _, err := c.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("my-subnets"),
		CacheSubnetGroupDescription: aws.String("again"), SubnetIds: []string{"subnet-0f1b2c3d"}}); err != nil {
		t.Fatal(err)
	}
	tags, err = c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: aws.String(arn)})
	if err != nil || len(tags.TagList) != 0 {
		t.Fatalf("tags of the re-created group: %+v, %v", tags, err)
	}
}

func subnetIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("subnet-%08x", i+1)
	}
	return ids
}

func TestSubnetGroupErrors(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-east-1")
	create := func(name, description string, subnets ...string) error {
		_, err := c.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{
			CacheSubnetGroupName: aws.String(name), CacheSubnetGroupDescription: aws.String(description), SubnetIds: subnets})
		return err
	}
	modify := func(name string, subnets []string) error {
		_, err := c.ModifyCacheSubnetGroup(ctx(t), &elasticache.ModifyCacheSubnetGroupInput{CacheSubnetGroupName: aws.String(name), SubnetIds: subnets})
		return err
	}
	if err := create("sg1", "d", "subnet-11111111"); err != nil {
		t.Fatal(err)
	}
	if err := create("1-digit-first--ok", "names may start with a digit", subnetIDs(20)...); err != nil {
		t.Fatalf("a valid name and 20 subnets: %v", err)
	}
	tooManyTags := make([]types.Tag, 51)
	for i := range tooManyTags {
		tooManyTags[i] = types.Tag{Key: aws.String(fmt.Sprint("k", i)), Value: aws.String("v")}
	}
	_, tagErr := c.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("tagged"),
		CacheSubnetGroupDescription: aws.String("d"), SubnetIds: []string{"subnet-1"}, Tags: tooManyTags})
	cases := []struct {
		name   string
		err    error
		code   string
		status int
	}{
		{"name with an underscore", create("a_b", "d", "subnet-1"), "InvalidParameterValue", 400},
		{"name with a dot", create("a.b", "d", "subnet-1"), "InvalidParameterValue", 400},
		{"name of 256 characters", create(strings.Repeat("a", 256), "d", "subnet-1"), "InvalidParameterValue", 400},
		{"empty description", create("nodesc", "", "subnet-1"), "InvalidParameterValue", 400},
		{"no subnets", create("nosubnets", "d", []string{}...), "InvalidParameterValue", 400},
		{"not a subnet id", create("badsubnet", "d", "subnet-1", "sn-12345678"), "InvalidParameterValue", 400},
		{"subnet id with a symbol", create("badsubnet", "d", "subnet-12_4"), "InvalidParameterValue", 400},
		{"21 subnets", create("toomany", "d", subnetIDs(21)...), "CacheSubnetQuotaExceededFault", 400},
		{"51 tags", tagErr, "TagQuotaPerResourceExceeded", 400},
		{"duplicate name", create("SG1", "d", "subnet-1"), "CacheSubnetGroupAlreadyExists", 400},
		{"modify missing group", modify("nope", []string{"subnet-1"}), "CacheSubnetGroupNotFoundFault", 400},
		{"modify to 21 subnets", modify("sg1", subnetIDs(21)), "CacheSubnetQuotaExceededFault", 400},
		{"modify to a bad subnet", modify("sg1", []string{"subnet-22222222", "subnet-"}), "InvalidParameterValue", 400},
		{"modify to no subnets", modify("sg1", []string{}), "InvalidParameterValue", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantAPIError(t, tc.err, tc.code, tc.status) })
	}
	// Failed modifies changed nothing; failed creates left nothing.
	if g := describeSubnetGroup(t, c, "sg1"); len(g.Subnets) != 1 || aws.ToString(g.Subnets[0].SubnetIdentifier) != "subnet-11111111" {
		t.Fatalf("a rejected modify changed the group: %+v", g.Subnets)
	}
	for _, name := range []string{"toomany", "tagged", "badsubnet", "nodesc"} {
		_, err := c.DescribeCacheSubnetGroups(ctx(t), &elasticache.DescribeCacheSubnetGroupsInput{CacheSubnetGroupName: aws.String(name)})
		wantAPIError(t, err, "CacheSubnetGroupNotFoundFault", 400)
	}
	_, err := c.DeleteCacheSubnetGroup(ctx(t), &elasticache.DeleteCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("nope")})
	wantAPIError(t, err, "CacheSubnetGroupNotFoundFault", 400)
	for _, n := range []int32{0, 19, 101} {
		_, err = c.DescribeCacheSubnetGroups(ctx(t), &elasticache.DescribeCacheSubnetGroupsInput{MaxRecords: aws.Int32(n)})
		wantAPIError(t, err, "InvalidParameterValue", 400)
	}
	_, err = c.DescribeCacheSubnetGroups(ctx(t), &elasticache.DescribeCacheSubnetGroupsInput{Marker: aws.String("not-a-marker")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
}

// 50 custom groups fill the quota; with the default group they page 20 at a time.
func TestSubnetGroupQuotaAndPagination(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-east-1")
	want := map[string]bool{"default": true}
	for i := range 50 {
		name := fmt.Sprintf("group-%02d", i)
		want[name] = true
		if _, err := c.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{CacheSubnetGroupName: aws.String(name),
			CacheSubnetGroupDescription: aws.String("d"), SubnetIds: []string{fmt.Sprintf("subnet-%08x", i)}}); err != nil {
			t.Fatalf("group %d: %v", i, err)
		}
	}
	_, err := c.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("one-too-many"),
		CacheSubnetGroupDescription: aws.String("d"), SubnetIds: []string{"subnet-1"}})
	wantAPIError(t, err, "CacheSubnetGroupQuotaExceeded", 400)

	var names []string
	var sizes []int
	p := elasticache.NewDescribeCacheSubnetGroupsPaginator(c, &elasticache.DescribeCacheSubnetGroupsInput{MaxRecords: aws.Int32(20)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(out.CacheSubnetGroups))
		for _, g := range out.CacheSubnetGroups {
			names = append(names, aws.ToString(g.CacheSubnetGroupName))
		}
	}
	if fmt.Sprint(sizes) != "[20 20 11]" || len(names) != len(want) {
		t.Fatalf("pages of %v with %d groups, want [20 20 11] with %d", sizes, len(names), len(want))
	}
	for i, name := range names {
		if !want[name] || (i > 0 && names[i-1] >= name) {
			t.Fatalf("group %d is %s: unexpected, repeated or out of order in %v", i, name, names)
		}
	}

	// Deleting one frees a place.
	if _, err := c.DeleteCacheSubnetGroup(ctx(t), &elasticache.DeleteCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("group-07")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("one-too-many"),
		CacheSubnetGroupDescription: aws.String("d"), SubnetIds: []string{"subnet-1"}}); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
}

// Subnet groups live per account and region, with each region's own VPC and zones.
func TestSubnetGroupsArePerRegion(t *testing.T) {
	h := startHoard(t)
	eu, us := h.client("eu-west-1"), h.client("us-east-1")
	out, err := eu.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("regional"),
		CacheSubnetGroupDescription: aws.String("eu only"), SubnetIds: []string{"subnet-aaaa1111"},
		Tags: []types.Tag{{Key: aws.String("where"), Value: aws.String("eu")}}})
	if err != nil {
		t.Fatal(err)
	}
	g := out.CacheSubnetGroup
	if arn := aws.ToString(g.ARN); arn != "arn:aws:elasticache:eu-west-1:"+testAccount+":subnetgroup:regional" {
		t.Fatalf("ARN %s", arn)
	}
	if z := aws.ToString(g.Subnets[0].SubnetAvailabilityZone.Name); z != "eu-west-1a" {
		t.Fatalf("zone %s in eu-west-1", z)
	}
	_, err = us.DescribeCacheSubnetGroups(ctx(t), &elasticache.DescribeCacheSubnetGroupsInput{CacheSubnetGroupName: aws.String("regional")})
	wantAPIError(t, err, "CacheSubnetGroupNotFoundFault", 400)
	_, err = us.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: g.ARN})
	wantAPIError(t, err, "CacheSubnetGroupNotFoundFault", 400)
	_, err = us.DeleteCacheSubnetGroup(ctx(t), &elasticache.DeleteCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("regional")})
	wantAPIError(t, err, "CacheSubnetGroupNotFoundFault", 400)

	usGroup, err := us.CreateCacheSubnetGroup(ctx(t), &elasticache.CreateCacheSubnetGroupInput{CacheSubnetGroupName: aws.String("regional"),
		CacheSubnetGroupDescription: aws.String("us too"), SubnetIds: []string{"subnet-aaaa1111"}})
	if err != nil {
		t.Fatalf("the same name in another region: %v", err)
	}
	if aws.ToString(usGroup.CacheSubnetGroup.VpcId) == aws.ToString(g.VpcId) {
		t.Errorf("two regions share VPC %s", aws.ToString(g.VpcId))
	}
	if z := aws.ToString(usGroup.CacheSubnetGroup.Subnets[0].SubnetAvailabilityZone.Name); z != "us-east-1a" {
		t.Errorf("zone %s in us-east-1", z)
	}
	tags, err := eu.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: g.ARN})
	if err != nil || len(tags.TagList) != 1 {
		t.Fatalf("eu tags: %+v %v", tags, err)
	}
	if got := describeSubnetGroup(t, eu, "regional"); aws.ToString(got.CacheSubnetGroupDescription) != "eu only" {
		t.Fatalf("the us group overwrote the eu one: %+v", got)
	}
}
