package api

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/ecapi/modelgen"
)

// Every action of the AWS model is either implemented (in operations()) or listed
// in notYetImplemented — never both, never neither — so nothing is forgotten and
// nothing unbuilt pretends to work.
func TestEveryModelActionIsAccountedFor(t *testing.T) {
	model, err := modelgen.Load("../ecapi/model/service-2.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(model.Operations) != 75 {
		t.Errorf("the model has %d operations, want the 75 of ElastiCache 2015-02-02", len(model.Operations))
	}
	implemented := operations()
	for name := range model.Operations {
		_, done := implemented[name]
		listed := slices.Contains(notYetImplemented, name)
		switch {
		case done && listed:
			t.Errorf("%s is implemented and also listed as not yet implemented", name)
		case !done && !listed:
			t.Errorf("%s is neither implemented nor listed as not yet implemented", name)
		}
	}
	for name := range implemented {
		if _, ok := model.Operations[name]; !ok {
			t.Errorf("operations() has %s, which is not an action of the model", name)
		}
	}
	for _, name := range notYetImplemented {
		if _, ok := model.Operations[name]; !ok {
			t.Errorf("notYetImplemented lists %s, which is not an action of the model", name)
		}
	}
	if !sort.StringsAreSorted(notYetImplemented) {
		t.Error("keep notYetImplemented sorted")
	}
	// Every implemented action has a result wrapper when the model gives it an output.
	for name := range implemented {
		if op := ecapi.Operations[name]; op.Output != "" && op.ResultWrapper == "" {
			t.Errorf("%s has output %s but no result wrapper", name, op.Output)
		}
	}
}

// A pure operation answered from the result cache says exactly what it said the
// first time, and a request with other parameters is not answered from it.
func TestPureOperationResultsAreCachedFaithfully(t *testing.T) {
	h := newHarness(t, time.Time{})
	body := "Action=DescribeEngineDefaultParameters&Version=2015-02-02&CacheParameterGroupFamily=redis7&MaxRecords=20"
	requestID := regexp.MustCompile(`<RequestId>[^<]*</RequestId>`)
	first := h.do(h.signedPost(body, testRegion, time.Now()))
	second := h.do(h.signedPost(body, testRegion, time.Now()))
	if first.status != 200 || second.status != 200 {
		t.Fatalf("statuses %d, %d", first.status, second.status)
	}
	a, b := requestID.ReplaceAllString(first.body, ""), requestID.ReplaceAllString(second.body, "")
	if a != b || !strings.Contains(a, "<ParameterName>") {
		t.Fatalf("the cached answer differs from the first:\n%s\n---\n%s", a, b)
	}
	if first.body == second.body {
		t.Fatal("two requests share a request ID")
	}
	other := h.do(h.signedPost(strings.Replace(body, "redis7", "memcached1.6", 1), testRegion, time.Now()))
	if !strings.Contains(other.body, "<CacheParameterGroupFamily>memcached1.6</CacheParameterGroupFamily>") {
		t.Fatalf("another family was answered from the cache: %.300s", other.body)
	}
}
