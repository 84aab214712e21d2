package webhook

import (
	"sort"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// ProviderCode returns the provider that a Sociocs provider code ("twlo")
// stands for; ok is false for a code this package does not know.
func ProviderCode(code string) (p eventsv1.Provider, ok bool) {
	p, ok = providers[code]
	return p, ok
}

// StatusCode returns the status that a Sociocs status string ("delivered")
// stands for; ok is false for one this package does not know.
func StatusCode(code string) (s eventsv1.Status, ok bool) {
	s, ok = statuses[code]
	return s, ok
}

// ProviderCodes returns the known provider codes, sorted.
func ProviderCodes() []string { return sortedKeys(providers) }

// StatusCodes returns the known status strings, sorted.
func StatusCodes() []string { return sortedKeys(statuses) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
