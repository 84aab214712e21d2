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
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// Defaults of the page bounds of ListEvents (see Options).
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// DefaultMaxPageBytes is the default of Options.MaxPageBytes.
	DefaultMaxPageBytes = 16 << 20
)

// pageReserve is the room a ListEventsResponse needs besides its events
// (epoch, next_page_token), with a wide margin.
const pageReserve = 1 << 10

// fieldListEvents is the field number of ListEventsResponse.events.
const fieldListEvents = 1

// page collects the events of one ListEvents page, in the order they are to
// be listed: the first n of recs, at most size events and, unless the first
// event alone is larger, at most budget bytes of them; and one more, when
// there is one, which says that there is a next page and where it starts.
type page struct {
	size, budget int
	recs         []*eventlog.Record
	n            int // events of recs in the page
	bytes        int // their encoded size in the response
}

// add appends rec and reports whether the page is complete: it holds one
// event past the page, so reading can stop.
func (p *page) add(rec *eventlog.Record) (complete bool) {
	cost := eventCost(rec)
	if len(p.recs) == p.n && p.n < p.size && (p.n == 0 || p.bytes+cost <= p.budget) {
		p.n++
		p.bytes += cost
	}
	p.recs = append(p.recs, rec)
	return len(p.recs) > p.n
}

// eventCost is the size rec adds to a ListEventsResponse: its stored bytes,
// the sequence appended to them, and the field's tag and length.
func eventCost(rec *eventlog.Record) int {
	ev := len(rec.Data) + protowire.SizeTag(fieldEventSequence) + protowire.SizeVarint(rec.Sequence)
	return protowire.SizeTag(fieldListEvents) + protowire.SizeBytes(ev)
}

// errPageFull stops a read once a page (and one more event) is collected.
var errPageFull = errors.New("page full")

// ListEvents implements EventService.ListEvents.
//
// A page holds at most the page size the request asks for (Options bound it)
// and stops short of Options.MaxPageBytes, so a page of large events may hold
// fewer: it then has a next_page_token like any page that is not the last.
//
// The time range applies to the time the log stored each event, which is
// within milliseconds of Event.received_at.
func (s *Service) ListEvents(ctx context.Context, req *eventsv1.ListEventsRequest) (*eventsv1.ListEventsResponse, error) {
	f, err := narrow(ctx, req.GetChannelKeys(), req.GetProviders(), req.GetTypes(), req.GetStatuses())
	if err != nil {
		return nil, s.failed("ListEvents", err)
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > s.opts.MaxPageSize:
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d is out of range: 1 to %d, or 0 for %d", size, s.opts.MaxPageSize, s.opts.DefaultPageSize)
	case size == 0:
		size = s.opts.DefaultPageSize
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
		return nil, s.failed("ListEvents", err)
	}
	// lo..hi: the sequences the time range allows.
	lo, hi := first, last
	if !from.IsZero() {
		if lo, err = s.src.SequenceAt(ctx, logTime(from)); err != nil {
			return nil, s.failed("ListEvents", err)
		}
	}
	if !until.IsZero() {
		end, err := s.src.SequenceAt(ctx, logTime(until))
		if err != nil {
			return nil, s.failed("ListEvents", err)
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
	p := &page{size: size, budget: s.opts.MaxPageBytes - pageReserve}
	if !newestFirst {
		err := s.src.Read(ctx, &f, lo, hi, func(rec *eventlog.Record) error {
			if p.add(rec) {
				return errPageFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errPageFull) {
			return nil, s.failed("ListEvents", err)
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
			// Of a window only its newest matches can go in the page (and
			// the one past it): keep that many, in a ring, so that a large
			// window does not hold all of its events in memory.
			ring := make([]*eventlog.Record, p.size+1-len(p.recs))
			matched := 0
			err := s.src.Read(ctx, &f, bottom, top, func(rec *eventlog.Record) error {
				ring[matched%len(ring)] = rec
				matched++
				return nil
			})
			if err != nil {
				return nil, s.failed("ListEvents", err)
			}
			full := false
			for i := 1; i <= min(matched, len(ring)) && !full; i++ {
				full = p.add(ring[(matched-i)%len(ring)])
			}
			if full || bottom == lo {
				break
			}
			top = bottom - 1
			window = min(window*2, 64*1024)
		}
	}
	recs := p.recs[:p.n]
	if len(p.recs) > p.n {
		resp.NextPageToken = pageToken(p.recs[p.n].Sequence, fingerprint)
	}
	resp.Events = make([]*eventsv1.Event, 0, len(recs))
	for _, rec := range recs {
		ev, err := rec.Event()
		if err != nil {
			return nil, s.failed("ListEvents", err)
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

// GetEvent implements EventService.GetEvent.
func (s *Service) GetEvent(ctx context.Context, req *eventsv1.GetEventRequest) (*eventsv1.GetEventResponse, error) {
	var rec *eventlog.Record
	var err error
	switch {
	case req.GetSequence() != 0 && req.GetId() != "":
		return nil, status.Error(codes.InvalidArgument, "give sequence or id, not both")
	case req.GetSequence() != 0:
		rec, err = s.src.Get(ctx, req.GetSequence())
	case req.GetId() != "":
		if len(req.GetId()) > maxIDLen {
			return nil, status.Errorf(codes.InvalidArgument, "id is longer than %d bytes", maxIDLen)
		}
		rec, err = s.src.GetByID(ctx, req.GetId())
	default:
		return nil, status.Error(codes.InvalidArgument, "give the sequence or the id of the event")
	}
	if err != nil {
		return nil, s.failed("GetEvent", err)
	}
	if scope := clientFrom(ctx).Scope; scope != nil && !scope.Permits(&rec.Key) {
		field := "sequence"
		if req.GetId() != "" {
			field = "id"
		}
		return nil, status.Errorf(codes.PermissionDenied, "%s: the event's channel, provider or type is outside this client's rights", field)
	}
	ev, err := rec.Event()
	if err != nil {
		return nil, s.failed("GetEvent", err)
	}
	return &eventsv1.GetEventResponse{Event: ev, Epoch: s.src.Epoch()}, nil
}

// maxIDLen bounds an event id in a request.
const maxIDLen = 256

// CreateStreamToken implements EventService.CreateStreamToken: a token for
// the caller's credential (any caller when the API is open).
func (s *Service) CreateStreamToken(ctx context.Context, _ *eventsv1.CreateStreamTokenRequest) (*eventsv1.CreateStreamTokenResponse, error) {
	if s.opts.StreamTokens == nil {
		return nil, status.Error(codes.Unimplemented, "stream tokens are not available on this server")
	}
	tok, expires := s.opts.StreamTokens.Mint(clientFrom(ctx).Credential)
	return &eventsv1.CreateStreamTokenResponse{Token: tok, ExpireTime: timestamppb.New(expires)}, nil
}
