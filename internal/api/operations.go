package api

import (
	"context"
	"net/url"

	"github.com/hoardcache/hoard/internal/awsquery"
	"github.com/hoardcache/hoard/internal/service"
)

// handler decodes an operation's input from the form, calls the service, and
// returns the result shape (nil for operations without one).
type handler func(ctx context.Context, svc *service.Service, form url.Values) (any, error)

// op adapts a service method with a result.
func op[I, O any](method func(*service.Service, context.Context, *I) (*O, error)) handler {
	return func(ctx context.Context, svc *service.Service, form url.Values) (any, error) {
		in := new(I)
		if err := awsquery.Decode(form, in); err != nil {
			return nil, err
		}
		out, err := method(svc, ctx, in)
		if err != nil {
			return nil, err
		}
		return out, nil
	}
}

// opNoResult adapts a service method for an operation the model gives no output.
func opNoResult[I any](method func(*service.Service, context.Context, *I) error) handler {
	return func(ctx context.Context, svc *service.Service, form url.Values) (any, error) {
		in := new(I)
		if err := awsquery.Decode(form, in); err != nil {
			return nil, err
		}
		return nil, method(svc, ctx, in)
	}
}

// operations is the table of implemented actions. Every other action of the model
// answers NotImplemented; TestEveryModelActionIsAccountedFor keeps this table and
// notImplemented together equal to the model.
func operations() map[string]handler {
	return map[string]handler{
		// Parameter groups
		"CreateCacheParameterGroup":       op((*service.Service).CreateCacheParameterGroup),
		"DescribeCacheParameterGroups":    op((*service.Service).DescribeCacheParameterGroups),
		"ModifyCacheParameterGroup":       op((*service.Service).ModifyCacheParameterGroup),
		"ResetCacheParameterGroup":        op((*service.Service).ResetCacheParameterGroup),
		"DeleteCacheParameterGroup":       opNoResult((*service.Service).DeleteCacheParameterGroup),
		"DescribeCacheParameters":         op((*service.Service).DescribeCacheParameters),
		"DescribeEngineDefaultParameters": op((*service.Service).DescribeEngineDefaultParameters),
		// Subnet groups
		"CreateCacheSubnetGroup":    op((*service.Service).CreateCacheSubnetGroup),
		"DescribeCacheSubnetGroups": op((*service.Service).DescribeCacheSubnetGroups),
		"ModifyCacheSubnetGroup":    op((*service.Service).ModifyCacheSubnetGroup),
		"DeleteCacheSubnetGroup":    opNoResult((*service.Service).DeleteCacheSubnetGroup),
		// Security groups
		"CreateCacheSecurityGroup":           op((*service.Service).CreateCacheSecurityGroup),
		"DescribeCacheSecurityGroups":        op((*service.Service).DescribeCacheSecurityGroups),
		"DeleteCacheSecurityGroup":           opNoResult((*service.Service).DeleteCacheSecurityGroup),
		"AuthorizeCacheSecurityGroupIngress": op((*service.Service).AuthorizeCacheSecurityGroupIngress),
		"RevokeCacheSecurityGroupIngress":    op((*service.Service).RevokeCacheSecurityGroupIngress),
		// Cache clusters
		"CreateCacheCluster":               op((*service.Service).CreateCacheCluster),
		"DescribeCacheClusters":            op((*service.Service).DescribeCacheClusters),
		"ModifyCacheCluster":               op((*service.Service).ModifyCacheCluster),
		"DeleteCacheCluster":               op((*service.Service).DeleteCacheCluster),
		"RebootCacheCluster":               op((*service.Service).RebootCacheCluster),
		"ListAllowedNodeTypeModifications": op((*service.Service).ListAllowedNodeTypeModifications),
		// Snapshots
		"CreateSnapshot":    op((*service.Service).CreateSnapshot),
		"DescribeSnapshots": op((*service.Service).DescribeSnapshots),
		"CopySnapshot":      op((*service.Service).CopySnapshot),
		"DeleteSnapshot":    op((*service.Service).DeleteSnapshot),
		// Replication groups
		"CreateReplicationGroup":                   op((*service.Service).CreateReplicationGroup),
		"DescribeReplicationGroups":                op((*service.Service).DescribeReplicationGroups),
		"DeleteReplicationGroup":                   op((*service.Service).DeleteReplicationGroup),
		"ModifyReplicationGroup":                   op((*service.Service).ModifyReplicationGroup),
		"ModifyReplicationGroupShardConfiguration": op((*service.Service).ModifyReplicationGroupShardConfiguration),
		"IncreaseReplicaCount":                     op((*service.Service).IncreaseReplicaCount),
		"DecreaseReplicaCount":                     op((*service.Service).DecreaseReplicaCount),
		"TestFailover":                             op((*service.Service).TestFailover),
		// Serverless caches
		"CreateServerlessCache":    op((*service.Service).CreateServerlessCache),
		"DescribeServerlessCaches": op((*service.Service).DescribeServerlessCaches),
		"ModifyServerlessCache":    op((*service.Service).ModifyServerlessCache),
		"DeleteServerlessCache":    op((*service.Service).DeleteServerlessCache),
		// Serverless cache snapshots
		"CreateServerlessCacheSnapshot":    op((*service.Service).CreateServerlessCacheSnapshot),
		"DescribeServerlessCacheSnapshots": op((*service.Service).DescribeServerlessCacheSnapshots),
		"CopyServerlessCacheSnapshot":      op((*service.Service).CopyServerlessCacheSnapshot),
		"ExportServerlessCacheSnapshot":    op((*service.Service).ExportServerlessCacheSnapshot),
		"DeleteServerlessCacheSnapshot":    op((*service.Service).DeleteServerlessCacheSnapshot),
		// Events
		"DescribeEvents": op((*service.Service).DescribeEvents),
		// Engines
		"DescribeCacheEngineVersions": op((*service.Service).DescribeCacheEngineVersions),
		// Tags
		"AddTagsToResource":      op((*service.Service).AddTagsToResource),
		"ListTagsForResource":    op((*service.Service).ListTagsForResource),
		"RemoveTagsFromResource": op((*service.Service).RemoveTagsFromResource),
	}
}
