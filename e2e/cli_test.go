package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoardcache/hoard/internal/catalog"
)

// awsCLI runs the AWS CLI against hoard and decodes its JSON output into out.
func awsCLI(t *testing.T, h *server, out any, args ...string) (stderr string, err error) {
	t.Helper()
	bin, lookErr := exec.LookPath("aws")
	if lookErr != nil {
		t.Skip("the AWS CLI is not installed here")
	}
	home := t.TempDir()
	cmd := exec.Command(bin, append([]string{"--endpoint-url", h.endpoint(), "--region", "us-east-1", "--output", "json"}, args...)...)
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+testAccessKey,
		"AWS_SECRET_ACCESS_KEY="+testSecretKey,
		"AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"),
		"AWS_PAGER=",
	)
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	raw, err := cmd.Output()
	if err == nil && out != nil {
		if jerr := json.Unmarshal(raw, out); jerr != nil {
			t.Fatalf("aws %s: output is not JSON: %v\n%s", strings.Join(args, " "), jerr, raw)
		}
	}
	return errBuf.String(), err
}

// The AWS CLI (botocore) pages through a whole catalogue on its own, and sends
// empty lists as "Tags=", which hoard accepts.
func TestAWSCLI(t *testing.T) {
	h := startHoard(t)
	var defaults struct {
		EngineDefaults struct {
			CacheParameterGroupFamily string
			Parameters                []struct {
				ParameterName, ParameterValue, ChangeType string
				IsModifiable                              bool
			}
			CacheNodeTypeSpecificParameters []struct{ ParameterName string }
		}
	}
	if stderr, err := awsCLI(t, h, &defaults, "elasticache", "describe-engine-default-parameters", "--cache-parameter-group-family", "redis7"); err != nil {
		t.Fatalf("describe-engine-default-parameters: %v\n%s", err, stderr)
	}
	family, _ := catalog.Lookup("redis7")
	if got := len(defaults.EngineDefaults.Parameters); got != len(family.Params) {
		t.Fatalf("the CLI saw %d parameters, the catalogue has %d", got, len(family.Params))
	}
	// The CLI's paginator aggregates only EngineDefaults.Parameters (paginators-1.json),
	// so the node-type-specific parameters are read from one unpaginated page.
	defaults.EngineDefaults.Parameters = nil
	if stderr, err := awsCLI(t, h, &defaults, "elasticache", "describe-engine-default-parameters", "--cache-parameter-group-family", "redis7", "--no-paginate"); err != nil {
		t.Fatalf("describe-engine-default-parameters --no-paginate: %v\n%s", err, stderr)
	}
	if got := len(defaults.EngineDefaults.CacheNodeTypeSpecificParameters); got != len(family.NodeTypeSpecific) {
		t.Fatalf("the CLI saw %d node-type-specific parameters, the catalogue has %d", got, len(family.NodeTypeSpecific))
	}

	var created struct {
		CacheParameterGroup struct{ CacheParameterGroupName, ARN string }
	}
	if stderr, err := awsCLI(t, h, &created, "elasticache", "create-cache-parameter-group", "--cache-parameter-group-name", "from-cli",
		"--cache-parameter-group-family", "memcached1.6", "--description", "made by the AWS CLI", "--tags", "[]"); err != nil {
		t.Fatalf("create-cache-parameter-group: %v\n%s", err, stderr)
	}
	if created.CacheParameterGroup.CacheParameterGroupName != "from-cli" {
		t.Fatalf("created %+v", created)
	}
	if stderr, err := awsCLI(t, h, nil, "elasticache", "modify-cache-parameter-group", "--cache-parameter-group-name", "from-cli",
		"--parameter-name-values", "ParameterName=chunk_size,ParameterValue=64", "ParameterName=max_item_size,ParameterValue=2097152"); err != nil {
		t.Fatalf("modify-cache-parameter-group: %v\n%s", err, stderr)
	}
	var params struct {
		Parameters []struct{ ParameterName, ParameterValue, Source string }
	}
	if stderr, err := awsCLI(t, h, &params, "elasticache", "describe-cache-parameters", "--cache-parameter-group-name", "from-cli", "--source", "user"); err != nil {
		t.Fatalf("describe-cache-parameters: %v\n%s", err, stderr)
	}
	if len(params.Parameters) != 2 {
		t.Fatalf("user parameters seen by the CLI: %+v", params.Parameters)
	}
	stderr, err := awsCLI(t, h, nil, "elasticache", "delete-cache-parameter-group", "--cache-parameter-group-name", "default.redis7")
	if err == nil || !strings.Contains(stderr, "InvalidCacheParameterGroupState") {
		t.Fatalf("deleting a default group through the CLI: err %v, stderr %s", err, stderr)
	}
}

// TestAWSCLIClusterMode runs the README's cluster-mode quickstart with the AWS
// CLI: create, wait, reshard, wait (the CLI's waiter polls
// DescribeReplicationGroups as waiters-2.json says).
func TestAWSCLIClusterMode(t *testing.T) {
	h := startHoard(t, fastReconcile)
	run := func(out any, args ...string) {
		t.Helper()
		if stderr, err := awsCLI(t, h, out, append([]string{"elasticache"}, args...)...); err != nil {
			t.Fatalf("aws elasticache %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
	}
	run(nil, "create-replication-group", "--replication-group-id", "shop", "--replication-group-description", "catalogue",
		"--engine", "redis", "--cache-node-type", "cache.t3.micro", "--num-node-groups", "3", "--replicas-per-node-group", "1")
	run(nil, "wait", "replication-group-available", "--replication-group-id", "shop")
	var out struct {
		ReplicationGroups []struct {
			Status                string
			ConfigurationEndpoint struct{ Port int }
			NodeGroups            []struct{ NodeGroupId, Slots string }
		}
	}
	run(&out, "describe-replication-groups", "--replication-group-id", "shop")
	if g := out.ReplicationGroups[0]; g.Status != "available" || g.ConfigurationEndpoint.Port == 0 || len(g.NodeGroups) != 3 {
		t.Fatalf("after create: %+v", g)
	}
	run(nil, "modify-replication-group-shard-configuration", "--replication-group-id", "shop", "--node-group-count", "4", "--apply-immediately")
	run(nil, "wait", "replication-group-available", "--replication-group-id", "shop")
	out.ReplicationGroups = nil // decoded afresh, nothing kept from the first reply
	run(&out, "describe-replication-groups", "--replication-group-id", "shop")
	if g := out.ReplicationGroups[0]; g.Status != "available" || len(g.NodeGroups) != 4 || g.NodeGroups[3].Slots == "" {
		t.Fatalf("after resharding: %+v", g)
	}
}
