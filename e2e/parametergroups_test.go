package e2e

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"

	"github.com/hoardcache/hoard/internal/catalog"
)

// Every family's full catalogue pages through DescribeEngineDefaultParameters with
// the SDK paginator, 20 at a time, with nothing lost or repeated.
func TestEngineDefaultsPaginateEveryFamily(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-east-1")
	for _, name := range catalog.FamilyNames() {
		family, _ := catalog.Lookup(name)
		p := elasticache.NewDescribeEngineDefaultParametersPaginator(c, &elasticache.DescribeEngineDefaultParametersInput{
			CacheParameterGroupFamily: aws.String(name), MaxRecords: aws.Int32(20)})
		seen := map[string]bool{}
		pages := 0
		for p.HasMorePages() {
			out, err := p.NextPage(ctx(t))
			if err != nil {
				t.Fatalf("%s page %d: %v", name, pages, err)
			}
			pages++
			if got := aws.ToString(out.EngineDefaults.CacheParameterGroupFamily); got != name {
				t.Fatalf("family %s: response names family %s", name, got)
			}
			n := len(out.EngineDefaults.Parameters) + len(out.EngineDefaults.CacheNodeTypeSpecificParameters)
			if n > 20 {
				t.Fatalf("%s: page of %d items with MaxRecords 20", name, n)
			}
			for _, prm := range out.EngineDefaults.Parameters {
				id := aws.ToString(prm.ParameterName)
				if seen[id] {
					t.Fatalf("%s: %s returned twice", name, id)
				}
				seen[id] = true
				want, ok := family.Param(id)
				if !ok {
					t.Fatalf("%s: unknown parameter %s", name, id)
				}
				if aws.ToString(prm.ParameterValue) != want.Value || aws.ToBool(prm.IsModifiable) != want.Modifiable ||
					string(prm.ChangeType) != want.ChangeType || aws.ToString(prm.DataType) != want.DataType ||
					aws.ToString(prm.AllowedValues) != want.AllowedValues || aws.ToString(prm.MinimumEngineVersion) != want.MinimumEngineVersion {
					t.Fatalf("%s: %s came back as %+v, catalogue says %+v", name, id, prm, want)
				}
			}
			for _, prm := range out.EngineDefaults.CacheNodeTypeSpecificParameters {
				id := aws.ToString(prm.ParameterName)
				if seen[id] {
					t.Fatalf("%s: %s returned twice", name, id)
				}
				seen[id] = true
				want, _ := family.NodeTypeParam(id)
				if want == nil || len(prm.CacheNodeTypeSpecificValues) != len(want.Values) {
					t.Fatalf("%s: node-type-specific %s: got %d values", name, id, len(prm.CacheNodeTypeSpecificValues))
				}
				for _, v := range prm.CacheNodeTypeSpecificValues {
					if want.Values[aws.ToString(v.CacheNodeType)] != aws.ToString(v.Value) {
						t.Fatalf("%s: %s for %s = %s", name, id, aws.ToString(v.CacheNodeType), aws.ToString(v.Value))
					}
				}
			}
		}
		if total := len(family.Params) + len(family.NodeTypeSpecific); len(seen) != total {
			t.Errorf("%s: paged through %d parameters, catalogue has %d", name, len(seen), total)
		}
		if wantPages := (len(seen) + 19) / 20; pages != wantPages {
			t.Errorf("%s: %d pages, want %d", name, pages, wantPages)
		}
	}
}

