package ecapi_test

import (
	"bytes"
	"go/format"
	"os"
	"testing"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/ecapi/modelgen"
)

// The generated files are exactly what the generator makes from the model today.
func TestGeneratedFilesMatchTheModel(t *testing.T) {
	files, err := modelgen.Generate("model/service-2.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		want, err := format.Source(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go run ./internal/ecapi/gen", name)
		}
	}
}

// Error codes come from the model's error.code, which can differ from the shape name.
func TestErrorCodesComeFromTheModel(t *testing.T) {
	cases := map[string]struct {
		code   string
		status int
	}{
		"CacheClusterNotFoundFault":            {"CacheClusterNotFound", 404},
		"InvalidParameterValueException":       {"InvalidParameterValue", 400},
		"CacheParameterGroupNotFoundFault":     {"CacheParameterGroupNotFound", 404},
		"ServerlessCacheNotFoundFault":         {"ServerlessCacheNotFoundFault", 404},
		"SnapshotNotFoundFault":                {"SnapshotNotFoundFault", 404},
		"TagQuotaPerResourceExceeded":          {"TagQuotaPerResourceExceeded", 400},
		"InvalidARNFault":                      {"InvalidARN", 400},
		"InvalidCacheParameterGroupStateFault": {"InvalidCacheParameterGroupState", 400},
	}
	for shape, want := range cases {
		k, ok := ecapi.ErrorKinds[shape]
		if !ok || k.Code != want.code || k.Status != want.status {
			t.Errorf("%s = %+v, want code %s status %d", shape, k, want.code, want.status)
		}
	}
}
