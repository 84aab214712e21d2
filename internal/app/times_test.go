package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// TestTimesBeyondNanoseconds: times a request may carry (years 1 to 9999)
// but that nanoseconds since 1970 cannot hold (after 2262-04-11, before
// 1677-09-21) find the end or the start of the log, over gRPC and REST.
func TestTimesBeyondNanoseconds(t *testing.T) {
	s := start(t, testConfig(t))
	ctx := ctxT(t)
	for _, w := range webhooks {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK {
			t.Fatalf("POST: %d %v", code, body)
		}
	}
	at := func(v string) *timestamppb.Timestamp {
		tm, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		return timestamppb.New(tm)
	}
	newest := eventsv1.Order_ORDER_NEWEST_FIRST
	lists := []struct {
		name  string
		req   *eventsv1.ListEventsRequest
		query string
		want  []uint64
	}{
		{"start in 9999", &eventsv1.ListEventsRequest{StartTime: at("9999-01-01T00:00:00Z")},
			"start_time=9999-01-01T00:00:00Z", nil},
		{"start in 2300", &eventsv1.ListEventsRequest{StartTime: at("2300-01-01T00:00:00Z")},
			"start_time=2300-01-01T00:00:00Z", nil},
		{"end in 2300, newest first", &eventsv1.ListEventsRequest{EndTime: at("2300-01-01T00:00:00Z"), Order: newest},
			"end_time=2300-01-01T00:00:00Z&order=ORDER_NEWEST_FIRST", []uint64{4, 3, 2, 1}},
		{"end in 9999", &eventsv1.ListEventsRequest{EndTime: at("9999-12-31T23:59:59Z")},
			"end_time=9999-12-31T23:59:59Z", []uint64{1, 2, 3, 4}},
		{"start in 2300, end in 9999", &eventsv1.ListEventsRequest{StartTime: at("2300-01-01T00:00:00Z"), EndTime: at("9999-01-01T00:00:00Z")},
			"start_time=2300-01-01T00:00:00Z&end_time=9999-01-01T00:00:00Z", nil},
		{"start in year 1", &eventsv1.ListEventsRequest{StartTime: at("0001-01-01T00:00:01Z")},
			"start_time=0001-01-01T00:00:01Z", []uint64{1, 2, 3, 4}},
		{"start in 1600 to end in 2300", &eventsv1.ListEventsRequest{StartTime: at("1600-01-01T00:00:00Z"), EndTime: at("2300-01-01T00:00:00Z"), Order: newest},
			"start_time=1600-01-01T00:00:00Z&end_time=2300-01-01T00:00:00Z&order=ORDER_NEWEST_FIRST", []uint64{4, 3, 2, 1}},
		{"end in 1600", &eventsv1.ListEventsRequest{EndTime: at("1600-01-01T00:00:00Z")},
			"end_time=1600-01-01T00:00:00Z", nil},
	}
	sequences := func(evs []*eventsv1.Event) []uint64 {
		var out []uint64
		for _, ev := range evs {
			out = append(out, ev.GetSequence())
		}
		return out
	}
	equal := func(a, b []uint64) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	for _, l := range lists {
		t.Run("gRPC list "+l.name, func(t *testing.T) {
			resp, err := s.client.ListEvents(ctx, l.req)
			if err != nil || !equal(sequences(resp.GetEvents()), l.want) {
				t.Fatalf("ListEvents: %v %v, want sequences %v", sequences(resp.GetEvents()), err, l.want)
			}
		})
		t.Run("REST list "+l.name, func(t *testing.T) {
			resp, err := http.Get(s.base + "/v1/events?" + l.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var list eventsv1.ListEventsResponse
			if err := protojson.Unmarshal(b, &list); resp.StatusCode != http.StatusOK || err != nil {
				t.Fatalf("GET /v1/events?%s: %d %s", l.query, resp.StatusCode, b)
			}
			if got := sequences(list.GetEvents()); !equal(got, l.want) {
				t.Fatalf("GET /v1/events?%s: sequences %v, want %v", l.query, got, l.want)
			}
		})
	}

	// A stream from a time past the range replays nothing: its first
	// message is the live heartbeat, and its first event the next stored.
	st, err := s.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{StartTime: at("9999-01-01T00:00:00Z")})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.GetHeartbeat() == nil || m.GetHeartbeat().GetLastSequence() != 4 {
		t.Fatalf("gRPC stream from 9999: first message: heartbeat %v, event at %d, %v; want a heartbeat at sequence 4",
			m.GetHeartbeat(), m.GetEvent().GetSequence(), err)
	}
	rest := s.restStream(t, ctx, "/v1/events:stream?start_time=9999-01-01T00:00:00Z")
	if !rest.sc.Scan() {
		t.Fatalf("REST stream from 9999 ended: %v", rest.sc.Err())
	}
	var first struct {
		Result struct {
			Heartbeat *struct {
				LastSequence string `json:"last_sequence"`
			} `json:"heartbeat"`
		} `json:"result"`
	}
	if err := json.Unmarshal(rest.sc.Bytes(), &first); err != nil || first.Result.Heartbeat == nil || first.Result.Heartbeat.LastSequence != "4" {
		t.Fatalf("REST stream from 9999: first line %s, want a heartbeat at sequence 4", rest.sc.Bytes())
	}
	if code, body := s.post(t, "/webhooks/sociocs", messageWebhook(t, "MMfuture", "after the streams opened")); code != http.StatusOK {
		t.Fatalf("POST: %d %v", code, body)
	}
	if got := recvN(t, st, 1); got[0].GetSequence() != 5 {
		t.Fatalf("gRPC stream from 9999: first event at sequence %d, want 5", got[0].GetSequence())
	}
	if got := rest.events(t, 1); got[0].GetSequence() != 5 {
		t.Fatalf("REST stream from 9999: first event at sequence %d, want 5", got[0].GetSequence())
	}
}
