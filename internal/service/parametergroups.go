package service

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

const tableParameterGroups = "parametergroups"

// Parameter sources as DescribeCacheParameters reports them in a group: "user" for a
// value the user set, "system" for a parameter users cannot change, "engine-default"
// for a modifiable parameter still at its engine default.
const (
	SourceUser          = "user"
	SourceSystem        = "system"
	SourceEngineDefault = "engine-default"
)

// maxParametersPerModify is AWS's limit on ParameterNameValues per ModifyCacheParameterGroup call.
const maxParametersPerModify = 20

// paramGroup is a parameter group as stored. Default groups are not stored: they
// exist in every account and region and are built from the catalogue.
type paramGroup struct {
	Name        string            `json:"name"`
	Family      string            `json:"family"`
	Description string            `json:"description"`
	Values      map[string]string `json:"values,omitempty"` // parameters the user set
	CreatedAt   time.Time         `json:"createdAt"`
	IsDefault   bool              `json:"-"`
}

func init() {
	registerTaggable("parametergroup", func(tx *store.Tx, c Caller, name string) error {
		_, err := loadGroup(tx, c, name)
		return err
	})
}

func defaultGroup(name string) (*paramGroup, bool) {
	f, ok := catalog.DefaultGroupFamily(name)
	if !ok {
		return nil, false
	}
	return &paramGroup{
		Name:        name,
		Family:      f.Name,
		Description: "Default parameter group for " + f.Name,
		Values:      f.DefaultGroupValues(name),
		IsDefault:   true,
	}, true
}

// loadGroup returns a default or custom group by name, or CacheParameterGroupNotFound.
func loadGroup(tx *store.Tx, c Caller, name string) (*paramGroup, error) {
	if g, ok := defaultGroup(name); ok {
		return g, nil
	}
	var g paramGroup
	if err := tx.Get(tableParameterGroups, c.scope()+name, &g); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ecapi.CacheParameterGroupNotFoundFault.Errorf("CacheParameterGroup %s not found.", name)
		}
		return nil, err
	}
	return &g, nil
}

func (g *paramGroup) shape(c Caller) ecapi.CacheParameterGroup {
	return ecapi.CacheParameterGroup{
		CacheParameterGroupName:   g.Name,
		CacheParameterGroupFamily: g.Family,
		Description:               g.Description,
		ARN:                       c.arn("parametergroup", g.Name),
	}
}

