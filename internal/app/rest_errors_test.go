package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// restStatus is a google.rpc.Status as the REST API writes it.
type restStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (s *server) do(t *testing.T, method, path string) (*http.Response, restStatus, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st restStatus
	json.Unmarshal(b, &st)
	return resp, st, b
}

// TestRESTWrongMethod: a method the API does not serve on one of its paths
// is 405 with an Allow header and a google.rpc.Status body (it was 501).
func TestRESTWrongMethod(t *testing.T) {
	s := start(t, testConfig(t))
	for _, tt := range []struct{ method, path string }{
		{http.MethodDelete, "/v1/events"},
		{http.MethodPost, "/v1/events"},
		{http.MethodPut, "/v1/events/1"},
		{http.MethodDelete, "/v1/events/by-id/ev_1"},
		{http.MethodPost, "/v1/events:stream"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, st, b := s.do(t, tt.method, tt.path)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" || st.Code == 0 || !strings.Contains(st.Message, tt.method) {
				t.Fatalf("%s %s: %d (Allow %q) %s; want 405, Allow: GET and a Status naming the method",
					tt.method, tt.path, resp.StatusCode, resp.Header.Get("Allow"), b)
			}
		})
	}
	// A path the API does not serve at all is still 404.
	if resp, st, b := s.do(t, http.MethodDelete, "/v1/nothing"); resp.StatusCode != http.StatusNotFound || st.Code != 5 {
		t.Fatalf("DELETE /v1/nothing: %d %s, want 404", resp.StatusCode, b)
	}
}
