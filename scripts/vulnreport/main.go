// Command vulnreport reads govulncheck's JSON (-format json) on standard
// input and decides what fails the build.
//
// A vulnerability that the code reaches in a module go.mod requires fails
// it: upgrading the module is the project's to do. One in the standard
// library is reported as a warning naming the Go release that fixes it: the
// standard library is the machine's toolchain, which go.mod does not pin,
// and a release must be built with that Go or newer.
//
// Exit status: 0 clean or warnings only, 1 a reachable vulnerability in a
// required module, 2 input it cannot read.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

type message struct {
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
		} `json:"trace"`
	} `json:"finding"`
}

// vuln is one vulnerability reached from the code, in one module.
type vuln struct{ id, module, version, fixed string }

func main() {
	stdlib, modules, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulnreport:", err)
		os.Exit(2)
	}
	for _, v := range stdlib {
		fmt.Printf("warning: %s in the standard library of Go %s, fixed in Go %s: build releases with that Go or newer (https://pkg.go.dev/vuln/%s)\n",
			v.id, strings.TrimPrefix(v.version, "v"), strings.TrimPrefix(v.fixed, "v"), v.id)
	}
	for _, v := range modules {
		fmt.Printf("%s in %s@%s, reached from the code: upgrade to %s (https://pkg.go.dev/vuln/%s)\n", v.id, v.module, v.version, v.fixed, v.id)
	}
	if len(modules) > 0 {
		os.Exit(1)
	}
	fmt.Printf("govulncheck: no reachable vulnerability in a required module (%d in the standard library, above)\n", len(stdlib))
}

// read returns the vulnerabilities the code reaches (a finding whose trace
// names a function), each once, split into the standard library's and the
// modules'.
func read(r io.Reader) (stdlib, modules []vuln, err error) {
	dec := json.NewDecoder(r)
	seen := map[vuln]bool{}
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, nil, fmt.Errorf("reading govulncheck's JSON: %w", err)
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue // imported or required, but not reached
		}
		v := vuln{f.OSV, f.Trace[0].Module, f.Trace[0].Version, f.FixedVersion}
		if seen[v] {
			continue
		}
		seen[v] = true
		if v.module == "stdlib" || v.module == "toolchain" {
			stdlib = append(stdlib, v)
		} else {
			modules = append(modules, v)
		}
	}
	byID := func(a, b vuln) int { return strings.Compare(a.id, b.id) }
	slices.SortFunc(stdlib, byID)
	slices.SortFunc(modules, byID)
	return stdlib, modules, nil
}
