package service

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hoardcache/hoard/internal/ecapi"
)

func TestValidateGroupName(t *testing.T) {
	cases := map[string]bool{
		"a": true, "my-group-1": true, "1a": true, "a--b": true, "-a-": true, strings.Repeat("x", 255): true,
		"": false, "a.b": false, "a_b": false, "a b": false, "é": false, strings.Repeat("x", 256): false,
	}
	for name, ok := range cases {
		err := validateGroupName("CacheSubnetGroupName", name)
		if (err == nil) != ok {
			t.Errorf("validateGroupName(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && !ecapi.InvalidParameterValueException.Is(err) {
			t.Errorf("validateGroupName(%q) gave %v, want InvalidParameterValue", name, err)
		}
	}
}

func TestCheckSubnetIDs(t *testing.T) {
	for id, ok := range map[string]bool{
		"subnet-0a1b2c3d": true, "subnet-0123456789abcdef0": true, "subnet-X1": true,
		"subnet-": false, "subnet_1": false, "sn-1234": false, "subnet-12-34": false, " subnet-1": false, "": false,
	} {
		if validSubnetID(id) != ok {
			t.Errorf("validSubnetID(%q) != %v", id, ok)
		}
	}
	got, err := checkSubnetIDs([]string{"subnet-b", "subnet-a", "subnet-b"})
	if err != nil || fmt.Sprint(got) != "[subnet-b subnet-a]" {
		t.Errorf("duplicates: %v %v", got, err)
	}
	many := make([]string, 21)
	for i := range many {
		many[i] = fmt.Sprintf("subnet-%d", i)
	}
	if _, err := checkSubnetIDs(many[:20]); err != nil {
		t.Errorf("20 subnets: %v", err)
	}
	if _, err := checkSubnetIDs(many); !ecapi.CacheSubnetQuotaExceededFault.Is(err) {
		t.Errorf("21 subnets: %v", err)
	}
	// 21 ids of which 20 distinct are within the limit.
	if _, err := checkSubnetIDs(append(many[:20:20], many[0])); err != nil {
		t.Errorf("20 distinct of 21: %v", err)
	}
	for _, bad := range [][]string{nil, {}, {"subnet-1", "nope"}} {
		if _, err := checkSubnetIDs(bad); !ecapi.InvalidParameterValueException.Is(err) {
			t.Errorf("checkSubnetIDs(%q): %v", bad, err)
		}
	}
}

func TestSyntheticNetworkIsStable(t *testing.T) {
	a := Caller{Account: "111111111111", Region: "us-east-1"}
	b := Caller{Account: "111111111111", Region: "eu-west-1"}
	if again := (Caller{Account: a.Account, Region: a.Region}); vpcID(a) != vpcID(again) || vpcID(a) == vpcID(b) || len(vpcID(a)) != len("vpc-")+17 {
		t.Errorf("VPC ids %s, %s", vpcID(a), vpcID(b))
	}
	sa, sb := defaultSubnets(a), defaultSubnets(a)
	if fmt.Sprint(sa) != fmt.Sprint(sb) || sa[0].AvailabilityZone != "us-east-1a" || sa[2].AvailabilityZone != "us-east-1c" {
		t.Errorf("default subnets %v", sa)
	}
}
