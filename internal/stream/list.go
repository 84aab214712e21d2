package stream

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/record"
)

// Page sizes of ListEvents.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// errPageFull stops a read once a page (and one more event) is collected.
var errPageFull = errors.New("page full")

// ListEvents implements EventService.ListEvents.
//
// The time range applies to the time the log stored each event, which is
// within milliseconds of Event.received_at.
func (s *Service) ListEvents(ctx context.Context, req *eventsv1.ListEventsRequest) (*eventsv1.ListEventsResponse, error) {
	f, err := narrow(ctx, req.GetChannelKeys(), req.GetProviders(), req.GetTypes(), req.GetStatuses())
	if err != nil {
		return nil, toStatus(err)
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > MaxPageSize:
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d is out of range: 1 to %d, or 0 for %d", size, MaxPageSize, DefaultPageSize)
	case size == 0:
		size = DefaultPageSize
	}
	if _, ok := eventsv1.Order_name[int32(req.GetOrder())]; !ok {
		return nil, status.Errorf(codes.InvalidArgument, "order: unknown value %d", req.GetOrder())
	}
	var from, until time.Time
	if t := req.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "start_time: %v", err)
		}
		from = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "end_time: %v", err)
		}
		until = t.AsTime()
	}
	if !from.IsZero() && !until.IsZero() && !until.After(from) {
		return nil, status.Error(codes.InvalidArgument, "end_time must be after start_time")
	}
	fingerprint := requestFingerprint(req)
	var resume uint64
	if tok := req.GetPageToken(); tok != "" {
		if resume, err = parsePageToken(tok, fingerprint); err != nil {
			return nil, err
		}
	}
	first, last, err := s.src.Bounds(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	// lo..hi: the sequences the time range allows.
	lo, hi := first, last
	if !from.IsZero() {
		if lo, err = s.src.SequenceAt(ctx, from); err != nil {
			return nil, toStatus(err)
		}
	}
	if !until.IsZero() {
		end, err := s.src.SequenceAt(ctx, until)
		if err != nil {
			return nil, toStatus(err)
		}
		hi = min(hi, end-1)
	}
	newestFirst := req.GetOrder() == eventsv1.Order_ORDER_NEWEST_FIRST
	if resume != 0 {
		if newestFirst {
			hi = min(hi, resume)
		} else {
			lo = max(lo, resume)
		}
	}
	lo = max(lo, first)
	resp := &eventsv1.ListEventsResponse{Epoch: s.src.Epoch()}
	if lo > hi {
		return resp, nil
	}
	subjects := f.Subjects(s.src.SubjectPrefix())
	if subjects == nil {
		return resp, nil
	}
	var recs []*record.Record
	collect := func(into *[]*record.Record, limit int) func(*record.Record) error {
		return func(rec *record.Record) error {
			if !f.Match(&rec.Key) {
				return nil
			}
			*into = append(*into, rec)
			if limit > 0 && len(*into) > limit {
				return errPageFull
			}
			return nil
		}
	}
	if !newestFirst {
		if err := s.src.Read(ctx, subjects, lo, hi, collect(&recs, size)); err != nil && !errors.Is(err, errPageFull) {
			return nil, toStatus(err)
		}
		if len(recs) > size {
			resp.NextPageToken = pageToken(recs[size].Sequence, fingerprint)
			recs = recs[:size]
		}
	} else {
		// The log reads forward only: read windows that grow backwards from
		// hi until the page (and one more, to know there is a next page) is
		// full or lo is reached.
		window := uint64(size) * 2
		top := hi
		for {
			bottom := lo
			if top >= lo+window {
				bottom = top - window + 1
			}
			var chunk []*record.Record
			if err := s.src.Read(ctx, subjects, bottom, top, collect(&chunk, 0)); err != nil {
				return nil, toStatus(err)
			}
			for i := len(chunk) - 1; i >= 0 && len(recs) <= size; i-- {
				recs = append(recs, chunk[i])
			}
			if len(recs) > size || bottom == lo {
				break
			}
			top = bottom - 1
			window = min(window*2, 64*1024)
		}
		if len(recs) > size {
			resp.NextPageToken = pageToken(recs[size].Sequence, fingerprint)
			recs = recs[:size]
		}
	}
	resp.Events = make([]*eventsv1.Event, 0, len(recs))
	for _, rec := range recs {
		ev, err := rec.Event()
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Events = append(resp.Events, ev)
	}
	return resp, nil
}

// A page token is the sequence the next page starts at (inclusive) and a
// fingerprint of the request it belongs to, base64url-encoded. It is opaque to
// clients; the fingerprint catches a token reused with other filters.
func pageToken(next, fingerprint uint64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], next)
	binary.BigEndian.PutUint64(b[8:], fingerprint)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func parsePageToken(tok string, fingerprint uint64) (uint64, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != 16 {
		return 0, status.Error(codes.InvalidArgument, "page_token is not a token this service issued")
	}
	if binary.BigEndian.Uint64(b[8:]) != fingerprint {
		return 0, status.Error(codes.InvalidArgument, "page_token belongs to a request with other filters, time range or order")
	}
	next := binary.BigEndian.Uint64(b[:8])
	if next == 0 {
		return 0, status.Error(codes.InvalidArgument, "page_token is not a token this service issued")
	}
	return next, nil
}

func requestFingerprint(req *eventsv1.ListEventsRequest) uint64 {
	c := proto.CloneOf(req)
	c.PageToken = ""
	c.PageSize = 0
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}
