package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

const (
	tableSubnetGroups = "subnetgroups"
	// tableSubnets remembers, per account and region, the availability zone hoard gave
	// each subnet id the first time a subnet group named it, so a subnet keeps its zone
	// in every group and across modifications, as a real subnet does.
	tableSubnets = "subnets"
)

// maxSubnetsPerGroup is AWS's limit of subnets in one cache subnet group.
const maxSubnetsPerGroup = 20

const (
	defaultSubnetGroup    = "default"
	defaultSubnetGroupDoc = "Default CacheSubnetGroup"
	networkTypeIPv4       = "ipv4"
)

// subnetGroup is a cache subnet group as stored. The default group is not stored: it
// exists in every account and region, over one synthesized subnet per zone.
type subnetGroup struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Subnets     []subnet  `json:"subnets"`
	CreatedAt   time.Time `json:"createdAt"`
	IsDefault   bool      `json:"-"`
}

// subnet is one subnet of a group with the availability zone hoard placed it in.
type subnet struct {
	ID               string `json:"id"`
	AvailabilityZone string `json:"az"`
}

type subnetRecord struct {
	AvailabilityZone string `json:"az"`
}

func init() {
	registerTaggable("subnetgroup", func(tx *store.Tx, c Caller, name string) error {
		_, err := loadSubnetGroup(tx, c, name)
		return err
	})
}

// hoard has no VPCs: every account and region has one synthesized VPC, with a stable
// id, and three availability zones, <region>a to <region>c.
func vpcID(c Caller) string { return "vpc-" + stableHex(c.Account, c.Region, "vpc") }

func availabilityZones(c Caller) []string {
	return []string{c.Region + "a", c.Region + "b", c.Region + "c"}
}

// stableHex is 17 hex digits derived from its parts, the length of today's EC2 ids.
func stableHex(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(sum[:])[:17]
}

func defaultSubnets(c Caller) []subnet {
	zones := availabilityZones(c)
	out := make([]subnet, len(zones))
	for i, az := range zones {
		out[i] = subnet{ID: "subnet-" + stableHex(c.Account, c.Region, "default-subnet", az), AvailabilityZone: az}
	}
	return out
}

func defaultSubnetGroupOf(c Caller) *subnetGroup {
	return &subnetGroup{Name: defaultSubnetGroup, Description: defaultSubnetGroupDoc, Subnets: defaultSubnets(c), IsDefault: true}
}

// loadSubnetGroup returns the default or a custom group by (lowercase) name, or CacheSubnetGroupNotFoundFault.
func loadSubnetGroup(tx *store.Tx, c Caller, name string) (*subnetGroup, error) {
	if name == defaultSubnetGroup {
		return defaultSubnetGroupOf(c), nil
	}
	var g subnetGroup
	if err := tx.Get(tableSubnetGroups, c.scope()+name, &g); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ecapi.CacheSubnetGroupNotFoundFault.Errorf("Cache subnet group %s not found.", name)
		}
		return nil, err
	}
	return &g, nil
}

func (g *subnetGroup) shape(c Caller) ecapi.CacheSubnetGroup {
	subnets := make([]ecapi.Subnet, len(g.Subnets))
	for i, sn := range g.Subnets {
		subnets[i] = ecapi.Subnet{
			SubnetIdentifier:       sn.ID,
			SubnetAvailabilityZone: &ecapi.AvailabilityZone{Name: sn.AvailabilityZone},
			SupportedNetworkTypes:  []string{networkTypeIPv4},
		}
	}
	return ecapi.CacheSubnetGroup{
		CacheSubnetGroupName:        g.Name,
		CacheSubnetGroupDescription: g.Description,
		VpcId:                       vpcID(c),
		Subnets:                     subnets,
		ARN:                         c.arn("subnetgroup", g.Name),
		SupportedNetworkTypes:       []string{networkTypeIPv4},
	}
}

