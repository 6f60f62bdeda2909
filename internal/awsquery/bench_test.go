package awsquery_test

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/hoardcache/hoard/internal/awsquery"
	"github.com/hoardcache/hoard/internal/ecapi"
)

func BenchmarkEncodeEngineDefaults(b *testing.B) {
	ed := &ecapi.EngineDefaults{CacheParameterGroupFamily: "redis7"}
	for i := range 100 {
		ed.Parameters = append(ed.Parameters, ecapi.Parameter{
			ParameterName:        fmt.Sprintf("parameter-%03d", i),
			ParameterValue:       fmt.Sprint(i * 1000),
			Description:          "A description of the parameter, with <markup> & \"quotes\" to escape.",
			Source:               "system",
			DataType:             "integer",
			AllowedValues:        "0-",
			IsModifiable:         i%2 == 0,
			MinimumEngineVersion: "7.0.0",
			ChangeType:           "immediate",
		})
	}
	var buf bytes.Buffer
	awsquery.EncodeFields(&buf, ed) // warm the plan cache and size the buffer
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		awsquery.EncodeFields(&buf, ed)
	}
}

func BenchmarkDecodeModify(b *testing.B) {
	var q strings.Builder
	q.WriteString("Action=ModifyCacheParameterGroup&Version=2015-02-02&CacheParameterGroupName=my-group")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&q, "&ParameterNameValues.ParameterNameValue.%d.ParameterName=parameter-%d", i, i)
		fmt.Fprintf(&q, "&ParameterNameValues.ParameterNameValue.%d.ParameterValue=%d", i, i*100)
	}
	values, err := url.ParseQuery(q.String())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var m ecapi.ModifyCacheParameterGroupMessage
		if err := awsquery.Decode(values, &m); err != nil {
			b.Fatal(err)
		}
		if len(m.ParameterNameValues) != 20 {
			b.Fatalf("decoded %d items", len(m.ParameterNameValues))
		}
	}
}
