package stream

import (
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// ErrorDomain is the domain of the ErrorInfo details this service attaches.
const ErrorDomain = "eventsvc"

// Metadata keys of the ErrorInfo attached to a status that ends a stream, so
// that a client can resume without parsing the message.
const (
	MetaResumeAfter = "resume_after_sequence"
	MetaEpoch       = "epoch"
)

// resumeStatus ends a stream with code, a message that names the resume
// position, and an ErrorInfo (reason, resume_after_sequence, epoch).
func resumeStatus(code codes.Code, reason, msg string, after uint64, epoch string) error {
	st := status.New(code, fmt.Sprintf("%s; resume with after_sequence=%d epoch=%s", msg, after, epoch))
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   reason,
		Domain:   ErrorDomain,
		Metadata: map[string]string{MetaResumeAfter: strconv.FormatUint(after, 10), MetaEpoch: epoch},
	}); err == nil {
		st = withInfo
	}
	return st.Err()
}

func shuttingDown(after uint64, epoch string) error {
	return resumeStatus(codes.Unavailable, "shutting_down", "the server is shutting down", after, epoch)
}

// notStarted ends a stream that the shutdown caught before it sent
// anything. Only a request that resumes has a position to resume from (its
// own); any other is told to retry as it was, since after_sequence=0 would
// replay the whole log.
func notStarted(req *eventsv1.StreamEventsRequest, epoch string) error {
	if req.AfterSequence == nil {
		return status.Error(codes.Unavailable, "the server is shutting down; retry the request")
	}
	if req.GetEpoch() != "" {
		epoch = req.GetEpoch()
	}
	return shuttingDown(req.GetAfterSequence(), epoch)
}

// ResumeCursor extracts the resume position from a status that ended a
// stream; ok is false when the status carries none.
func ResumeCursor(err error) (after uint64, epoch string, ok bool) {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo && info.GetDomain() == ErrorDomain {
			n, perr := strconv.ParseUint(info.GetMetadata()[MetaResumeAfter], 10, 64)
			if perr == nil {
				return n, info.GetMetadata()[MetaEpoch], true
			}
		}
	}
	return 0, "", false
}
