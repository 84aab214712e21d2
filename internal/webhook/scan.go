package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
	"google.golang.org/protobuf/types/known/structpb"
)

// A body is read once, by a jsontext.Decoder, into a doc: an index of its
// values in document order. The decoder checks the syntax and refuses a
// duplicate name in any object; the pass itself bounds the nesting and
// records where each value starts and ends, how deeply each container nests
// and where it ends. The converter then finds members, elements, kinds and
// typed copies in the index, and reads no part of the body again but the
// strings and numbers it keeps.

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
	// Key is the key as decoded (escapes resolved; an escaped lone UTF-16
	// surrogate becomes U+FFFD, as for any JSON decoder that keeps strings
	// valid).
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

// errSyntax is what scan returns for a document that is not one JSON value:
// the caller asks encoding/json why, in the words webhook senders have
// always been given (see rejection).
var errSyntax = errors.New("webhook: not one JSON value")

// doc is a JSON document read by scan. Its nodes are its values in
// document order, an object's members as a name node followed by the
// value's nodes.
type doc struct {
	src   []byte
	nodes []node
	// dec reads src through in, which it reads in place.
	dec jsontext.Decoder
	in  bytes.Buffer
}

// docs keeps docs between bodies, with their decoders and the space of
// their nodes: without it, BenchmarkConvert makes 79 allocations and 6.0 KB
// per body (the decoder's state and name tables, the nodes), with it 36 and
// 1.8 KB.
var docs = sync.Pool{New: func() any { return new(doc) }}

// maxPooledNodes bounds the nodes of a doc kept in docs: the index of an
// unusually large body is left to the garbage collector.
const maxPooledNodes = 4096

func getDoc() *doc { return docs.Get().(*doc) }

// release puts d back in docs; d must not be used after.
func (d *doc) release() {
	if cap(d.nodes) > maxPooledNodes {
		return
	}
	// Let go of the document, which the decoder and in refer to.
	d.src, d.in = nil, bytes.Buffer{}
	d.dec.Reset(&d.in)
	docs.Put(d)
}

// node is one value of a doc, or one member's name.
type node struct {
	start, end int32 // the value's bytes in src: a container's from its '{' or '[' to its '}' or ']'
	next       int32 // the node past the value: past a container's members or elements
	// height is how many levels of objects and arrays the value is, itself
	// included: 0 for a scalar, 1 for {} or [1].
	height uint8
	kind   jsontext.Kind // 'n', 'f', 't', '"', '0', '{' or '['
}

// val is the index of a value's node in a doc, or absent.
type val int32

const absent val = -1

// frame is an object or array open while scanning.
type frame struct {
	node       int32
	name       int32 // object: the node of the name whose value is being read (-1 before the first)
	index      int   // array: the index of the element being read
	object     bool
	expectName bool
}

// The decoders' options. A body is checked for UTF-8 before it is scanned
// (the first rule, with the byte named), so the body's decoder need not
// check again; it then accepts an escaped lone UTF-16 surrogate ("\ud800") as
// U+FFFD, as encoding/json does and eventsvc always has. A document within
// a string (extra_fields) is decoded strictly: whatever the decoder refuses
// goes to protojson, which decides.
var (
	bodyOptions   = jsontext.AllowInvalidUTF8(true)
	strictOptions = jsontext.AllowInvalidUTF8(false)
)

// scan reads src, one JSON value, into d. It returns errSyntax for
// anything that is not one JSON value, a *DuplicateKeyError for an object
// with a name twice, a *DepthError for a value nested deeper than maxDepth
// levels; the fault that comes first in src decides.
func (d *doc) scan(src []byte, maxDepth int, opts jsontext.Options) error {
	d.src, d.nodes = src, d.nodes[:0]
	d.in = *bytes.NewBuffer(src)
	dec := &d.dec
	dec.Reset(&d.in, opts)
	var frameSpace [8]frame
	frames := frameSpace[:0]
	for {
		before := dec.InputOffset()
		tok, err := dec.ReadToken()
		switch {
		case err == io.EOF && len(d.nodes) > 0:
			return nil
		case errors.Is(err, jsontext.ErrDuplicateName):
			var syn *jsontext.SyntacticError
			errors.As(err, &syn)
			return &DuplicateKeyError{Key: syn.JSONPointer.LastToken(), Path: d.path(frames[:len(frames)-1])}
		case err != nil:
			return errSyntax
		case len(frames) == 0 && len(d.nodes) > 0:
			return errSyntax // a second value after the first
		}
		end := int32(dec.InputOffset())
		kind := tok.Kind()
		if kind == '}' || kind == ']' {
			f := frames[len(frames)-1]
			frames = frames[:len(frames)-1]
			n := &d.nodes[f.node]
			n.end, n.next = end, int32(len(d.nodes))
			if len(frames) > 0 {
				parent := &d.nodes[frames[len(frames)-1].node]
				parent.height = max(parent.height, n.height+1)
			}
			valueRead(frames)
			continue
		}
		i := int32(len(d.nodes))
		d.nodes = append(d.nodes, node{start: int32(tokenStart(src, before)), end: end, next: i + 1, kind: kind})
		if n := len(frames); n > 0 && frames[n-1].expectName {
			frames[n-1].name, frames[n-1].expectName = i, false
			continue
		}
		switch kind {
		case '{', '[':
			if len(frames) == maxDepth {
				return &DepthError{Path: shortPath(d.path(frames))}
			}
			d.nodes[i].height = 1
			frames = append(frames, frame{node: i, name: -1, object: kind == '{', expectName: kind == '{'})
		default:
			valueRead(frames)
		}
	}
}

