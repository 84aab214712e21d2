package eventsvc

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestOpenAPIInfo: the document names the service and its API version,
// not the first proto file and "version not set".
func TestOpenAPIInfo(t *testing.T) {
	var doc struct {
		Info  struct{ Title, Description, Version string } `json:"info"`
		Paths map[string]json.RawMessage                   `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPIv2, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Info.Title != "eventsvc" || doc.Info.Version != "v1" || !strings.Contains(doc.Info.Description, "sociocs.events.v1.EventService") {
		t.Fatalf("info = %+v", doc.Info)
	}
	if len(doc.Paths) != 5 {
		t.Errorf("%d paths, want the 5 of the HTTP mapping", len(doc.Paths))
	}
}