func TestDefaultParameterGroupsExistAndAreReadOnly(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-east-1")
	var names []string
	p := elasticache.NewDescribeCacheParameterGroupsPaginator(c, &elasticache.DescribeCacheParameterGroupsInput{MaxRecords: aws.Int32(20)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range out.CacheParameterGroups {
			names = append(names, aws.ToString(g.CacheParameterGroupName))
			wantARN := fmt.Sprintf("arn:aws:elasticache:us-east-1:%s:parametergroup:%s", testAccount, aws.ToString(g.CacheParameterGroupName))
			if aws.ToString(g.ARN) != wantARN {
				t.Errorf("ARN %s, want %s", aws.ToString(g.ARN), wantARN)
			}
		}
	}
	if len(names) != len(catalog.DefaultGroupNames()) {
		t.Fatalf("got %d default groups %v, want %v", len(names), names, catalog.DefaultGroupNames())
	}
	for _, g := range []string{"default.redis7", "default.redis7.cluster.on", "default.memcached1.6", "default.valkey8.cluster.on", "default.redis2.6"} {
		out, err := c.DescribeCacheParameterGroups(ctx(t), &elasticache.DescribeCacheParameterGroupsInput{CacheParameterGroupName: aws.String(g)})
		if err != nil || len(out.CacheParameterGroups) != 1 {
			t.Fatalf("describe %s: %v", g, err)
		}
	}
	params, err := c.DescribeCacheParameters(ctx(t), &elasticache.DescribeCacheParametersInput{CacheParameterGroupName: aws.String("default.redis7.cluster.on"), Source: aws.String("user")})
	if err != nil {
		t.Fatal(err)
	}
	if len(params.Parameters) != 1 || aws.ToString(params.Parameters[0].ParameterName) != "cluster-enabled" || aws.ToString(params.Parameters[0].ParameterValue) != "yes" {
		t.Fatalf("default.redis7.cluster.on user parameters: %+v", params.Parameters)
	}
	_, err = c.ModifyCacheParameterGroup(ctx(t), &elasticache.ModifyCacheParameterGroupInput{CacheParameterGroupName: aws.String("default.redis7"),
		ParameterNameValues: []types.ParameterNameValue{{ParameterName: aws.String("maxmemory-policy"), ParameterValue: aws.String("allkeys-lru")}}})
	wantAPIError(t, err, "InvalidCacheParameterGroupState", 400)
	_, err = c.ResetCacheParameterGroup(ctx(t), &elasticache.ResetCacheParameterGroupInput{CacheParameterGroupName: aws.String("default.redis7"), ResetAllParameters: aws.Bool(true)})
	wantAPIError(t, err, "InvalidCacheParameterGroupState", 400)
	_, err = c.DeleteCacheParameterGroup(ctx(t), &elasticache.DeleteCacheParameterGroupInput{CacheParameterGroupName: aws.String("default.memcached1.6")})
	wantAPIError(t, err, "InvalidCacheParameterGroupState", 400)
}

func paramValues(t *testing.T, c *elasticache.Client, group, source string) map[string]string {
	t.Helper()
	in := &elasticache.DescribeCacheParametersInput{CacheParameterGroupName: aws.String(group), MaxRecords: aws.Int32(100)}
	if source != "" {
		in.Source = aws.String(source)
	}
	values := map[string]string{}
	p := elasticache.NewDescribeCacheParametersPaginator(c, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("describe parameters of %s: %v", group, err)
		}
		for _, prm := range out.Parameters {
			if source != "" && aws.ToString(prm.Source) != source {
				t.Fatalf("Source filter %s returned %s with source %s", source, aws.ToString(prm.ParameterName), aws.ToString(prm.Source))
			}
			values[aws.ToString(prm.ParameterName)] = aws.ToString(prm.ParameterValue)
		}
	}
	return values
}

