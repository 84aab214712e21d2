package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrDuplicateKey is what Convert's error wraps when an object of the body,
// at any depth, has the same key twice.
//
// JSON leaves duplicate keys to each parser: some keep the first, some the
// last. An event converted from such a body would say one thing while its
// raw_json, read by a consumer's parser, could say another. Refusing the
// body leaves no room for that.
var ErrDuplicateKey = errors.New("webhook: body has a duplicate key")

// DuplicateKeyError names a duplicate key and the object that has it.
type DuplicateKeyError struct {
	// Key is the key as decoded (escapes resolved; bytes that are not UTF-8
	// become U+FFFD, as for any JSON decoder that keeps strings valid).
	Key string
	// Path is the JSON path of the object: "contact",
	// "event_data.error[0]"; empty for the top-level object.
	Path string
}

func (e *DuplicateKeyError) Error() string {
	where := "the top-level object"
	if e.Path != "" {
		where = shortPath(e.Path)
	}
	return fmt.Sprintf("webhook: body has duplicate key %s in %s", quote(e.Key), where)
}

func (e *DuplicateKeyError) Unwrap() error { return ErrDuplicateKey }

// keysLinear is how many keys of one object are compared one by one before
// the object's keys go into a map: few objects have more, and a body made
// of one object with many keys must not cost quadratic time.
const keysLinear = 24

// structural marks the bytes checkStructure acts on outside strings.
var structural = [256]bool{'{': true, '}': true, '[': true, ']': true, ',': true, '"': true}

// keyFrame is an object or array open at some depth.
type keyFrame struct {
	object    bool
	expectKey bool                // object: the next string is a key
	first     int                 // index in the key list of its first key (an object's)
	seen      map[string]struct{} // object: its keys, once past keysLinear
	lastKey   []byte              // object: the key whose value is being read
	index     int                 // array: index of the element being read
}

// checkStructure returns, for the first fault of body in document order, a
// *DuplicateKeyError for a key that appears twice in one object or a
// *DepthError for a value nested deeper than MaxDepth; nil when there is
// none. body must be valid JSON. It makes one pass over body and, for the
// usual body, allocates nothing.
func checkStructure(body []byte) error {
	var frameSpace [8]keyFrame
	var keySpace [32][]byte
	frames, keys := frameSpace[:0], keySpace[:0]
	for i := 0; i < len(body); {
		if !structural[body[i]] {
			i++
			continue
		}
		switch body[i] {
		case '{', '[':
			if len(frames) >= MaxDepth {
				return &DepthError{Path: shortPath(valuePath(frames))}
			}
			frames = append(frames, keyFrame{object: body[i] == '{', expectKey: body[i] == '{', first: len(keys)})
		case '}', ']':
			keys = keys[:frames[len(frames)-1].first]
			frames = frames[:len(frames)-1]
		case ',':
			top := &frames[len(frames)-1]
			if top.object {
				top.expectKey = true
			} else {
				top.index++
			}
		case '"':
			end := skipString(body, i)
			if n := len(frames); n > 0 && frames[n-1].expectKey {
				top := &frames[n-1]
				top.expectKey = false
				key := canonicalKey(body[i+1 : end-1])
				top.lastKey = key
				if isDuplicate(top, keys[top.first:], key) {
					return &DuplicateKeyError{Key: string(key), Path: valuePath(frames[:n-1])}
				}
				if top.seen == nil {
					keys = append(keys, key)
				}
			}
			i = end
			continue
		}
		i++
	}
	return nil
}

// isDuplicate reports whether key is among the keys of the object f so far
// (listed in keys, or in f.seen once there are many), and records it.
func isDuplicate(f *keyFrame, keys [][]byte, key []byte) bool {
	if f.seen == nil {
		for _, k := range keys {
			if string(k) == string(key) {
				return true
			}
		}
		if len(keys) < keysLinear {
			return false
		}
		f.seen = make(map[string]struct{}, 2*len(keys))
		for _, k := range keys {
			f.seen[string(k)] = struct{}{}
		}
	}
	if _, dup := f.seen[string(key)]; dup {
		return true
	}
	f.seen[string(key)] = struct{}{}
	return false
}

// canonicalKey returns the key whose JSON string content (between the
// quotes) is raw, as a decoder would decode it: raw itself, unless it has an
// escape or bytes that are not UTF-8.
func canonicalKey(raw []byte) []byte {
	ascii := true
	for _, c := range raw {
		if c == '\\' {
			return decodeKey(raw)
		}
		ascii = ascii && c < utf8.RuneSelf
	}
	if !ascii && !utf8.Valid(raw) {
		return decodeKey(raw)
	}
	return raw
}

func decodeKey(raw []byte) []byte {
	var s string
	json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s) // a valid JSON string: cannot fail
	return []byte(s)
}

// valuePath is the JSON path of the value being read in the innermost of
// frames: "contact", "event_data.error[0]".
func valuePath(frames []keyFrame) string {
	var b strings.Builder
	for _, f := range frames {
		if f.object {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.Write(f.lastKey) // canonical: UTF-8
		} else {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(f.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}
