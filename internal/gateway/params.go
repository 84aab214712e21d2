package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventsvc/eventsvc/internal/sociocs"
)

// Prefix is the path under which the REST API is served.
const Prefix = "/v1/"

// CheckParameters answers a request under Prefix whose parameters are not
// what the API takes with 400 and a google.rpc.Status body, code
// INVALID_ARGUMENT, naming the parameter and saying what is wrong: a
// parameter that is not valid UTF-8 (after percent-decoding), which would
// otherwise reach a protobuf string field and fail as an internal error; a
// query parameter the route does not take (a misspelt filter would
// otherwise be ignored and widen what is returned); a value of the wrong
// kind (an unsigned integer, an RFC 3339 time, a boolean, one of an enum's
// names); a single-valued parameter given twice. It passes every other
// request to next; parameters that do not decode at all are left to the
// handlers behind, which answer 400 themselves.
//
// A provider, event type or status is read as everywhere else, by
// sociocs.Table.Parse (twlo, twilio_sms, PROVIDER_TWILIO_SMS), or as the
// enum's number, and handed on as its enum name, which is what the
// handlers behind parse.
//
// It stands in front of everything under Prefix, the gateway and any other
// handler of the REST API alike. It is safe for concurrent use.
func CheckParameters(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, Prefix) {
			msg := invalidParameter(r.URL)
			if msg == "" {
				msg = unknownParameter(r)
			}
			if msg != "" {
				writeStatus(w, http.StatusBadRequest, status.New(codes.InvalidArgument, msg))
				return
			}
			spellEnumNames(r)
		}
		next.ServeHTTP(w, r)
	})
}

// streamOnlyParams are the query parameters of the stream route that are not
// fields of its request (see streamHandler).
var streamOnlyParams = []string{"access_token", "last_event_id"}