func TestParameterGroupLifecycle(t *testing.T) {
	h := startHoard(t)
	c := h.client("us-east-1")
	created, err := c.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{
		CacheParameterGroupName:   aws.String("My-Redis7"),
		CacheParameterGroupFamily: aws.String("redis7"),
		Description:               aws.String("tuned & <escaped>"),
		Tags:                      []types.Tag{{Key: aws.String("team"), Value: aws.String("cache")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	g := created.CacheParameterGroup
	if aws.ToString(g.CacheParameterGroupName) != "my-redis7" || aws.ToString(g.Description) != "tuned & <escaped>" ||
		aws.ToString(g.ARN) != "arn:aws:elasticache:us-east-1:"+testAccount+":parametergroup:my-redis7" || aws.ToBool(g.IsGlobal) {
		t.Fatalf("created group: %+v", g)
	}
	if user := paramValues(t, c, "my-redis7", "user"); len(user) != 0 {
		t.Fatalf("a new group has user parameters: %v", user)
	}
	_, err = c.ModifyCacheParameterGroup(ctx(t), &elasticache.ModifyCacheParameterGroupInput{CacheParameterGroupName: aws.String("my-redis7"),
		ParameterNameValues: []types.ParameterNameValue{
			{ParameterName: aws.String("maxmemory-policy"), ParameterValue: aws.String("allkeys-lru")},
			{ParameterName: aws.String("timeout"), ParameterValue: aws.String("300")},
			{ParameterName: aws.String("databases"), ParameterValue: aws.String("32")},
		}})
	if err != nil {
		t.Fatal(err)
	}
	user := paramValues(t, c, "my-redis7", "user")
	if len(user) != 3 || user["maxmemory-policy"] != "allkeys-lru" || user["timeout"] != "300" || user["databases"] != "32" {
		t.Fatalf("user parameters after modify: %v", user)
	}
	all := paramValues(t, c, "my-redis7", "")
	family, _ := catalog.Lookup("redis7")
	if len(all) != len(family.Params) || all["maxmemory-policy"] != "allkeys-lru" {
		t.Fatalf("all parameters: %d, want %d", len(all), len(family.Params))
	}
	system := paramValues(t, c, "my-redis7", "system")
	for name := range system {
		if p, _ := family.Param(name); p.Modifiable {
			t.Errorf("modifiable parameter %s reported as system", name)
		}
	}
	engineDefault := paramValues(t, c, "my-redis7", "engine-default")
	if len(user)+len(system)+len(engineDefault) != len(all) {
		t.Errorf("sources do not partition the parameters: %d+%d+%d != %d", len(user), len(system), len(engineDefault), len(all))
	}

	_, err = c.ResetCacheParameterGroup(ctx(t), &elasticache.ResetCacheParameterGroupInput{CacheParameterGroupName: aws.String("my-redis7"),
		ParameterNameValues: []types.ParameterNameValue{{ParameterName: aws.String("timeout")}}})
	if err != nil {
		t.Fatal(err)
	}
	if user := paramValues(t, c, "my-redis7", "user"); len(user) != 2 || user["timeout"] != "" {
		t.Fatalf("after resetting timeout: %v", user)
	}
	_, err = c.ResetCacheParameterGroup(ctx(t), &elasticache.ResetCacheParameterGroupInput{CacheParameterGroupName: aws.String("my-redis7"), ResetAllParameters: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if user := paramValues(t, c, "my-redis7", "user"); len(user) != 0 {
		t.Fatalf("after reset all: %v", user)
	}
	tags, err := c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: g.ARN})
	if err != nil || len(tags.TagList) != 1 || aws.ToString(tags.TagList[0].Key) != "team" {
		t.Fatalf("tags of the new group: %+v, %v", tags, err)
	}
	if _, err := c.DeleteCacheParameterGroup(ctx(t), &elasticache.DeleteCacheParameterGroupInput{CacheParameterGroupName: aws.String("my-redis7")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeCacheParameterGroups(ctx(t), &elasticache.DescribeCacheParameterGroupsInput{CacheParameterGroupName: aws.String("my-redis7")})
	wantAPIError(t, err, "CacheParameterGroupNotFound", 404)
	// The group's tags went with it: a new group of the same name starts untagged.
	if _, err := c.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{CacheParameterGroupName: aws.String("my-redis7"),
		CacheParameterGroupFamily: aws.String("redis7"), Description: aws.String("again")}); err != nil {
		t.Fatal(err)
	}
	tags, err = c.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: g.ARN})
	if err != nil || len(tags.TagList) != 0 {
		t.Fatalf("tags of the re-created group: %+v, %v", tags, err)
	}
}

func nameValues(n int) []types.ParameterNameValue {
	list := make([]types.ParameterNameValue, n)
	for i := range list {
		list[i] = types.ParameterNameValue{ParameterName: aws.String("timeout"), ParameterValue: aws.String(fmt.Sprint(20 + i))}
	}
	return list
}

func TestParameterGroupErrors(t *testing.T) {
	h := startHoard(t, withArgs("--quota-parameter-groups", "3"))
	c := h.client("us-east-1")
	create := func(name, family string) error {
		_, err := c.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{
			CacheParameterGroupName: aws.String(name), CacheParameterGroupFamily: aws.String(family), Description: aws.String("d")})
		return err
	}
	modify := func(group string, nv ...types.ParameterNameValue) error {
		_, err := c.ModifyCacheParameterGroup(ctx(t), &elasticache.ModifyCacheParameterGroupInput{CacheParameterGroupName: aws.String(group), ParameterNameValues: nv})
		return err
	}
	nv := func(name, value string) types.ParameterNameValue {
		return types.ParameterNameValue{ParameterName: aws.String(name), ParameterValue: aws.String(value)}
	}
	if err := create("mc", "memcached1.6"); err != nil {
		t.Fatal(err)
	}
	if err := create("rd", "redis6.x"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		err    error
		code   string
		status int
	}{
		{"name starting with a digit", create("1abc", "redis7"), "InvalidParameterValue", 400},
		{"name with two hyphens", create("a--b", "redis7"), "InvalidParameterValue", 400},
		{"name ending with a hyphen", create("ab-", "redis7"), "InvalidParameterValue", 400},
		{"name with a dot", create("default.mine", "redis7"), "InvalidParameterValue", 400},
		{"unknown family", create("fam", "redis9"), "InvalidParameterValue", 400},
		{"duplicate name", create("MC", "memcached1.6"), "CacheParameterGroupAlreadyExists", 400},
		{"unknown parameter", modify("rd", nv("no-such-parameter", "1")), "InvalidParameterValue", 400},
		{"non-modifiable parameter", modify("mc", nv("max_simultaneous_connections", "10")), "InvalidParameterValue", 400},
		{"value not allowed", modify("rd", nv("maxmemory-policy", "sometimes")), "InvalidParameterValue", 400},
		{"not an integer", modify("rd", nv("timeout", "soon")), "InvalidParameterValue", 400},
		{"below range", modify("rd", nv("timeout", "-1")), "InvalidParameterValue", 400},
		{"21 parameters", modify("rd", nameValues(21)...), "InvalidParameterValue", 400},
		{"modify missing group", modify("nope", nv("timeout", "1")), "CacheParameterGroupNotFound", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantAPIError(t, tc.err, tc.code, tc.status) })
	}
	if err := modify("rd", nameValues(20)...); err != nil {
		t.Fatalf("20 parameters are allowed: %v", err)
	}
	// A failed modify changes nothing, not even its valid parameters.
	wantAPIError(t, modify("rd", nv("timeout", "5"), nv("maxmemory-policy", "never")), "InvalidParameterValue", 400)
	if user := paramValues(t, c, "rd", "user"); user["timeout"] != "39" || len(user) != 1 {
		t.Fatalf("a rejected modify left changes: %v", user)
	}

	_, err := c.ResetCacheParameterGroup(ctx(t), &elasticache.ResetCacheParameterGroupInput{CacheParameterGroupName: aws.String("rd"),
		ResetAllParameters: aws.Bool(true), ParameterNameValues: []types.ParameterNameValue{nv("timeout", "")}})
	wantAPIError(t, err, "InvalidParameterCombination", 400)
	_, err = c.ResetCacheParameterGroup(ctx(t), &elasticache.ResetCacheParameterGroupInput{CacheParameterGroupName: aws.String("nope"), ResetAllParameters: aws.Bool(true)})
	wantAPIError(t, err, "CacheParameterGroupNotFound", 404)
	_, err = c.DeleteCacheParameterGroup(ctx(t), &elasticache.DeleteCacheParameterGroupInput{CacheParameterGroupName: aws.String("nope")})
	wantAPIError(t, err, "CacheParameterGroupNotFound", 404)
	_, err = c.DescribeCacheParameters(ctx(t), &elasticache.DescribeCacheParametersInput{CacheParameterGroupName: aws.String("nope")})
	wantAPIError(t, err, "CacheParameterGroupNotFound", 404)
	_, err = c.DescribeCacheParameters(ctx(t), &elasticache.DescribeCacheParametersInput{CacheParameterGroupName: aws.String("rd"), Source: aws.String("somebody")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	for _, n := range []int32{0, 19, 101} {
		_, err = c.DescribeEngineDefaultParameters(ctx(t), &elasticache.DescribeEngineDefaultParametersInput{CacheParameterGroupFamily: aws.String("redis7"), MaxRecords: aws.Int32(n)})
		wantAPIError(t, err, "InvalidParameterValue", 400)
		_, err = c.DescribeCacheParameterGroups(ctx(t), &elasticache.DescribeCacheParameterGroupsInput{MaxRecords: aws.Int32(n)})
		wantAPIError(t, err, "InvalidParameterValue", 400)
	}
	_, err = c.DescribeCacheParameters(ctx(t), &elasticache.DescribeCacheParametersInput{CacheParameterGroupName: aws.String("rd"), Marker: aws.String("not-a-marker")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeEngineDefaultParameters(ctx(t), &elasticache.DescribeEngineDefaultParametersInput{CacheParameterGroupFamily: aws.String("redis9")})
	wantAPIError(t, err, "InvalidParameterValue", 400)

	if err := create("third", "valkey8"); err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, create("fourth", "valkey8"), "CacheParameterGroupQuotaExceeded", 400)
}

// Resources live per account and region: a group made in eu-west-1 is not seen from us-east-1.
func TestParameterGroupsArePerRegion(t *testing.T) {
	h := startHoard(t)
	eu, us := h.client("eu-west-1"), h.client("us-east-1")
	out, err := eu.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{CacheParameterGroupName: aws.String("regional"),
		CacheParameterGroupFamily: aws.String("redis7"), Description: aws.String("eu only")})
	if err != nil {
		t.Fatal(err)
	}
	if arn := aws.ToString(out.CacheParameterGroup.ARN); arn != "arn:aws:elasticache:eu-west-1:"+testAccount+":parametergroup:regional" {
		t.Fatalf("ARN %s", arn)
	}
	_, err = us.DescribeCacheParameterGroups(ctx(t), &elasticache.DescribeCacheParameterGroupsInput{CacheParameterGroupName: aws.String("regional")})
	wantAPIError(t, err, "CacheParameterGroupNotFound", 404)
	if _, err := us.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{CacheParameterGroupName: aws.String("regional"),
		CacheParameterGroupFamily: aws.String("memcached1.6"), Description: aws.String("us too")}); err != nil {
		t.Fatalf("the same name in another region: %v", err)
	}
	_, err = us.ListTagsForResource(ctx(t), &elasticache.ListTagsForResourceInput{ResourceName: out.CacheParameterGroup.ARN})
	wantAPIError(t, err, "CacheParameterGroupNotFound", 404)
}
