// Command gen generates the ElastiCache wire types, error kinds and operation
// list of package ecapi from the AWS service model (model/service-2.json).
//
//	go run ./internal/ecapi/gen            (rewrites internal/ecapi/*_gen.go)
//	go run ./internal/ecapi/gen -check     (fails if they are out of date)
//
// Every struct field carries an `aws:"WireName[,member=Item][,required]"` tag that the
// protocol codec (internal/awsquery) uses both to decode query forms and to encode XML.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"runtime"

	"github.com/hoardcache/hoard/internal/ecapi/modelgen"
)

func main() {
	check := flag.Bool("check", false, "compare instead of writing; exit 1 when a generated file is stale")
	flag.Parse()

	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(self), "..")
	files, err := modelgen.Generate(filepath.Join(dir, "model", "service-2.json"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	stale := false
	for name, src := range files {
		formatted, err := format.Source(src)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gen: %s: %v\n", name, err)
			os.Exit(1)
		}
		path := filepath.Join(dir, name)
		if *check {
			old, _ := os.ReadFile(path)
			if !bytes.Equal(old, formatted) {
				fmt.Fprintf(os.Stderr, "gen: %s is stale; run go run ./internal/ecapi/gen\n", path)
				stale = true
			}
			continue
		}
		if err := os.WriteFile(path, formatted, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
	if stale {
		os.Exit(1)
	}
}
