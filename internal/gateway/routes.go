package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/eventsvc/eventsvc"
)

// route is one REST path of the API, the methods it is served for and
// their parameters, as the OpenAPI document lists them. That document is
// generated from the same HTTP mapping as the gateway's handlers, so the two
// cannot disagree.
type route struct {
	segments []string // "{name}" for a path parameter
	methods  []string // upper case, sorted
	// params are the parameters of each method, by name (path and query).
	params map[string]map[string]param
}

// param is one parameter as the OpenAPI document describes it.
type param struct {
	In       string   `json:"in"`     // "path", "query", "body"
	Type     string   `json:"type"`   // "string", "integer", "boolean", "array"
	Format   string   `json:"format"` // "uint64", "int32", "date-time"
	Enum     []string `json:"enum"`
	Name     string   `json:"name"`
	Repeated bool     `json:"-"` // an array: the parameter may be given several times
}

// routes is parsed once from the embedded OpenAPI document.
var routes = sync.OnceValue(func() []route {
	type item struct {
		Enum []string `json:"enum"`
	}
	type docParam struct {
		param
		Items item `json:"items"`
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []docParam `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(eventsvc.OpenAPIv2, &doc); err != nil {
		panic("gateway: the embedded OpenAPI document does not parse: " + err.Error())
	}
	var out []route
	for path, ops := range doc.Paths {
		r := route{segments: strings.Split(strings.TrimPrefix(path, "/"), "/"), params: map[string]map[string]param{}}
		for m, op := range ops {
			m = strings.ToUpper(m)
			if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}, m) {
				continue
			}
			r.methods = append(r.methods, m)
			r.params[m] = map[string]param{}
			for _, p := range op.Parameters {
				if p.Type == "array" {
					p.Repeated, p.Enum = true, p.Items.Enum
				}
				r.params[m][p.Name] = p.param
			}
		}
		slices.Sort(r.methods)
		out = append(out, r)
	}
	return out
})

// routeOf returns the route of the unescaped segments that serves method.
func routeOf(method string, segments []string) (route, bool) {
	for _, r := range routes() {
		if r.match(segments) && slices.Contains(r.methods, method) {
			return r, true
		}
	}
	return route{}, false
}

// match reports whether segments (unescaped) fit the route's template.
func (r route) match(segments []string) bool {
	if len(segments) != len(r.segments) {
		return false
	}
	for i, s := range r.segments {
		if !isParam(s) && s != segments[i] {
			return false
		}
	}
	return true
}

func isParam(segment string) bool {
	return strings.HasPrefix(segment, "{") && strings.HasSuffix(segment, "}")
}

// allowedMethods returns the methods the API serves on the path of the
// unescaped segments, sorted; nil when it serves none there.
func allowedMethods(segments []string) []string {
	var out []string
	for _, r := range routes() {
		if r.match(segments) {
			out = append(out, r.methods...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// paramName returns the name of the path parameter at index i of segments
// (the template's "{id}" gives "id"), or "" when no route of that shape has a
// parameter there. Only the other segments need to match: segment i may be
// anything.
func paramName(segments []string, i int) string {
	for _, r := range routes() {
		if len(r.segments) != len(segments) || !isParam(r.segments[i]) {
			continue
		}
		fits := true
		for j, s := range r.segments {
			if j != i && !isParam(s) && s != segments[j] {
				fits = false
				break
			}
		}
		if fits {
			return strings.Trim(r.segments[i], "{}")
		}
	}
	return ""
}
