package client

import (
	"errors"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func withResume(code codes.Code) error {
	st, err := status.New(code, "ended").WithDetails(&errdetails.ErrorInfo{
		Reason: "slow_consumer", Domain: ErrorDomain,
		Metadata: map[string]string{"resume_after_sequence": "42", "epoch": "e1"},
	})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		err      error
		allowGap bool
		want     bool
	}{
		{status.Error(codes.Unavailable, "down"), false, true},
		{withResume(codes.Unavailable), false, true},
		{withResume(codes.ResourceExhausted), false, true},
		{status.Error(codes.ResourceExhausted, "too many streams"), false, false},
		{status.Error(codes.Internal, "stream reset"), false, true},
		{status.Error(codes.Canceled, "by a proxy"), false, true},
		{errors.New("connection reset"), false, true},
		{status.Error(codes.Unauthenticated, "x"), false, false},
		{status.Error(codes.PermissionDenied, "x"), false, false},
		{status.Error(codes.InvalidArgument, "x"), false, false},
		{status.Error(codes.Unimplemented, "x"), false, false},
		{status.Error(codes.FailedPrecondition, "x"), false, false},
		{status.Error(codes.OutOfRange, "x"), false, false},
		{status.Error(codes.FailedPrecondition, "x"), true, true},
		{status.Error(codes.OutOfRange, "x"), true, true},
	}
	for _, tt := range tests {
		if got := retryable(tt.err, tt.allowGap); got != tt.want {
			t.Errorf("retryable(%v, allowGap=%v) = %v, want %v", tt.err, tt.allowGap, got, tt.want)
		}
	}
}

func TestResumePosition(t *testing.T) {
	after, epoch, ok := ResumePosition(withResume(codes.Unavailable))
	if !ok || after != 42 || epoch != "e1" {
		t.Fatalf("ResumePosition = %d, %q, %v", after, epoch, ok)
	}
	if _, _, ok := ResumePosition(status.Error(codes.Unavailable, "no detail")); ok {
		t.Fatal("a position from a status without one")
	}
	if _, _, ok := ResumePosition(errors.New("not a status")); ok {
		t.Fatal("a position from a plain error")
	}
}