// CreateCacheParameterGroup creates an empty custom group of a family.
func (s *Service) CreateCacheParameterGroup(ctx context.Context, in *ecapi.CreateCacheParameterGroupMessage) (*ecapi.CreateCacheParameterGroupResult, error) {
	c := CallerOf(ctx)
	name := strings.ToLower(in.CacheParameterGroupName)
	if err := validateName("CacheParameterGroupName", name, 255); err != nil {
		return nil, err
	}
	if _, ok := catalog.Lookup(in.CacheParameterGroupFamily); !ok {
		return nil, ecapi.InvalidParameterValueException.Errorf("Invalid CacheParameterGroupFamily %q; valid families are %s.",
			in.CacheParameterGroupFamily, strings.Join(catalog.FamilyNames(), ", "))
	}
	if strings.TrimSpace(in.Description) == "" {
		return nil, ecapi.InvalidParameterValueException.Errorf("The parameter Description must be provided and must not be blank.")
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	g := &paramGroup{Name: name, Family: in.CacheParameterGroupFamily, Description: in.Description, CreatedAt: s.now()}
	err := s.store.Update(func(tx *store.Tx) error {
		key := c.scope() + name
		if tx.Has(tableParameterGroups, key) {
			return ecapi.CacheParameterGroupAlreadyExistsFault.Errorf("Parameter group %s already exists.", name)
		}
		if tx.Count(tableParameterGroups, c.scope()) >= s.cfg.Quotas.ParameterGroups {
			return ecapi.CacheParameterGroupQuotaExceededFault.Errorf("Creating this parameter group would exceed the quota of %d cache parameter groups.", s.cfg.Quotas.ParameterGroups)
		}
		if err := tx.Put(tableParameterGroups, key, g); err != nil {
			return err
		}
		return putTags(tx, c.arn("parametergroup", name), in.Tags)
	})
	if err != nil {
		return nil, err
	}
	shape := g.shape(c)
	return &ecapi.CreateCacheParameterGroupResult{CacheParameterGroup: &shape}, nil
}

// DescribeCacheParameterGroups lists the default groups of every family and the
// caller's custom groups, by name.
func (s *Service) DescribeCacheParameterGroups(ctx context.Context, in *ecapi.DescribeCacheParameterGroupsMessage) (*ecapi.CacheParameterGroupsMessage, error) {
	c := CallerOf(ctx)
	var groups []*paramGroup
	err := s.store.View(func(tx *store.Tx) error {
		if in.CacheParameterGroupName != "" {
			g, err := loadGroup(tx, c, strings.ToLower(in.CacheParameterGroupName))
			groups = append(groups, g)
			return err
		}
		custom, err := store.ScanAs[paramGroup](tx, tableParameterGroups, c.scope())
		for i := range custom {
			groups = append(groups, &custom[i])
		}
		for _, name := range catalog.DefaultGroupNames() {
			g, _ := defaultGroup(name)
			groups = append(groups, g)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	groups, next, err := pageSorted(groups, func(g *paramGroup) string { return g.Name }, in.MaxRecords, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &ecapi.CacheParameterGroupsMessage{Marker: next, CacheParameterGroups: []ecapi.CacheParameterGroup{}}
	for _, g := range groups {
		out.CacheParameterGroups = append(out.CacheParameterGroups, g.shape(c))
	}
	return out, nil
}

// ModifyCacheParameterGroup sets up to 20 parameters of a custom group, all or none.
func (s *Service) ModifyCacheParameterGroup(ctx context.Context, in *ecapi.ModifyCacheParameterGroupMessage) (*ecapi.CacheParameterGroupNameMessage, error) {
	c := CallerOf(ctx)
	name := strings.ToLower(in.CacheParameterGroupName)
	switch n := len(in.ParameterNameValues); {
	case n == 0:
		return nil, ecapi.InvalidParameterValueException.Errorf("ParameterNameValues must name at least one parameter.")
	case n > maxParametersPerModify:
		return nil, ecapi.InvalidParameterValueException.Errorf("At most %d parameters can be modified in one request; %d were given.", maxParametersPerModify, n)
	}
	err := s.store.Update(func(tx *store.Tx) error {
		g, err := loadMutableGroup(tx, c, name, "modified")
		if err != nil {
			return err
		}
		family, _ := catalog.Lookup(g.Family)
		changes := map[string]string{}
		for _, nv := range in.ParameterNameValues {
			if err := validateParameterChange(family, nv); err != nil {
				return err
			}
			changes[nv.ParameterName] = nv.ParameterValue
		}
		if g.Values == nil {
			g.Values = map[string]string{}
		}
		for k, v := range changes {
			g.Values[k] = v
		}
		if err := tx.Put(tableParameterGroups, c.scope()+name, g); err != nil {
			return err
		}
		return markClustersUsingGroup(tx, c, name)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.CacheParameterGroupNameMessage{CacheParameterGroupName: name}, nil
}

// markClustersUsingGroup flags the clusters that use a group whose values changed:
// their parameters are "applying" until the reconciler has brought the nodes along.
func markClustersUsingGroup(tx *store.Tx, c Caller, group string) error {
	clusters, err := store.ScanAs[cluster](tx, tableClusters, c.scope())
	if err != nil {
		return err
	}
	for i := range clusters {
		cl := &clusters[i]
		if cl.ParamGroup != group || cl.Status == statusDeleting {
			continue
		}
		cl.ParamStatus = applyApplying
		cl.ParamGen++
		if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
			return err
		}
	}
	return nil
}

// loadMutableGroup loads a custom group for a change; default groups refuse changes.
func loadMutableGroup(tx *store.Tx, c Caller, name, verb string) (*paramGroup, error) {
	g, err := loadGroup(tx, c, name)
	if err != nil {
		return nil, err
	}
	if g.IsDefault {
		return nil, ecapi.InvalidCacheParameterGroupStateFault.Errorf("Default parameter group %s cannot be %s. Create a custom parameter group to change parameters.", name, verb)
	}
	return g, nil
}

func validateParameterChange(family *catalog.Family, nv ecapi.ParameterNameValue) error {
	p, ok := family.Param(nv.ParameterName)
	if !ok {
		if nt, ok := family.NodeTypeParam(nv.ParameterName); ok {
			p = &nt.Param
		} else {
			return ecapi.InvalidParameterValueException.Errorf("Parameter %s is not a parameter of family %s.", nv.ParameterName, family.Name)
		}
	}
	if !p.Modifiable {
		return ecapi.InvalidParameterValueException.Errorf("Parameter %s is not modifiable.", p.Name)
	}
	if why := p.Validate(nv.ParameterValue); why != "" {
		return ecapi.InvalidParameterValueException.Errorf("Invalid value for parameter %s: %s.", p.Name, why)
	}
	return nil
}

// ResetCacheParameterGroup returns some or all parameters of a custom group to their engine defaults.
func (s *Service) ResetCacheParameterGroup(ctx context.Context, in *ecapi.ResetCacheParameterGroupMessage) (*ecapi.CacheParameterGroupNameMessage, error) {
	c := CallerOf(ctx)
	name := strings.ToLower(in.CacheParameterGroupName)
	switch {
	case in.ResetAllParameters && len(in.ParameterNameValues) > 0:
		return nil, ecapi.InvalidParameterCombinationException.Errorf("ResetAllParameters cannot be combined with ParameterNameValues.")
	case !in.ResetAllParameters && len(in.ParameterNameValues) == 0:
		return nil, ecapi.InvalidParameterValueException.Errorf("Either ResetAllParameters must be true or ParameterNameValues must name the parameters to reset.")
	case len(in.ParameterNameValues) > maxParametersPerModify:
		return nil, ecapi.InvalidParameterValueException.Errorf("At most %d parameters can be reset in one request; %d were given.", maxParametersPerModify, len(in.ParameterNameValues))
	}
	err := s.store.Update(func(tx *store.Tx) error {
		g, err := loadMutableGroup(tx, c, name, "reset")
		if err != nil {
			return err
		}
		family, _ := catalog.Lookup(g.Family)
		if in.ResetAllParameters {
			g.Values = nil
		}
		for _, nv := range in.ParameterNameValues {
			_, plain := family.Param(nv.ParameterName)
			_, nodeType := family.NodeTypeParam(nv.ParameterName)
			if !plain && !nodeType {
				return ecapi.InvalidParameterValueException.Errorf("Parameter %s is not a parameter of family %s.", nv.ParameterName, family.Name)
			}
			delete(g.Values, nv.ParameterName)
		}
		if err := tx.Put(tableParameterGroups, c.scope()+name, g); err != nil {
			return err
		}
		return markClustersUsingGroup(tx, c, name)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.CacheParameterGroupNameMessage{CacheParameterGroupName: name}, nil
}

// DeleteCacheParameterGroup deletes a custom group and its tags.
func (s *Service) DeleteCacheParameterGroup(ctx context.Context, in *ecapi.DeleteCacheParameterGroupMessage) error {
	c := CallerOf(ctx)
	name := strings.ToLower(in.CacheParameterGroupName)
	return s.store.Update(func(tx *store.Tx) error {
		if _, err := loadMutableGroup(tx, c, name, "deleted"); err != nil {
			return err
		}
		if user, err := clusterUsing(tx, c, func(cl *cluster) bool { return cl.ParamGroup == name }); err != nil || user != "" {
			if err != nil {
				return err
			}
			return ecapi.InvalidCacheParameterGroupStateFault.Errorf("Parameter group %s is in use by cache cluster %s.", name, user)
		}
		if err := tx.Delete(tableParameterGroups, c.scope()+name); err != nil {
			return err
		}
		return tx.Delete(tableTags, c.arn("parametergroup", name))
	})
}

// DescribeCacheParameters lists a group's parameters with their current values,
// optionally only those of one Source.
func (s *Service) DescribeCacheParameters(ctx context.Context, in *ecapi.DescribeCacheParametersMessage) (*ecapi.CacheParameterGroupDetails, error) {
	c := CallerOf(ctx)
	switch in.Source {
	case "", SourceUser, SourceSystem, SourceEngineDefault:
	default:
		return nil, ecapi.InvalidParameterValueException.Errorf("Invalid Source %q: must be one of user, system, engine-default.", in.Source)
	}
	var g *paramGroup
	err := s.store.View(func(tx *store.Tx) (err error) {
		g, err = loadGroup(tx, c, strings.ToLower(in.CacheParameterGroupName))
		return err
	})
	if err != nil {
		return nil, err
	}
	family, _ := catalog.Lookup(g.Family)
	var params []ecapi.Parameter
	for i := range family.Params {
		p := &family.Params[i]
		source, value := SourceEngineDefault, p.Value
		if v, set := g.Values[p.Name]; set {
			source, value = SourceUser, v
		} else if !p.Modifiable {
			source = SourceSystem
		}
		if in.Source != "" && in.Source != source {
			continue
		}
		params = append(params, parameterShape(p, value, source))
	}
	var nodeParams []ecapi.CacheNodeTypeSpecificParameter
	for i := range family.NodeTypeSpecific {
		p := &family.NodeTypeSpecific[i]
		if in.Source == "" || in.Source == SourceSystem {
			nodeParams = append(nodeParams, nodeTypeParameterShape(p, SourceSystem))
		}
	}
	start, end, next, err := page(in.MaxRecords, in.Marker, len(params)+len(nodeParams))
	if err != nil {
		return nil, err
	}
	plain, nodeType := splitPage(params, nodeParams, start, end)
	return &ecapi.CacheParameterGroupDetails{Marker: next, Parameters: plain, CacheNodeTypeSpecificParameters: nodeType}, nil
}

// splitPage cuts the window [start, end) out of the concatenation of both lists, the
// way Describe*Parameters pages through plain then node-type-specific parameters.
func splitPage(params []ecapi.Parameter, nodeParams []ecapi.CacheNodeTypeSpecificParameter, start, end int) ([]ecapi.Parameter, []ecapi.CacheNodeTypeSpecificParameter) {
	n := len(params)
	plain := params[min(start, n):min(end, n)]
	nodeType := nodeParams[max(start-n, 0):max(end-n, 0)]
	if plain == nil {
		plain = []ecapi.Parameter{}
	}
	if nodeType == nil {
		nodeType = []ecapi.CacheNodeTypeSpecificParameter{}
	}
	return plain, nodeType
}

func parameterShape(p *catalog.Param, value, source string) ecapi.Parameter {
	return ecapi.Parameter{
		ParameterName:        p.Name,
		ParameterValue:       value,
		Description:          p.Description,
		Source:               source,
		DataType:             p.DataType,
		AllowedValues:        p.AllowedValues,
		IsModifiable:         p.Modifiable,
		MinimumEngineVersion: p.MinimumEngineVersion,
		ChangeType:           p.ChangeType,
	}
}

func nodeTypeParameterShape(p *catalog.NodeTypeParam, source string) ecapi.CacheNodeTypeSpecificParameter {
	nodeTypes := make([]string, 0, len(p.Values))
	for nt := range p.Values {
		nodeTypes = append(nodeTypes, nt)
	}
	sort.Strings(nodeTypes)
	values := make([]ecapi.CacheNodeTypeSpecificValue, len(nodeTypes))
	for i, nt := range nodeTypes {
		values[i] = ecapi.CacheNodeTypeSpecificValue{CacheNodeType: nt, Value: p.Values[nt]}
	}
	return ecapi.CacheNodeTypeSpecificParameter{
		ParameterName:               p.Name,
		Description:                 p.Description,
		Source:                      source,
		DataType:                    p.DataType,
		AllowedValues:               p.AllowedValues,
		IsModifiable:                p.Modifiable,
		MinimumEngineVersion:        p.MinimumEngineVersion,
		CacheNodeTypeSpecificValues: values,
		ChangeType:                  p.ChangeType,
	}
}

// engineDefaults is a family's catalogue as DescribeEngineDefaultParameters shows
// it, built once per family: the catalogue never changes while hoard runs.
type engineDefaults struct {
	params     []ecapi.Parameter
	nodeParams []ecapi.CacheNodeTypeSpecificParameter
}

var engineDefaultsCache sync.Map // family name -> *engineDefaults

func engineDefaultsOf(f *catalog.Family) *engineDefaults {
	if d, ok := engineDefaultsCache.Load(f.Name); ok {
		return d.(*engineDefaults)
	}
	d := &engineDefaults{}
	for i := range f.Params {
		p := &f.Params[i]
		// AWS reports the engine defaults' source as "user" when users may change the
		// parameter and "system" when they may not.
		source := SourceSystem
		if p.Modifiable {
			source = SourceUser
		}
		d.params = append(d.params, parameterShape(p, p.Value, source))
	}
	for i := range f.NodeTypeSpecific {
		d.nodeParams = append(d.nodeParams, nodeTypeParameterShape(&f.NodeTypeSpecific[i], SourceSystem))
	}
	engineDefaultsCache.Store(f.Name, d)
	return d
}

// DescribeEngineDefaultParameters pages through a family's full catalogue.
func (s *Service) DescribeEngineDefaultParameters(ctx context.Context, in *ecapi.DescribeEngineDefaultParametersMessage) (*ecapi.DescribeEngineDefaultParametersResult, error) {
	family, ok := catalog.Lookup(in.CacheParameterGroupFamily)
	if !ok {
		return nil, ecapi.InvalidParameterValueException.Errorf("Invalid CacheParameterGroupFamily %q; valid families are %s.",
			in.CacheParameterGroupFamily, strings.Join(catalog.FamilyNames(), ", "))
	}
	d := engineDefaultsOf(family)
	start, end, next, err := page(in.MaxRecords, in.Marker, len(d.params)+len(d.nodeParams))
	if err != nil {
		return nil, err
	}
	plain, nodeType := splitPage(d.params, d.nodeParams, start, end)
	return &ecapi.DescribeEngineDefaultParametersResult{EngineDefaults: &ecapi.EngineDefaults{
		CacheParameterGroupFamily:       family.Name,
		Marker:                          next,
		Parameters:                      plain,
		CacheNodeTypeSpecificParameters: nodeType,
	}}, nil
}
