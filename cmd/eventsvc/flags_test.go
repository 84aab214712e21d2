package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFlags: each kind of setting, from its default, its environment twin
// and the command line, which wins.
func TestFlags(t *testing.T) {
	type settings struct {
		s        string
		n        int
		n64      int64
		b        bool
		d        time.Duration
		list     []string
		noTwin   string
		renamed  string
		password string
	}
	defaults := settings{s: "s0", n: 1, n64: 2, b: true, d: time.Second, list: []string{"a"}, noTwin: "x", renamed: "r0"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want settings
	}{
		{"defaults", nil, nil, defaults},
		{"environment", nil, map[string]string{"EVENTSVC_S": "s1", "EVENTSVC_N": "3", "EVENTSVC_N64": "4", "EVENTSVC_B": "false", "EVENTSVC_D": "2m",
			"EVENTSVC_LIST": "b, c", "EVENTSVC_NO_TWIN": "y", "EVENTSVC_OTHER_NAME": "r1", "EVENTSVC_PASSWORD": "p"},
			settings{s: "s1", n: 3, n64: 4, b: false, d: 2 * time.Minute, list: []string{"b", "c"}, noTwin: "x", renamed: "r1", password: "p"}},
		{"command line", []string{"--s", "s2", "--n=5", "--n64", "6", "--b=false", "--d", "3s", "--list", "d", "--no-twin", "z", "--renamed", "r2", "--password", "q"}, nil,
			settings{s: "s2", n: 5, n64: 6, b: false, d: 3 * time.Second, list: []string{"d"}, noTwin: "z", renamed: "r2", password: "q"}},
		{"the command line wins", []string{"--s", "s2", "--list", "d", "--list", "e,f", "--renamed", "r2"},
			map[string]string{"EVENTSVC_S": "s1", "EVENTSVC_LIST": "b,c", "EVENTSVC_OTHER_NAME": "r1", "EVENTSVC_N": "7"},
			settings{s: "s2", n: 7, n64: 2, b: true, d: time.Second, list: []string{"d", "e", "f"}, noTwin: "x", renamed: "r2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaults
			got.list = slices.Clone(defaults.list)
			f := newFlags("test", &bytes.Buffer{}, env(tt.env))
			define(f, &got.s, "s", "", withTwin)
			define(f, &got.n, "n", "", withTwin)
			define(f, &got.n64, "n64", "", withTwin)
			define(f, &got.b, "b", "", withTwin)
			define(f, &got.d, "d", "", withTwin)
			define(f, &got.list, "list", "", withTwin)
			define(f, &got.noTwin, "no-twin", "")
			define(f, &got.renamed, "renamed", "", twinNamed("EVENTSVC_OTHER_NAME"))
			define(f, &got.password, "password", "", withTwin, secret)
			if err := f.parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if got.s != tt.want.s || got.n != tt.want.n || got.n64 != tt.want.n64 || got.b != tt.want.b || got.d != tt.want.d ||
				!slices.Equal(got.list, tt.want.list) || got.noTwin != tt.want.noTwin || got.renamed != tt.want.renamed || got.password != tt.want.password {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestHelpNamesEveryTwin: --help names each setting's environment twin.
func TestHelpNamesEveryTwin(t *testing.T) {
	var out bytes.Buffer
	parse([]string{"--help"}, env(nil), &out)
	n := 0
	for _, line := range strings.Split(out.String(), "\n") {
		if !strings.HasPrefix(line, "  -") {
			continue
		}
		n++
		name, _, _ := strings.Cut(strings.TrimPrefix(line, "  -"), " ")
		if !strings.Contains(out.String(), "[$"+envName(name)+"]") {
			t.Errorf("--help does not name the twin of --%s", name)
		}
	}
	if n < 40 {
		t.Fatalf("--help lists %d flags", n)
	}
}
