package app

import (
	"strings"
	"testing"
)

func TestFileLimitWarning(t *testing.T) {
	tests := []struct {
		name       string
		limit      uint64
		maxStreams int
		want       []string // substrings; nil: no warning
	}{
		{"default streams under a common limit", 20000, 20000,
			[]string{"--max-streams 20000 cannot be honoured", "about 21024 open files", "RLIMIT_NOFILE) is 20000", "about 18976 streams", "to 21024 or more"}},
		{"fits exactly", 21024, 20000, nil},
		{"fits", 1 << 20, 20000, nil},
		{"one short", 21023, 20000, []string{"cannot be honoured", "is 21023"}},
		{"unlimited", unlimitedFiles, 20000, nil},
		{"tiny limit", 256, 100, []string{"--max-streams 100", "allows about 0 streams"}},
		{"no stream limit", 20000, 0, []string{"--max-streams 0 sets no limit", "20000 descriptors", "about 18976 streams"}},
		{"no limit at all", unlimitedFiles, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fileLimitWarning(tt.limit, tt.maxStreams)
			if (got == "") != (tt.want == nil) {
				t.Fatalf("fileLimitWarning(%d, %d) = %q, want a warning: %v", tt.limit, tt.maxStreams, got, tt.want != nil)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("warning %q lacks %q", got, w)
				}
			}
		})
	}
}
