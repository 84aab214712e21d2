package stream

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// start is a validated start position.
type start struct {
	now       bool
	next      uint64 // first sequence the stream may send (when !now)
	gap       *eventsv1.Gap
	requested string // for logs
}

// resolveStart validates the start options of req against the log of
// epoch.
func (s *Service) resolveStart(ctx context.Context, req *eventsv1.StreamEventsRequest, epoch string) (start, error) {
	set := 0
	if req.AfterSequence != nil {
		set++
	}
	if req.GetStartTime() != nil {
		set++
	}
	if req.GetFromEarliest() {
		set++
	}
	switch {
	case set > 1:
		return start{}, status.Error(codes.InvalidArgument, "after_sequence, start_time and from_earliest are alternatives: set at most one")
	case req.GetEpoch() != "" && req.AfterSequence == nil:
		return start{}, status.Error(codes.InvalidArgument, "epoch is given without after_sequence: it qualifies a resume cursor")
	case req.GetAllowGap() && req.AfterSequence == nil:
		return start{}, status.Error(codes.InvalidArgument, "allow_gap applies only with after_sequence")
	case set == 0:
		return start{now: true, requested: "now"}, nil
	}
	if t := req.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return start{}, status.Errorf(codes.InvalidArgument, "start_time: %v", err)
		}
		next, err := s.src.SequenceAt(ctx, logTime(t.AsTime()))
		if err != nil {
			return start{}, s.failed("StreamEvents", err)
		}
		return start{next: next, requested: "start_time"}, nil
	}
	first, last, err := s.src.Bounds(ctx)
	if err != nil {
		return start{}, s.failed("StreamEvents", err)
	}
	if req.GetFromEarliest() {
		return start{next: first, requested: "earliest"}, nil
	}
	after := req.GetAfterSequence()
	gap := func(reason string) start {
		return start{next: first, requested: "after_sequence", gap: &eventsv1.Gap{Reason: reason, RequestedAfterSequence: after, FirstSequence: first}}
	}
	if ep := req.GetEpoch(); ep != "" && ep != epoch {
		if req.GetAllowGap() {
			return gap("epoch_mismatch"), nil
		}
		return start{}, status.Errorf(codes.FailedPrecondition,
			"the cursor is from epoch %q but the log is now epoch %q (it was recreated): resume with from_earliest, or set allow_gap", ep, epoch)
	}
	if after > last {
		return start{}, status.Errorf(codes.InvalidArgument, "after_sequence %d is past the end of the log (last sequence %d)", after, last)
	}
	if after+1 < first {
		if req.GetAllowGap() {
			return gap("expired"), nil
		}
		return start{}, status.Errorf(codes.OutOfRange,
			"events after sequence %d have expired from the log (the oldest held is %d): resume with from_earliest, or set allow_gap", after, first)
	}
	return start{next: after + 1, requested: "after_sequence"}, nil
}