// validateGroupName applies the documented rule for subnet and security group names:
// 1 to 255 ASCII letters, digits and hyphens. (AWS documents no first-letter or
// hyphen-placement rule for these, unlike clusters and parameter groups.)
func validateGroupName(param, name string) error {
	if name == "" {
		return ecapi.InvalidParameterValueException.Errorf("The parameter %s must be provided and must not be blank.", param)
	}
	if len(name) > 255 {
		return ecapi.InvalidParameterValueException.Errorf("Invalid %s %q: it must be at most 255 characters long.", param, name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isLetter(c) && !(c >= '0' && c <= '9') && c != '-' {
			return ecapi.InvalidParameterValueException.Errorf("Invalid %s %q: it may contain only ASCII letters, digits and hyphens.", param, name)
		}
	}
	return nil
}

// validSubnetID accepts what an EC2 subnet id looks like: subnet- and letters or digits.
func validSubnetID(id string) bool {
	rest, ok := strings.CutPrefix(id, "subnet-")
	if !ok || rest == "" || len(rest) > 64 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !isLetter(c) && !(c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// checkSubnetIDs validates a group's subnet list and returns it without duplicates, in order.
func checkSubnetIDs(ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, ecapi.InvalidParameterValueException.Errorf("The parameter SubnetIds must be provided.")
	}
	var unique, invalid []string
	seen := map[string]bool{}
	for _, id := range ids {
		if !validSubnetID(id) {
			invalid = append(invalid, id)
			continue
		}
		if !seen[id] {
			seen[id] = true
			unique = append(unique, id)
		}
	}
	// AWS answers a subnet id it cannot resolve with InvalidParameterValue and this
	// message; with no VPCs behind it, hoard can only tell ids that are not subnet ids.
	if len(invalid) > 0 {
		return nil, ecapi.InvalidParameterValueException.Errorf("Some input subnets in :[%s] are invalid.", strings.Join(invalid, ", "))
	}
	if len(unique) > maxSubnetsPerGroup {
		return nil, ecapi.CacheSubnetQuotaExceededFault.Errorf("A cache subnet group can have at most %d subnets; %d were given.", maxSubnetsPerGroup, len(unique))
	}
	return unique, nil
}

// placeSubnets gives each subnet its availability zone: the default subnets' own, the
// zone recorded when the subnet was first named, or else the next zone round-robin.
func placeSubnets(tx *store.Tx, c Caller, ids []string) ([]subnet, error) {
	known := map[string]string{}
	for _, sn := range defaultSubnets(c) {
		known[sn.ID] = sn.AvailabilityZone
	}
	zones := availabilityZones(c)
	out := make([]subnet, len(ids))
	for i, id := range ids {
		az, ok := known[id]
		if !ok {
			var rec subnetRecord
			err := tx.Get(tableSubnets, c.scope()+id, &rec)
			switch {
			case err == nil:
				az = rec.AvailabilityZone
			case errors.Is(err, store.ErrNotFound):
				az = zones[tx.Count(tableSubnets, c.scope())%len(zones)]
				if err := tx.Put(tableSubnets, c.scope()+id, subnetRecord{AvailabilityZone: az}); err != nil {
					return nil, err
				}
			default:
				return nil, err
			}
		}
		out[i] = subnet{ID: id, AvailabilityZone: az}
	}
	return out, nil
}

// CreateCacheSubnetGroup creates a subnet group over 1 to 20 subnets of the region's VPC.
func (s *Service) CreateCacheSubnetGroup(ctx context.Context, in *ecapi.CreateCacheSubnetGroupMessage) (*ecapi.CreateCacheSubnetGroupResult, error) {
	c := CallerOf(ctx)
	name := strings.ToLower(in.CacheSubnetGroupName)
	if err := validateGroupName("CacheSubnetGroupName", name); err != nil {
		return nil, err
	}
	if in.CacheSubnetGroupDescription == "" {
		return nil, ecapi.InvalidParameterValueException.Errorf("The parameter CacheSubnetGroupDescription must be provided.")
	}
	ids, err := checkSubnetIDs(in.SubnetIds)
	if err != nil {
		return nil, err
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	g := &subnetGroup{Name: name, Description: in.CacheSubnetGroupDescription, CreatedAt: s.now()}
	err = s.store.Update(func(tx *store.Tx) error {
		key := c.scope() + name
		if name == defaultSubnetGroup || tx.Has(tableSubnetGroups, key) {
			return ecapi.CacheSubnetGroupAlreadyExistsFault.Errorf("Cache subnet group %s already exists.", name)
		}
		if tx.Count(tableSubnetGroups, c.scope()) >= s.cfg.Quotas.SubnetGroups {
			return ecapi.CacheSubnetGroupQuotaExceededFault.Errorf("Creating this subnet group would exceed the quota of %d cache subnet groups.", s.cfg.Quotas.SubnetGroups)
		}
		subnets, err := placeSubnets(tx, c, ids)
		if err != nil {
			return err
		}
		g.Subnets = subnets
		if err := tx.Put(tableSubnetGroups, key, g); err != nil {
			return err
		}
		return putTags(tx, c.arn("subnetgroup", name), in.Tags)
	})
	if err != nil {
		return nil, err
	}
	shape := g.shape(c)
	return &ecapi.CreateCacheSubnetGroupResult{CacheSubnetGroup: &shape}, nil
}

// DescribeCacheSubnetGroups lists the default group and the caller's groups, by name.
func (s *Service) DescribeCacheSubnetGroups(ctx context.Context, in *ecapi.DescribeCacheSubnetGroupsMessage) (*ecapi.CacheSubnetGroupMessage, error) {
	c := CallerOf(ctx)
	var groups []*subnetGroup
	err := s.store.View(func(tx *store.Tx) error {
		if in.CacheSubnetGroupName != "" {
			g, err := loadSubnetGroup(tx, c, strings.ToLower(in.CacheSubnetGroupName))
			groups = append(groups, g)
			return err
		}
		custom, err := store.ScanAs[subnetGroup](tx, tableSubnetGroups, c.scope())
		for i := range custom {
			groups = append(groups, &custom[i])
		}
		groups = append(groups, defaultSubnetGroupOf(c))
		return err
	})
	if err != nil {
		return nil, err
	}
	groups, next, err := pageSorted(groups, func(g *subnetGroup) string { return g.Name }, in.MaxRecords, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &ecapi.CacheSubnetGroupMessage{Marker: next, CacheSubnetGroups: []ecapi.CacheSubnetGroup{}}
	for _, g := range groups {
		out.CacheSubnetGroups = append(out.CacheSubnetGroups, g.shape(c))
	}
	return out, nil
}

// ModifyCacheSubnetGroup changes a custom group's description and/or replaces its subnets.
func (s *Service) ModifyCacheSubnetGroup(ctx context.Context, in *ecapi.ModifyCacheSubnetGroupMessage) (*ecapi.ModifyCacheSubnetGroupResult, error) {
	c := CallerOf(ctx)
	name := strings.ToLower(in.CacheSubnetGroupName)
	var ids []string
	if in.SubnetIds != nil {
		var err error
		if ids, err = checkSubnetIDs(in.SubnetIds); err != nil {
			return nil, err
		}
	}
	var g *subnetGroup
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if g, err = loadSubnetGroup(tx, c, name); err != nil {
			return err
		}
		if g.IsDefault {
			return ecapi.InvalidParameterValueException.Errorf("The default cache subnet group cannot be modified.")
		}
		if in.CacheSubnetGroupDescription != "" {
			g.Description = in.CacheSubnetGroupDescription
		}
		if ids != nil {
			if g.Subnets, err = placeSubnets(tx, c, ids); err != nil {
				return err
			}
		}
		return tx.Put(tableSubnetGroups, c.scope()+name, g)
	})
	if err != nil {
		return nil, err
	}
	shape := g.shape(c)
	return &ecapi.ModifyCacheSubnetGroupResult{CacheSubnetGroup: &shape}, nil
}

// DeleteCacheSubnetGroup deletes a custom group and its tags; the default group stays.
func (s *Service) DeleteCacheSubnetGroup(ctx context.Context, in *ecapi.DeleteCacheSubnetGroupMessage) error {
	c := CallerOf(ctx)
	name := strings.ToLower(in.CacheSubnetGroupName)
	return s.store.Update(func(tx *store.Tx) error {
		g, err := loadSubnetGroup(tx, c, name)
		if err != nil {
			return err
		}
		if g.IsDefault {
			return ecapi.CacheSubnetGroupInUse.Errorf("The default cache subnet group cannot be deleted.")
		}
		if user, err := clusterUsing(tx, c, func(cl *cluster) bool { return cl.SubnetGroup == name }); err != nil || user != "" {
			if err != nil {
				return err
			}
			return ecapi.CacheSubnetGroupInUse.Errorf("Cache subnet group %s is in use by cache cluster %s.", name, user)
		}
		if err := tx.Delete(tableSubnetGroups, c.scope()+name); err != nil {
			return err
		}
		return tx.Delete(tableTags, c.arn("subnetgroup", name))
	})
}