// valueRead moves the innermost of frames past the value just read.
func valueRead(frames []frame) {
	if n := len(frames); n > 0 {
		if f := &frames[n-1]; f.object {
			f.expectName = true
		} else {
			f.index++
		}
	}
}

// tokenStart returns where the token read after offset at begins: past the
// white space and the ',' or ':' before it.
func tokenStart(src []byte, at int64) int {
	i := int(at)
	for i < len(src) && (isSpace(src[i]) || src[i] == ',' || src[i] == ':') {
		i++
	}
	return i
}

// path is the JSON path of the value being read in the innermost of frames:
// "contact", "event_data.error[0]".
func (d *doc) path(frames []frame) string {
	var b strings.Builder
	for _, f := range frames {
		if f.object {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(d.text(val(f.name)))
		} else {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(f.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// kind returns the JSON kind of v: 'n' (null or absent), '"', '{', '[',
// 't'/'f' (booleans), or '0' (number).
func (d *doc) kind(v val) byte {
	if v == absent {
		return 'n'
	}
	return byte(d.nodes[v].kind)
}

// raw returns the bytes of v.
func (d *doc) raw(v val) []byte {
	n := d.nodes[v]
	return d.src[n.start:n.end]
}

// plain returns the content of the string v, between its quotes, and
// whether it is the string's value as it is: without escapes.
func (d *doc) plain(v val) ([]byte, bool) {
	raw := d.raw(v)
	inner := raw[1 : len(raw)-1]
	return inner, bytes.IndexByte(inner, '\\') < 0
}

// text returns the value of the string v (a value or a name).
func (d *doc) text(v val) string {
	if inner, ok := d.plain(v); ok {
		return string(inner)
	}
	// The only error is for an escaped lone surrogate, which becomes
	// U+FFFD, as with encoding/json.
	b, _ := jsontext.AppendUnquote(nil, d.raw(v))
	return string(b)
}

// get returns the value of the member named key of the object obj, or
// absent. scan refuses duplicate names, so there is at most one.
func (d *doc) get(obj val, key string) val {
	if obj == absent {
		return absent
	}
	end := val(d.nodes[obj].next)
	for i := obj + 1; i < end; i = val(d.nodes[i+1].next) {
		n := &d.nodes[i]
		switch size := int(n.end-n.start) - 2; {
		case size == len(key):
			if string(d.src[n.start+1:n.end-1]) == key {
				return i + 1
			}
		case size > len(key): // perhaps a name with escapes, which is longer than its value
			if bytes.IndexByte(d.src[n.start+1:n.end-1], '\\') >= 0 && d.text(i) == key {
				return i + 1
			}
		}
	}
	return absent
}

// elements returns the elements of the array arr.
func (d *doc) elements(arr val) []val {
	var out []val
	for i := arr + 1; i < val(d.nodes[arr].next); i = val(d.nodes[i].next) {
		out = append(out, i)
	}
	return out
}

// isEmpty reports whether the container v has no members or elements.
func (d *doc) isEmpty(v val) bool { return d.nodes[v].next == int32(v)+1 }

// newStruct builds the Struct that protojson.Unmarshal would from raw, for
// the common documents: JSON objects, nested at most MaxTypedDepth levels,
// whose strings need no unescaping and whose keys are distinct. It reports
// false for anything else, which the caller hands to protojson for the
// result or the error.
func newStruct(raw []byte) (*structpb.Struct, bool) {
	d := getDoc()
	defer d.release()
	if d.scan(raw, MaxTypedDepth, strictOptions) != nil || d.kind(0) != '{' {
		return nil, false
	}
	return d.structAt(0)
}

// structAt builds the Struct that protojson.Unmarshal would from the object
// v, when its strings need no unescaping and its numbers fit a float64; it
// reports false otherwise.
func (d *doc) structAt(v val) (*structpb.Struct, bool) {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value)}
	for i := v + 1; i < val(d.nodes[v].next); i = val(d.nodes[i+1].next) {
		key, ok := d.plain(i)
		if !ok {
			return nil, false
		}
		value, ok := d.valueAt(i + 1)
		if !ok {
			return nil, false
		}
		s.Fields[string(key)] = value
	}
	return s, true
}

// valueAt builds the Value that protojson.Unmarshal would from v, under the
// same conditions as structAt.
func (d *doc) valueAt(v val) (*structpb.Value, bool) {
	switch d.kind(v) {
	case '"':
		s, ok := d.plain(v)
		if !ok {
			return nil, false
		}
		return structpb.NewStringValue(string(s)), true
	case '{':
		s, ok := d.structAt(v)
		if !ok {
			return nil, false
		}
		return structpb.NewStructValue(s), true
	case '[':
		l := &structpb.ListValue{}
		for i := v + 1; i < val(d.nodes[v].next); i = val(d.nodes[i].next) {
			e, ok := d.valueAt(i)
			if !ok {
				return nil, false
			}
			l.Values = append(l.Values, e)
		}
		return structpb.NewListValue(l), true
	case 'n':
		return structpb.NewNullValue(), true
	case 't', 'f':
		return structpb.NewBoolValue(d.kind(v) == 't'), true
	default:
		f, err := strconv.ParseFloat(string(d.raw(v)), 64)
		if err != nil {
			return nil, false // protojson: out of range
		}
		return structpb.NewNumberValue(f), true
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// depthWithin reports whether raw, JSON or not, opens at most max objects
// and arrays inside one another outside its strings. It decides for a
// document that scan refused before it went that deep.
func depthWithin(raw []byte, max int) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range raw {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				return false
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return true
}
