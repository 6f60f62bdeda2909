package service

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

// Cache security groups are the EC2-Classic way of granting EC2 security groups access
// to clusters. hoard keeps them as metadata: grants are "authorized" at once.
const tableSecurityGroups = "securitygroups"

const (
	defaultSecurityGroup = "default"
	ingressAuthorized    = "authorized"
)

// securityGroup is a cache security group as stored. The default group exists in every
// account and region; it is stored only once an ingress grant changes it.
type securityGroup struct {
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Ingress     []ec2Ingress `json:"ingress,omitempty"`
	CreatedAt   time.Time    `json:"createdAt"`
}

// ec2Ingress is one EC2 security group authorized for ingress.
type ec2Ingress struct {
	Name    string `json:"name"`
	OwnerID string `json:"ownerId"`
}

func init() {
	registerTaggable("securitygroup", func(tx *store.Tx, c Caller, name string) error {
		_, err := loadSecurityGroup(tx, c, name)
		return err
	})
}

// loadSecurityGroup returns a group by (lowercase) name, or CacheSecurityGroupNotFound.
func loadSecurityGroup(tx *store.Tx, c Caller, name string) (*securityGroup, error) {
	var g securityGroup
	err := tx.Get(tableSecurityGroups, c.scope()+name, &g)
	switch {
	case err == nil:
		return &g, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	case name == defaultSecurityGroup:
		return &securityGroup{Name: defaultSecurityGroup, Description: defaultSecurityGroup}, nil
	}
	return nil, ecapi.CacheSecurityGroupNotFoundFault.Errorf("CacheSecurityGroup %s not found.", name)
}

func (g *securityGroup) shape(c Caller) ecapi.CacheSecurityGroup {
	ec2 := make([]ecapi.EC2SecurityGroup, len(g.Ingress))
	for i, in := range g.Ingress {
		ec2[i] = ecapi.EC2SecurityGroup{Status: ingressAuthorized, EC2SecurityGroupName: in.Name, EC2SecurityGroupOwnerId: in.OwnerID}
	}
	return ecapi.CacheSecurityGroup{
		OwnerId:                c.Account,
		CacheSecurityGroupName: g.Name,
		Description:            g.Description,
		EC2SecurityGroups:      ec2,
		ARN:                    c.arn("securitygroup", g.Name),
	}
}

