package webhook

import (
	"bytes"
	"encoding/json"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"
)

// The converter reads a body that json.Valid has accepted by slicing it: the
// functions below find where values start and end and decode nothing. They
// assume valid JSON and must not be given anything else.

// member is one member of a JSON object: its key (decoded) and its value (raw,
// a slice of the body).
type member struct{ key, val []byte }

// object is the members of a JSON object, in order.
type object []member

// get returns the value of the member named key, or nil when there is none.
// Convert refuses a body with duplicate keys, so there is at most one.
func (o object) get(key string) json.RawMessage {
	for i := len(o) - 1; i >= 0; i-- {
		if string(o[i].key) == key {
			return o[i].val
		}
	}
	return nil
}

// members appends to dst the members of the object that starts raw (no
// leading space).
func members(raw []byte, dst object) object {
	i := skipSpace(raw, 1)
	for i < len(raw) && raw[i] == '"' {
		end := skipString(raw, i)
		key := raw[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			json.Unmarshal(raw[i:end], &s) // valid JSON string: cannot fail
			key = []byte(s)
		}
		i = skipSpace(raw, end) + 1 // past ':'
		i = skipSpace(raw, i)
		start := i
		i = skipValue(raw, i)
		dst = append(dst, member{key: key, val: raw[start:i:i]})
		i = skipSpace(raw, i)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return dst
}

// elements appends to dst the elements of the array that starts raw (no
// leading space).
func elements(raw []byte, dst [][]byte) [][]byte {
	i := skipSpace(raw, 1)
	for i < len(raw) && raw[i] != ']' {
		start := i
		i = skipValue(raw, i)
		dst = append(dst, raw[start:i:i])
		i = skipSpace(raw, i)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return dst
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// firstByte returns the first byte of b that is not JSON white space, or 0.
func firstByte(b []byte) byte {
	if i := skipSpace(b, 0); i < len(b) {
		return b[i]
	}
	return 0
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(b) && !isSpace(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
			i++
		}
		return i
	}
}

// skipString returns the index just past the string that starts at b[i].
func skipString(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		// The quote is escaped when an odd number of backslashes precede it.
		k := i
		for b[k-1] == '\\' {
			k--
		}
		if (i-k)%2 == 0 {
			return i + 1
		}
		i++
	}
}

// maxBuildDepth bounds the nesting newStruct and newValue build themselves;
// deeper documents go to protojson.
const maxBuildDepth = 64

// newStruct builds the Struct that protojson.Unmarshal would from raw, for
// the common documents: valid JSON objects whose strings need no unescaping
// and whose keys are distinct. It reports false for anything else, which the
// caller hands to protojson for the result or the error.
func newStruct(raw []byte) (*structpb.Struct, bool) {
	if !json.Valid(raw) {
		return nil, false
	}
	i := skipSpace(raw, 0)
	if raw[i] != '{' {
		return nil, false
	}
	s, _, ok := buildStruct(raw, i, 0)
	return s, ok
}

// newValue builds the Value that protojson.Unmarshal would from raw, which
// must be valid JSON, under the same conditions as newStruct.
func newValue(raw []byte) (*structpb.Value, bool) {
	i := skipSpace(raw, 0)
	if i == len(raw) {
		return nil, false
	}
	v, _, ok := buildValue(raw, i, 0)
	return v, ok
}

func buildStruct(b []byte, i, depth int) (*structpb.Struct, int, bool) {
	if depth > maxBuildDepth {
		return nil, i, false
	}
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value)}
	i = skipSpace(b, i+1)
	for b[i] == '"' {
		end := skipString(b, i)
		key, ok := plainString(b[i:end])
		if !ok {
			return nil, i, false
		}
		if _, dup := s.Fields[key]; dup {
			return nil, i, false // protojson: duplicate map key
		}
		i = skipSpace(b, skipSpace(b, end)+1)
		var v *structpb.Value
		if v, i, ok = buildValue(b, i, depth+1); !ok {
			return nil, i, false
		}
		s.Fields[key] = v
		if i = skipSpace(b, i); b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return s, i + 1, true // past '}'
}

func buildValue(b []byte, i, depth int) (*structpb.Value, int, bool) {
	switch b[i] {
	case '"':
		end := skipString(b, i)
		s, ok := plainString(b[i:end])
		if !ok {
			return nil, i, false
		}
		return structpb.NewStringValue(s), end, true
	case '{':
		s, end, ok := buildStruct(b, i, depth)
		if !ok {
			return nil, i, false
		}
		return structpb.NewStructValue(s), end, true
	case '[':
		if depth > maxBuildDepth {
			return nil, i, false
		}
		l := &structpb.ListValue{}
		i = skipSpace(b, i+1)
		for b[i] != ']' {
			v, end, ok := buildValue(b, i, depth+1)
			if !ok {
				return nil, i, false
			}
			l.Values = append(l.Values, v)
			if i = skipSpace(b, end); b[i] == ',' {
				i = skipSpace(b, i+1)
			}
		}
		return structpb.NewListValue(l), i + 1, true
	case 'n':
		return structpb.NewNullValue(), i + len("null"), true
	case 't':
		return structpb.NewBoolValue(true), i + len("true"), true
	case 'f':
		return structpb.NewBoolValue(false), i + len("false"), true
	default:
		end := skipValue(b, i)
		f, err := strconv.ParseFloat(string(b[i:end]), 64)
		if err != nil {
			return nil, i, false // protojson: out of range
		}
		return structpb.NewNumberValue(f), end, true
	}
}
