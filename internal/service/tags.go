package service

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/hoardcache/hoard/internal/apierr"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

const tableTags = "tags" // ARN -> map of tag key to value

// resourceExists answers, for one ARN resource type, whether the caller has that
// resource (nil) or not (that type's not-found error).
type resourceExists func(tx *store.Tx, c Caller, name string) error

// taggable holds a resourceExists per ARN resource type; each resource family
// registers its own in an init function. Types with no entry are ElastiCache
// types hoard does not hold yet: their resources are not found.
var taggable = map[string]resourceExists{}

func registerTaggable(resourceType string, exists resourceExists) {
	if _, dup := taggable[resourceType]; dup {
		panic("service: taggable resource type registered twice: " + resourceType)
	}
	if _, known := notFoundByType[resourceType]; !known {
		panic("service: unknown ARN resource type: " + resourceType)
	}
	taggable[resourceType] = exists
}

// notFoundByType is the not-found error of each taggable ARN resource type.
var notFoundByType = map[string]apierr.Kind{
	"cluster":                 ecapi.CacheClusterNotFoundFault,
	"parametergroup":          ecapi.CacheParameterGroupNotFoundFault,
	"securitygroup":           ecapi.CacheSecurityGroupNotFoundFault,
	"subnetgroup":             ecapi.CacheSubnetGroupNotFoundFault,
	"replicationgroup":        ecapi.ReplicationGroupNotFoundFault,
	"reserved-instance":       ecapi.ReservedCacheNodeNotFoundFault,
	"snapshot":                ecapi.SnapshotNotFoundFault,
	"user":                    ecapi.UserNotFoundFault,
	"usergroup":               ecapi.UserGroupNotFoundFault,
	"serverlesscache":         ecapi.ServerlessCacheNotFoundFault,
	"serverlesscachesnapshot": ecapi.ServerlessCacheSnapshotNotFoundFault,
}

// taggedResource checks an ARN and that the caller holds the resource it names.
func taggedResource(tx *store.Tx, c Caller, arn string) error {
	parts := strings.SplitN(arn, ":", 7)
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "elasticache" || parts[3] == "" || parts[4] == "" || parts[6] == "" {
		return ecapi.InvalidARNFault.Errorf("Invalid ARN %q: expected arn:aws:elasticache:<region>:<account>:<resource-type>:<name>.", arn)
	}
	resourceType, name := parts[5], parts[6]
	notFound, known := notFoundByType[resourceType]
	if !known {
		return ecapi.InvalidARNFault.Errorf("Invalid ARN %q: unknown resource type %q.", arn, resourceType)
	}
	if parts[3] != c.Region || parts[4] != c.Account {
		return notFound.Errorf("%s %s not found in account %s, region %s.", resourceType, name, c.Account, c.Region)
	}
	if exists, ok := taggable[resourceType]; ok {
		return exists(tx, c, name)
	}
	return notFound.Errorf("%s %s not found.", resourceType, name)
}

func (s *Service) validateTags(tags []ecapi.Tag) error {
	if len(tags) > s.cfg.Quotas.TagsPerResource {
		return ecapi.TagQuotaPerResourceExceeded.Errorf("A resource can have at most %d tags; %d were given.", s.cfg.Quotas.TagsPerResource, len(tags))
	}
	for _, t := range tags {
		switch {
		case t.Key == "" || len(t.Key) > 128:
			return ecapi.InvalidParameterValueException.Errorf("Tag keys must be 1 to 128 characters long: %q.", t.Key)
		case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
			return ecapi.InvalidParameterValueException.Errorf("Tag keys may not begin with aws: (%q).", t.Key)
		case len(t.Value) > 256:
			return ecapi.InvalidParameterValueException.Errorf("Tag values must be at most 256 characters long (key %q).", t.Key)
		}
	}
	return nil
}

func loadTags(tx *store.Tx, arn string) (map[string]string, error) {
	tags := map[string]string{}
	if err := tx.Get(tableTags, arn, &tags); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return tags, nil
}

// putTags merges tags into a resource's tags, which must stay within the quota.
func putTags(tx *store.Tx, arn string, tags []ecapi.Tag) error {
	if len(tags) == 0 {
		return nil
	}
	current, err := loadTags(tx, arn)
	if err != nil {
		return err
	}
	for _, t := range tags {
		current[t.Key] = t.Value
	}
	return tx.Put(tableTags, arn, current)
}

func tagList(tags map[string]string) []ecapi.Tag {
	list := make([]ecapi.Tag, 0, len(tags))
	for k, v := range tags {
		list = append(list, ecapi.Tag{Key: k, Value: v})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Key < list[j].Key })
	return list
}

// AddTagsToResource adds or overwrites tags of a resource; at most 50 in all.
func (s *Service) AddTagsToResource(ctx context.Context, in *ecapi.AddTagsToResourceMessage) (*ecapi.TagListMessage, error) {
	c := CallerOf(ctx)
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	var out map[string]string
	err := s.store.Update(func(tx *store.Tx) error {
		if err := taggedResource(tx, c, in.ResourceName); err != nil {
			return err
		}
		current, err := loadTags(tx, in.ResourceName)
		if err != nil {
			return err
		}
		for _, t := range in.Tags {
			current[t.Key] = t.Value
		}
		if len(current) > s.cfg.Quotas.TagsPerResource {
			return ecapi.TagQuotaPerResourceExceeded.Errorf("Adding these tags would give %s %d tags; the limit is %d.", in.ResourceName, len(current), s.cfg.Quotas.TagsPerResource)
		}
		out = current
		return tx.Put(tableTags, in.ResourceName, current)
	})
	if err != nil {
		return nil, err
	}
	return &ecapi.TagListMessage{TagList: tagList(out)}, nil
}

// ListTagsForResource returns a resource's tags.
func (s *Service) ListTagsForResource(ctx context.Context, in *ecapi.ListTagsForResourceMessage) (*ecapi.TagListMessage, error) {
	c := CallerOf(ctx)
	var tags map[string]string
	err := s.store.View(func(tx *store.Tx) (err error) {
		if err = taggedResource(tx, c, in.ResourceName); err != nil {
			return err
		}
		tags, err = loadTags(tx, in.ResourceName)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ecapi.TagListMessage{TagList: tagList(tags)}, nil
}

// RemoveTagsFromResource removes tags by key; a key the resource does not have is TagNotFound.
func (s *Service) RemoveTagsFromResource(ctx context.Context, in *ecapi.RemoveTagsFromResourceMessage) (*ecapi.TagListMessage, error) {
	c := CallerOf(ctx)
	var out map[string]string
	err := s.store.Update(func(tx *store.Tx) error {
		if err := taggedResource(tx, c, in.ResourceName); err != nil {
			return err
		}
		current, err := loadTags(tx, in.ResourceName)
		if err != nil {
			return err
		}
		for _, key := range in.TagKeys {
			if _, ok := current[key]; !ok {
				return ecapi.TagNotFoundFault.Errorf("Tag with key %q not found on %s.", key, in.ResourceName)
			}
			delete(current, key)
		}
		out = current
		if len(current) == 0 {
			return tx.Delete(tableTags, in.ResourceName)
		}
		return tx.Put(tableTags, in.ResourceName, current)
	})
	if err != nil {
		return nil, err
	}
	return &ecapi.TagListMessage{TagList: tagList(out)}, nil
}