// CreateCacheSecurityGroup creates an empty cache security group.
func (s *Service) CreateCacheSecurityGroup(ctx context.Context, in *ecapi.CreateCacheSecurityGroupMessage) (*ecapi.CreateCacheSecurityGroupResult, error) {
	c := CallerOf(ctx)
	name := strings.ToLower(in.CacheSecurityGroupName)
	if err := validateGroupName("CacheSecurityGroupName", name); err != nil {
		return nil, err
	}
	if name == defaultSecurityGroup {
		return nil, ecapi.InvalidParameterValueException.Errorf("CacheSecurityGroupName cannot be %q: the default cache security group is reserved.", in.CacheSecurityGroupName)
	}
	if in.Description == "" {
		return nil, ecapi.InvalidParameterValueException.Errorf("The parameter Description must be provided.")
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	g := &securityGroup{Name: name, Description: in.Description, CreatedAt: s.now()}
	err := s.store.Update(func(tx *store.Tx) error {
		key := c.scope() + name
		if tx.Has(tableSecurityGroups, key) {
			return ecapi.CacheSecurityGroupAlreadyExistsFault.Errorf("Cache security group %s already exists.", name)
		}
		custom := tx.Count(tableSecurityGroups, c.scope())
		if tx.Has(tableSecurityGroups, c.scope()+defaultSecurityGroup) {
			custom-- // a stored default group is not one of the caller's
		}
		if custom >= s.cfg.Quotas.SecurityGroups {
			return ecapi.CacheSecurityGroupQuotaExceededFault.Errorf("Creating this security group would exceed the quota of %d cache security groups.", s.cfg.Quotas.SecurityGroups)
		}
		if err := tx.Put(tableSecurityGroups, key, g); err != nil {
			return err
		}
		return putTags(tx, c.arn("securitygroup", name), in.Tags)
	})
	if err != nil {
		return nil, err
	}
	shape := g.shape(c)
	return &ecapi.CreateCacheSecurityGroupResult{CacheSecurityGroup: &shape}, nil
}

// DescribeCacheSecurityGroups lists the default group and the caller's groups, by name.
func (s *Service) DescribeCacheSecurityGroups(ctx context.Context, in *ecapi.DescribeCacheSecurityGroupsMessage) (*ecapi.CacheSecurityGroupMessage, error) {
	c := CallerOf(ctx)
	var groups []*securityGroup
	err := s.store.View(func(tx *store.Tx) error {
		if in.CacheSecurityGroupName != "" {
			g, err := loadSecurityGroup(tx, c, strings.ToLower(in.CacheSecurityGroupName))
			groups = append(groups, g)
			return err
		}
		stored, err := store.ScanAs[securityGroup](tx, tableSecurityGroups, c.scope())
		if err != nil {
			return err
		}
		for i := range stored {
			groups = append(groups, &stored[i])
		}
		if !tx.Has(tableSecurityGroups, c.scope()+defaultSecurityGroup) {
			g, err := loadSecurityGroup(tx, c, defaultSecurityGroup)
			groups = append(groups, g)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	groups, next, err := pageSorted(groups, func(g *securityGroup) string { return g.Name }, in.MaxRecords, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &ecapi.CacheSecurityGroupMessage{Marker: next, CacheSecurityGroups: []ecapi.CacheSecurityGroup{}}
	for _, g := range groups {
		out.CacheSecurityGroups = append(out.CacheSecurityGroups, g.shape(c))
	}
	return out, nil
}

// DeleteCacheSecurityGroup deletes a group and its tags; the default group stays.
func (s *Service) DeleteCacheSecurityGroup(ctx context.Context, in *ecapi.DeleteCacheSecurityGroupMessage) error {
	c := CallerOf(ctx)
	name := strings.ToLower(in.CacheSecurityGroupName)
	return s.store.Update(func(tx *store.Tx) error {
		if _, err := loadSecurityGroup(tx, c, name); err != nil {
			return err
		}
		if name == defaultSecurityGroup {
			return ecapi.InvalidCacheSecurityGroupStateFault.Errorf("The default cache security group cannot be deleted.")
		}
		if user, err := clusterUsing(tx, c, func(cl *cluster) bool { return slices.Contains(cl.CacheSecurityGroups, name) }); err != nil || user != "" {
			if err != nil {
				return err
			}
			return ecapi.InvalidCacheSecurityGroupStateFault.Errorf("Cache security group %s is in use by cache cluster %s.", name, user)
		}
		if err := tx.Delete(tableSecurityGroups, c.scope()+name); err != nil {
			return err
		}
		return tx.Delete(tableTags, c.arn("securitygroup", name))
	})
}

// validateIngress checks the EC2 security group of an Authorize or Revoke call.
func validateIngress(groupName, ownerID string) error {
	switch {
	case groupName == "":
		return ecapi.InvalidParameterValueException.Errorf("The parameter EC2SecurityGroupName must be provided and must not be blank.")
	case len(groupName) > 255:
		return ecapi.InvalidParameterValueException.Errorf("Invalid EC2SecurityGroupName: it must be at most 255 characters long.")
	case len(ownerID) != 12 || strings.Trim(ownerID, "0123456789") != "":
		return ecapi.InvalidParameterValueException.Errorf("Invalid EC2SecurityGroupOwnerId %q: it must be a 12-digit AWS account number.", ownerID)
	}
	return nil
}

// changeIngress applies one grant change to a group (the default one included) in one transaction.
func (s *Service) changeIngress(ctx context.Context, groupName string, change func(g *securityGroup) error) (*ecapi.CacheSecurityGroup, error) {
	c := CallerOf(ctx)
	name := strings.ToLower(groupName)
	var g *securityGroup
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if g, err = loadSecurityGroup(tx, c, name); err != nil {
			return err
		}
		if err := change(g); err != nil {
			return err
		}
		return tx.Put(tableSecurityGroups, c.scope()+name, g)
	})
	if err != nil {
		return nil, err
	}
	shape := g.shape(c)
	return &shape, nil
}

// AuthorizeCacheSecurityGroupIngress grants an EC2 security group access; it is authorized at once.
func (s *Service) AuthorizeCacheSecurityGroupIngress(ctx context.Context, in *ecapi.AuthorizeCacheSecurityGroupIngressMessage) (*ecapi.AuthorizeCacheSecurityGroupIngressResult, error) {
	if err := validateIngress(in.EC2SecurityGroupName, in.EC2SecurityGroupOwnerId); err != nil {
		return nil, err
	}
	grant := ec2Ingress{Name: in.EC2SecurityGroupName, OwnerID: in.EC2SecurityGroupOwnerId}
	shape, err := s.changeIngress(ctx, in.CacheSecurityGroupName, func(g *securityGroup) error {
		for _, existing := range g.Ingress {
			if existing == grant {
				return ecapi.AuthorizationAlreadyExistsFault.Errorf("EC2 security group %s of account %s is already authorized for cache security group %s.", grant.Name, grant.OwnerID, g.Name)
			}
		}
		g.Ingress = append(g.Ingress, grant)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ecapi.AuthorizeCacheSecurityGroupIngressResult{CacheSecurityGroup: shape}, nil
}

// RevokeCacheSecurityGroupIngress withdraws an EC2 security group's access at once.
func (s *Service) RevokeCacheSecurityGroupIngress(ctx context.Context, in *ecapi.RevokeCacheSecurityGroupIngressMessage) (*ecapi.RevokeCacheSecurityGroupIngressResult, error) {
	if err := validateIngress(in.EC2SecurityGroupName, in.EC2SecurityGroupOwnerId); err != nil {
		return nil, err
	}
	grant := ec2Ingress{Name: in.EC2SecurityGroupName, OwnerID: in.EC2SecurityGroupOwnerId}
	shape, err := s.changeIngress(ctx, in.CacheSecurityGroupName, func(g *securityGroup) error {
		for i, existing := range g.Ingress {
			if existing == grant {
				g.Ingress = append(g.Ingress[:i], g.Ingress[i+1:]...)
				return nil
			}
		}
		return ecapi.AuthorizationNotFoundFault.Errorf("EC2 security group %s of account %s is not authorized for cache security group %s.", grant.Name, grant.OwnerID, g.Name)
	})
	if err != nil {
		return nil, err
	}
	return &ecapi.RevokeCacheSecurityGroupIngressResult{CacheSecurityGroup: shape}, nil
}
