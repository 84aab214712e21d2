package stream

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Codec is the gRPC server codec that lets the hub encode an event once for
// all its subscribers: a *wire is sent as its bytes; everything else goes
// through the standard protobuf codec. Install it with
// grpc.ForceServerCodecV2(stream.Codec()).
func Codec() encoding.CodecV2 {
	return preparedCodec{encoding.GetCodecV2(proto.Name)}
}

type preparedCodec struct{ encoding.CodecV2 }

func (c preparedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*wire); ok {
		// gRPC reads the slice and frees its buffers, which for a
		// SliceBuffer does nothing; it neither changes nor keeps the slice.
		return w.bytes, nil
	}
	return c.CodecV2.Marshal(v)
}
