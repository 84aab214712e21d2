package main

import (
	"strings"
	"testing"
)

// Each finding as govulncheck -format json writes it: one reached in the
// standard library, one reached in a module (twice, by two traces), one
// only imported.
const findings = `{"config":{"protocol_version":"v1.0.0"}}
{"finding":{"osv":"GO-2026-0001","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Serve"}]}}
{"finding":{"osv":"GO-2026-0002","fixed_version":"v0.9.0","trace":[{"module":"example.com/m","version":"v0.8.0","package":"example.com/m/p","function":"F"},{"module":"github.com/eventsvc/eventsvc","function":"main"}]}}
{"finding":{"osv":"GO-2026-0002","fixed_version":"v0.9.0","trace":[{"module":"example.com/m","version":"v0.8.0","package":"example.com/m/p","function":"F"},{"module":"github.com/eventsvc/eventsvc","function":"other"}]}}
{"finding":{"osv":"GO-2026-0003","fixed_version":"v1.2.0","trace":[{"module":"example.com/n","version":"v1.1.0","package":"example.com/n"}]}}
`

func TestReadSplitsReachedFindings(t *testing.T) {
	stdlib, modules, err := read(strings.NewReader(findings))
	if err != nil {
		t.Fatal(err)
	}
	if len(stdlib) != 1 || stdlib[0].id != "GO-2026-0001" || stdlib[0].fixed != "v1.26.9" {
		t.Errorf("standard library: %+v", stdlib)
	}
	// GO-2026-0003 is imported but never reached: not a failure.
	if len(modules) != 1 || modules[0].id != "GO-2026-0002" || modules[0].module != "example.com/m" {
		t.Errorf("modules: %+v", modules)
	}
}

func TestReadRefusesWhatIsNotJSON(t *testing.T) {
	if _, _, err := read(strings.NewReader(`{"finding":`)); err == nil {
		t.Error("a cut-off stream was read without an error")
	}
}
