// Package awsquery is the AWS Query protocol codec: it decodes form-encoded
// parameters (Tags.Tag.1.Key=...) into tagged Go structs and encodes Go structs as
// the XML the query protocol answers with. It knows nothing of any particular
// service; struct fields name their wire form with `aws:"Name[,member=Item][,required]"`.
package awsquery

import (
	"fmt"
	"math"
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hoardcache/hoard/internal/apierr"
)

// field is how one struct field maps to the wire.
type field struct {
	index    int
	wire     string // element / parameter name
	member   string // list item name, for slices
	required bool
}

var plans sync.Map // reflect.Type -> []field

// fieldsOf returns the wire plan of a struct type, computed once per type.
func fieldsOf(t reflect.Type) []field {
	if p, ok := plans.Load(t); ok {
		return p.([]field)
	}
	var fields []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("aws")
		if !ok || !sf.IsExported() {
			continue
		}
		parts := strings.Split(tag, ",")
		f := field{index: i, wire: parts[0]}
		for _, opt := range parts[1:] {
			switch {
			case opt == "required":
				f.required = true
			case strings.HasPrefix(opt, "member="):
				f.member = strings.TrimPrefix(opt, "member=")
			}
		}
		if sf.Type.Kind() == reflect.Slice && f.member == "" {
			f.member = "member"
		}
		fields = append(fields, f)
	}
	plans.Store(t, fields)
	return fields
}

// node is one dotted path segment of the decoded form: "Tags" -> "Tag" -> "1" -> "Key".
type node struct {
	value string
	set   bool
	kids  map[string]*node
}

func (n *node) child(name string) *node {
	if n == nil || n.kids == nil {
		return nil
	}
	return n.kids[name]
}

func buildTree(values url.Values) *node {
	root := &node{}
	for key, vals := range values {
		n := root
		for _, seg := range strings.Split(key, ".") {
			if n.kids == nil {
				n.kids = map[string]*node{}
			}
			next := n.kids[seg]
			if next == nil {
				next = &node{}
				n.kids[seg] = next
			}
			n = next
		}
		if len(vals) > 0 {
			n.value, n.set = vals[0], true
		}
	}
	return root
}

// Decode fills the struct pointed to by v from query parameters. Parameters the
// struct does not name are ignored, as AWS does. Errors are *apierr.Error values
// (MissingParameter, InvalidParameterValue).
func Decode(values url.Values, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("awsquery: Decode needs a pointer to a struct, got %T", v)
	}
	return decodeStruct(buildTree(values), rv.Elem(), "")
}

func decodeStruct(n *node, rv reflect.Value, prefix string) error {
	for _, f := range fieldsOf(rv.Type()) {
		path := prefix + f.wire
		c := n.child(f.wire)
		if c == nil {
			if f.required {
				return apierr.MissingParameter.Errorf("The request must contain the parameter %s", path)
			}
			continue
		}
		if err := decodeValue(c, rv.Field(f.index), f, path); err != nil {
			return err
		}
	}
	return nil
}

var timeType = reflect.TypeOf(time.Time{})

func decodeValue(n *node, fv reflect.Value, f field, path string) error {
	t := fv.Type()
	switch {
	case t == timeType:
		ts, err := ParseTime(n.value)
		if err != nil {
			return invalid(path, n.value, "an ISO 8601 timestamp")
		}
		fv.Set(reflect.ValueOf(ts))
		return nil
	case t.Kind() == reflect.Slice:
		return decodeList(n, fv, f, path)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		p := reflect.New(t.Elem())
		if err := decodeStruct(n, p.Elem(), path+"."); err != nil {
			return err
		}
		fv.Set(p)
		return nil
	case t.Kind() == reflect.Struct:
		return decodeStruct(n, fv, path+".")
	case t.Kind() == reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := decodeScalar(n.value, p.Elem(), path); err != nil {
			return err
		}
		fv.Set(p)
		return nil
	}
	return decodeScalar(n.value, fv, path)
}

// decodeList reads Name.Member.1, Name.Member.2, ... in index order. "Name=" with no
// items (as botocore sends an empty list) gives an empty, non-nil slice.
func decodeList(n *node, fv reflect.Value, f field, path string) error {
	items := n.child(f.member)
	type indexed struct {
		i int
		n *node
	}
	var order []indexed
	if items != nil {
		for key, item := range items.kids {
			// Only canonical indices ("1", "2", ...): "01" or "+1" would alias "1".
			i, err := strconv.Atoi(key)
			if err != nil || i < 1 || strconv.Itoa(i) != key {
				return apierr.InvalidParameterValue.Errorf("Invalid list index %q in parameter %s.%s", key, path, f.member)
			}
			order = append(order, indexed{i, item})
		}
	}
	sort.Slice(order, func(a, b int) bool { return order[a].i < order[b].i })
	slice := reflect.MakeSlice(fv.Type(), len(order), len(order))
	elemField := field{member: "member"}
	for k, item := range order {
		itemPath := fmt.Sprintf("%s.%s.%d", path, f.member, item.i)
		if err := decodeValue(item.n, slice.Index(k), elemField, itemPath); err != nil {
			return err
		}
	}
	fv.Set(slice)
	return nil
}

func decodeScalar(s string, fv reflect.Value, path string) error {
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(s)
	case reflect.Bool:
		switch strings.ToLower(s) {
		case "true":
			fv.SetBool(true)
		case "false":
			fv.SetBool(false)
		default:
			return invalid(path, s, "a boolean (true or false)")
		}
	case reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, fv.Type().Bits())
		if err != nil {
			return invalid(path, s, "an integer")
		}
		fv.SetInt(i)
	case reflect.Float64:
		x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return invalid(path, s, "a number")
		}
		fv.SetFloat(x)
	default:
		return fmt.Errorf("awsquery: unsupported field kind %s at %s", fv.Kind(), path)
	}
	return nil
}

func invalid(path, value, want string) error {
	return apierr.InvalidParameterValue.Errorf("Invalid value %q for parameter %s: expected %s", value, path, want)
}

var epochSeconds = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// ParseTime accepts the ISO 8601 forms AWS clients send.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	// Epoch seconds, as some clients send: plain decimal only (ParseFloat alone would
	// take NaN, Inf and hex floats), within the years time.Time formats.
	if epochSeconds.MatchString(s) {
		if secs, err := strconv.ParseFloat(s, 64); err == nil && math.Abs(secs) < 1e11 {
			return time.UnixMilli(int64(math.Round(secs * 1000))).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a timestamp: %q", s)
}
