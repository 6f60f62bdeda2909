package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
)

func describeSecurityGroup(t *testing.T, c *elasticache.Client, name string) types.CacheSecurityGroup {
	t.Helper()
	out, err := c.DescribeCacheSecurityGroups(ctx(t), &elasticache.DescribeCacheSecurityGroupsInput{CacheSecurityGroupName: aws.String(name)})
	if err != nil {
		t.Fatalf("describe security group %s: %v", name, err)
	}
	if len(out.CacheSecurityGroups) != 1 {
		t.Fatalf("describe security group %s: %d groups", name, len(out.CacheSecurityGroups))
	}
	return out.CacheSecurityGroups[0]
}

// grants lists a group's EC2 security groups as name/owner=status, sorted.
func grants(g types.CacheSecurityGroup) string {
	var list []string
	for _, e := range g.EC2SecurityGroups {
		list = append(list, aws.ToString(e.EC2SecurityGroupName)+"/"+aws.ToString(e.EC2SecurityGroupOwnerId)+"="+aws.ToString(e.Status))
	}
	sort.Strings(list)
	return strings.Join(list, " ")
}

func authorize(c *elasticache.Client, t *testing.T, group, ec2Group, owner string) (*elasticache.AuthorizeCacheSecurityGroupIngressOutput, error) {
	return c.AuthorizeCacheSecurityGroupIngress(ctx(t), &elasticache.AuthorizeCacheSecurityGroupIngressInput{
		CacheSecurityGroupName: aws.String(group), EC2SecurityGroupName: aws.String(ec2Group), EC2SecurityGroupOwnerId: aws.String(owner)})
}

func revoke(c *elasticache.Client, t *testing.T, group, ec2Group, owner string) (*elasticache.RevokeCacheSecurityGroupIngressOutput, error) {
	return c.RevokeCacheSecurityGroupIngress(ctx(t), &elasticache.RevokeCacheSecurityGroupIngressInput{
		CacheSecurityGroupName: aws.String(group), EC2SecurityGroupName: aws.String(ec2Group), EC2SecurityGroupOwnerId: aws.String(owner)})
}

func TestSecurityGroupLifecycle(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-east-1")
	def := describeSecurityGroup(t, c, "default")
	if aws.ToString(def.OwnerId) != testAccount || aws.ToString(def.ARN) != "arn:aws:elasticache:us-east-1:"+testAccount+":securitygroup:default" || len(def.EC2SecurityGroups) != 0 {
		t.Fatalf("default group: %+v", def)
	}
	created, err := c.CreateCacheSecurityGroup(ctx(t), &elasticache.CreateCacheSecurityGroupInput{
		CacheSecurityGroupName: aws.String("Web-Cache"),
		Description:            aws.String("web tier & <friends>"),
		Tags:                   []types.Tag{{Key: aws.String("team"), Value: aws.String("web")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	g := created.CacheSecurityGroup
	arn := "arn:aws:elasticache:us-east-1:" + testAccount + ":securitygroup:web-cache"
	if aws.ToString(g.CacheSecurityGroupName) != "web-cache" || aws.ToString(g.Description) != "web tier & <friends>" ||
		aws.ToString(g.OwnerId) != testAccount || aws.ToString(g.ARN) != arn || len(g.EC2SecurityGroups) != 0 {
		t.Fatalf("created group: %+v", g)
	}

	auth, err := authorize(c, t, "WEB-CACHE", "app-servers", "111122223333")
	if err != nil {
		t.Fatal(err)
	}
	if got := grants(*auth.CacheSecurityGroup); got != "app-servers/111122223333=authorized" {
		t.Fatalf("after authorize: %s", got)
	}
	// The same EC2 group name from another account is another grant.
	if _, err := authorize(c, t, "web-cache", "app-servers", "444455556666"); err != nil {
		t.Fatal(err)
	}
	if _, err := authorize(c, t, "web-cache", "batch", "111122223333"); err != nil {
		t.Fatal(err)
	}
	if got := grants(describeSecurityGroup(t, c, "web-cache")); got != "app-servers/111122223333=authorized app-servers/444455556666=authorized batch/111122223333=authorized" {
		t.Fatalf("described grants: %s", got)
	}
	rev, err := revoke(c, t, "web-cache", "app-servers", "111122223333")
	if err != nil {
		t.Fatal(err)
	}
	if got := grants(*rev.CacheSecurityGroup); got != "app-servers/444455556666=authorized batch/111122223333=authorized" {
		t.Fatalf("after revoke: %s", got)
	}

	// The default group takes grants too, and is still listed once.
	if _, err := authorize(c, t, "default", "legacy", "111122223333"); err != nil {
		t.Fatal(err)
	}
	all, err := c.DescribeCacheSecurityGroups(ctx(t), &elasticache.DescribeCacheSecurityGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.CacheSecurityGroups) != 2 || aws.ToString(all.CacheSecurityGroups[0].CacheSecurityGroupName) != "default" ||
		grants(all.CacheSecurityGroups[0]) != "legacy/111122223333=authorized" || aws.ToString(all.CacheSecurityGroups[1].CacheSecurityGroupName) != "web-cache" {
		t.Fatalf("all groups: %+v", all.CacheSecurityGroups)
	}
	if _, err := revoke(c, t, "default", "legacy", "111122223333"); err != nil {
		t.Fatal(err)
	}

	// It all survives a crash.
	h.kill9()
	h.restart()
	c = h.client("us-east-1")
	if got := grants(describeSecurityGroup(t, c, "web-cache")); got != "app-servers/444455556666=authorized batch/111122223333=authorized" {
		t.Fatalf("grants after kill -9 and restart: %s", got)
	}
	if got := describeSecurityGroup(t, c, "default"); len(got.EC2SecurityGroups) != 0 {
		t.Fatalf("default group after restart: %s", grants(got))
	}
	tags, err := c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: aws.String(arn)})
	if err != nil || len(tags.TagList) != 1 || aws.ToString(tags.TagList[0].Key) != "team" || aws.ToString(tags.TagList[0].Value) != "web" {
		t.Fatalf("tags of the group: %+v, %v", tags, err)
	}

	if _, err := c.DeleteCacheSecurityGroup(ctx(t), &elasticache.DeleteCacheSecurityGroupInput{CacheSecurityGroupName: aws.String("Web-Cache")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeCacheSecurityGroups(ctx(t), &elasticache.DescribeCacheSecurityGroupsInput{CacheSecurityGroupName: aws.String("web-cache")})
	wantAPIError(t, err, "CacheSecurityGroupNotFound", 404)
	_, err = c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: aws.String(arn)})
	wantAPIError(t, err, "CacheSecurityGroupNotFound", 404)
	// A new group of the same name starts with no grants and no tags.
	again, err := c.CreateCacheSecurityGroup(ctx(t), &elasticache.CreateCacheSecurityGroupInput{CacheSecurityGroupName: aws.String("web-cache"), Description: aws.String("again")})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.CacheSecurityGroup.EC2SecurityGroups) != 0 {
		t.Fatalf("re-created group has grants: %s", grants(*again.CacheSecurityGroup))
	}
	tags, err = c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: aws.String(arn)})
	if err != nil || len(tags.TagList) != 0 {
		t.Fatalf("tags of the re-created group: %+v, %v", tags, err)
	}
}