// unknownParameter describes the first parameter of r that its route does
// not take, or whose value is not of the parameter's kind, or returns "".
// A request that matches no route is left to the handlers (404, 405).
func unknownParameter(r *http.Request) string {
	segments := pathSegments(r.URL)
	rt, ok := routeOf(r.Method, segments)
	if !ok {
		return ""
	}
	params := rt.params[r.Method]
	for i, seg := range rt.segments {
		if p, ok := params[strings.Trim(seg, "{}")]; ok && isParam(seg) {
			if msg := checkValue("path parameter", p, segments[i]); msg != "" {
				return msg
			}
		}
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "" // malformed: the handler's own parsing answers 400
	}
	where := r.Method + " " + r.URL.Path
	for _, name := range sortedKeys(query) {
		values := query[name]
		p, known := params[name]
		if !known || p.In != "query" {
			if "/"+strings.Join(rt.segments, "/") == streamPath && slices.Contains(streamOnlyParams, name) {
				// Single-valued too: the handler reads the first, so two
				// access tokens would be decided by their order.
				if len(values) > 1 {
					return givenTwice(name, len(values))
				}
				continue
			}
			return unknown(name, where, params)
		}
		if len(values) > 1 && !p.Repeated {
			return givenTwice(name, len(values))
		}
		for _, v := range values {
			if msg := checkValue("query parameter", p, v); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// givenTwice says that a single-valued parameter is given n times.
func givenTwice(name string, n int) string {
	return fmt.Sprintf("query parameter %q is given %d times: it takes one value", name, n)
}

// unknown says that name is not a query parameter of the route, and which
// are.
func unknown(name, where string, params map[string]param) string {
	var names []string
	for n, p := range params {
		if p.In == "query" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	msg := fmt.Sprintf("unknown query parameter %q for %s", name, where)
	for _, n := range names {
		if n == name+"s" || n+"s" == name {
			return msg + fmt.Sprintf(": did you mean %q?", n)
		}
	}
	if len(names) == 0 {
		return msg + ": it takes none"
	}
	return msg + ": it takes " + strings.Join(names, ", ")
}

// checkValue says what is wrong with v as a value of p, or returns "".
func checkValue(what string, p param, v string) string {
	bad := func(want string) string {
		return fmt.Sprintf("%s %q: %q is not %s", what, p.Name, truncate(v, 64), want)
	}
	switch {
	case p.Format == "uint64":
		if _, err := strconv.ParseUint(v, 10, 64); err != nil {
			return bad("an unsigned integer")
		}
	case p.Format == "int32":
		if _, err := strconv.ParseInt(v, 10, 32); err != nil {
			return bad("a 32-bit integer")
		}
	case p.Format == "date-time":
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return bad("an RFC 3339 time such as 2026-11-30T10:00:00Z")
		}
	case p.Type == "boolean":
		if _, err := strconv.ParseBool(v); err != nil {
			return bad("true or false")
		}
	case namedEnums[p.enum()] != nil:
		if _, err := strconv.ParseInt(v, 10, 32); err == nil {
			return ""
		}
		var nameErr *sociocs.NameError
		if _, err := namedEnums[p.enum()](v); errors.As(err, &nameErr) {
			return bad(nameErr.Want + ", or its number")
		}
	case len(p.Enum) > 0:
		if _, err := strconv.ParseInt(v, 10, 32); err != nil && !slices.Contains(p.Enum, v) {
			return bad("one of " + strings.Join(p.Enum, ", "))
		}
	}
	return ""
}

// namedEnums spell the names of the enums that sociocs has a table of, by
// the name of the enum's value 0, which the OpenAPI document lists first:
// each returns the enum name of the value a name stands for.
var namedEnums = map[string]func(string) (string, error){
	sociocs.Providers.Name(0):  enumName(sociocs.Providers),
	sociocs.EventTypes.Name(0): enumName(sociocs.EventTypes),
	sociocs.Statuses.Name(0):   enumName(sociocs.Statuses),
}

func enumName[E ~int32](t *sociocs.Table[E]) func(string) (string, error) {
	return func(s string) (string, error) {
		e, err := t.Parse(s)
		return t.Name(e), err
	}
}

// enum returns the name of the value 0 of p's enum, or "".
func (p param) enum() string {
	if len(p.Enum) == 0 {
		return ""
	}
	return p.Enum[0]
}

// spellEnumNames rewrites the query parameters of r, which checkValue has
// accepted, that name a value of an enum in namedEnums other than by its
// enum name (twlo, twilio_sms) to that name (PROVIDER_TWILIO_SMS). The
// query is left as it is when there is none, and numbers are left as they
// are.
func spellEnumNames(r *http.Request) {
	u := r.URL
	rt, ok := routeOf(r.Method, pathSegments(u))
	if !ok {
		return
	}
	pairs := strings.Split(u.RawQuery, "&")
	changed := false
	for i, pair := range pairs {
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, kerr := url.QueryUnescape(rawKey)
		value, verr := url.QueryUnescape(rawValue)
		p, known := rt.params[r.Method][key]
		spell := namedEnums[p.enum()]
		if kerr != nil || verr != nil || !known || p.In != "query" || spell == nil {
			continue
		}
		if name, err := spell(value); err == nil && name != value {
			pairs[i], changed = rawKey+"="+url.QueryEscape(name), true
		}
	}
	if changed {
		u.RawQuery = strings.Join(pairs, "&")
	}
}

func sortedKeys(q url.Values) []string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// invalidParameter describes the first parameter of u that is not UTF-8, or
// returns "".
func invalidParameter(u *url.URL) string {
	if !utf8.ValidString(u.Path) {
		segments := pathSegments(u)
		for i, s := range segments {
			if utf8.ValidString(s) {
				continue
			}
			if name := paramName(segments, i); name != "" {
				return fmt.Sprintf("path parameter %s is not valid UTF-8: percent-encode the UTF-8 bytes of the text", name)
			}
			return fmt.Sprintf("the URL path segment %d is not valid UTF-8: percent-encode the UTF-8 bytes of the text", i+1)
		}
	}
	for pair := range strings.SplitSeq(u.RawQuery, "&") {
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, kerr := url.QueryUnescape(rawKey)
		value, verr := url.QueryUnescape(rawValue)
		switch {
		case kerr != nil || verr != nil:
			continue // malformed: the handler's own parsing answers 400
		case !utf8.ValidString(key):
			return fmt.Sprintf("the query parameter name %q is not valid UTF-8", strings.ToValidUTF8(key, "\uFFFD"))
		case !utf8.ValidString(value):
			return fmt.Sprintf("query parameter %q is not valid UTF-8: percent-encode the UTF-8 bytes of the text", key)
		}
	}
	return ""
}

// writeStatus writes st as the gateway writes errors: a google.rpc.Status
// in JSON.
func writeStatus(w http.ResponseWriter, httpStatus int, st *status.Status) {
	b, err := marshaler.Marshal(st.Proto())
	if err != nil {
		// A Status of a code and a UTF-8 message always marshals.
		b = []byte(`{"code":13,"message":"internal error"}`)
		httpStatus = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", marshaler.ContentType(nil))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	w.Write(b)
}
