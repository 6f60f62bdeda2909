package api

import (
	"slices"
	"sort"
	"testing"

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