func TestSecurityGroupErrors(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-east-1")
	create := func(name, description string) error {
		_, err := c.CreateCacheSecurityGroup(ctx(t), &elasticache.CreateCacheSecurityGroupInput{CacheSecurityGroupName: aws.String(name), Description: aws.String(description)})
		return err
	}
	if err := create("web", "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := authorize(c, t, "web", "app", "111122223333"); err != nil {
		t.Fatal(err)
	}
	_, authTwice := authorize(c, t, "web", "app", "111122223333")
	_, authMissing := authorize(c, t, "nope", "app", "111122223333")
	_, authBadOwner := authorize(c, t, "web", "app", "1111-2222-3333")
	_, authShortOwner := authorize(c, t, "web", "app", "12345")
	_, authNoName := authorize(c, t, "web", "", "111122223333")
	_, revokeUnknown := revoke(c, t, "web", "app", "444455556666")
	_, revokeMissing := revoke(c, t, "nope", "app", "111122223333")
	_, revokeDefault := revoke(c, t, "default", "app", "111122223333")
	_, deleteMissing := c.DeleteCacheSecurityGroup(ctx(t), &elasticache.DeleteCacheSecurityGroupInput{CacheSecurityGroupName: aws.String("nope")})
	_, deleteDefault := c.DeleteCacheSecurityGroup(ctx(t), &elasticache.DeleteCacheSecurityGroupInput{CacheSecurityGroupName: aws.String("Default")})
	_, describeMissing := c.DescribeCacheSecurityGroups(ctx(t), &elasticache.DescribeCacheSecurityGroupsInput{CacheSecurityGroupName: aws.String("nope")})
	cases := []struct {
		name   string
		err    error
		code   string
		status int
	}{
		{"create default", create("Default", "d"), "InvalidParameterValue", 400},
		{"name with an underscore", create("a_b", "d"), "InvalidParameterValue", 400},
		{"name of 256 characters", create(strings.Repeat("s", 256), "d"), "InvalidParameterValue", 400},
		{"empty description", create("nodesc", ""), "InvalidParameterValue", 400},
		{"duplicate name", create("WEB", "d"), "CacheSecurityGroupAlreadyExists", 400},
		{"authorize twice", authTwice, "AuthorizationAlreadyExists", 400},
		{"authorize on a missing group", authMissing, "CacheSecurityGroupNotFound", 404},
		{"owner id with dashes", authBadOwner, "InvalidParameterValue", 400},
		{"owner id too short", authShortOwner, "InvalidParameterValue", 400},
		{"blank EC2 group name", authNoName, "InvalidParameterValue", 400},
		{"revoke what was never authorized", revokeUnknown, "AuthorizationNotFound", 404},
		{"revoke on a missing group", revokeMissing, "CacheSecurityGroupNotFound", 404},
		{"revoke on the bare default group", revokeDefault, "AuthorizationNotFound", 404},
		{"delete a missing group", deleteMissing, "CacheSecurityGroupNotFound", 404},
		{"delete the default group", deleteDefault, "InvalidCacheSecurityGroupState", 400},
		{"describe a missing group", describeMissing, "CacheSecurityGroupNotFound", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantAPIError(t, tc.err, tc.code, tc.status) })
	}
	if got := grants(describeSecurityGroup(t, c, "web")); got != "app/111122223333=authorized" {
		t.Fatalf("failed calls changed the grants: %s", got)
	}
	for _, n := range []int32{0, 19, 101} {
		_, err := c.DescribeCacheSecurityGroups(ctx(t), &elasticache.DescribeCacheSecurityGroupsInput{MaxRecords: aws.Int32(n)})
		wantAPIError(t, err, "InvalidParameterValue", 400)
	}
	_, err := c.DescribeCacheSecurityGroups(ctx(t), &elasticache.DescribeCacheSecurityGroupsInput{Marker: aws.String("not-a-marker")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
}

// 50 custom groups fill the quota (a default group with grants does not count); with
// the default group they page 20 at a time.
func TestSecurityGroupQuotaAndPagination(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-east-1")
	if _, err := authorize(c, t, "default", "app", "111122223333"); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"default": true}
	for i := range 50 {
		name := fmt.Sprintf("sec-%02d", i)
		want[name] = true
		if _, err := c.CreateCacheSecurityGroup(ctx(t), &elasticache.CreateCacheSecurityGroupInput{CacheSecurityGroupName: aws.String(name), Description: aws.String("d")}); err != nil {
			t.Fatalf("group %d: %v", i, err)
		}
	}
	_, err := c.CreateCacheSecurityGroup(ctx(t), &elasticache.CreateCacheSecurityGroupInput{CacheSecurityGroupName: aws.String("one-too-many"), Description: aws.String("d")})
	wantAPIError(t, err, "QuotaExceeded.CacheSecurityGroup", 400)

	var names []string
	var sizes []int
	p := elasticache.NewDescribeCacheSecurityGroupsPaginator(c, &elasticache.DescribeCacheSecurityGroupsInput{MaxRecords: aws.Int32(20)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(out.CacheSecurityGroups))
		for _, g := range out.CacheSecurityGroups {
			names = append(names, aws.ToString(g.CacheSecurityGroupName))
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
	if _, err := c.DeleteCacheSecurityGroup(ctx(t), &elasticache.DeleteCacheSecurityGroupInput{CacheSecurityGroupName: aws.String("sec-13")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateCacheSecurityGroup(ctx(t), &elasticache.CreateCacheSecurityGroupInput{CacheSecurityGroupName: aws.String("one-too-many"), Description: aws.String("d")}); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
}

// Security groups live per account and region.
func TestSecurityGroupsArePerRegion(t *testing.T) {
	h := startHoard(t)
	eu, us := h.client("eu-west-1"), h.client("us-east-1")
	out, err := eu.CreateCacheSecurityGroup(ctx(t), &elasticache.CreateCacheSecurityGroupInput{CacheSecurityGroupName: aws.String("regional"),
		Description: aws.String("eu only"), Tags: []types.Tag{{Key: aws.String("where"), Value: aws.String("eu")}}})
	if err != nil {
		t.Fatal(err)
	}
	g := out.CacheSecurityGroup
	if arn := aws.ToString(g.ARN); arn != "arn:aws:elasticache:eu-west-1:"+testAccount+":securitygroup:regional" {
		t.Fatalf("ARN %s", arn)
	}
	if _, err := authorize(eu, t, "default", "eu-app", "111122223333"); err != nil {
		t.Fatal(err)
	}
	_, err = us.DescribeCacheSecurityGroups(ctx(t), &elasticache.DescribeCacheSecurityGroupsInput{CacheSecurityGroupName: aws.String("regional")})
	wantAPIError(t, err, "CacheSecurityGroupNotFound", 404)
	_, err = us.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: g.ARN})
	wantAPIError(t, err, "CacheSecurityGroupNotFound", 404)
	_, err = authorize(us, t, "regional", "app", "111122223333")
	wantAPIError(t, err, "CacheSecurityGroupNotFound", 404)
	if got := describeSecurityGroup(t, us, "default"); len(got.EC2SecurityGroups) != 0 {
		t.Fatalf("us default group got the eu grant: %s", grants(got))
	}
	if _, err := us.CreateCacheSecurityGroup(ctx(t), &elasticache.CreateCacheSecurityGroupInput{CacheSecurityGroupName: aws.String("regional"),
		Description: aws.String("us too")}); err != nil {
		t.Fatalf("the same name in another region: %v", err)
	}
	if got := describeSecurityGroup(t, eu, "regional"); aws.ToString(got.Description) != "eu only" {
		t.Fatalf("the us group overwrote the eu one: %+v", got)
	}
	tags, err := eu.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: g.ARN})
	if err != nil || len(tags.TagList) != 1 {
		t.Fatalf("eu tags: %+v %v", tags, err)
	}
}
