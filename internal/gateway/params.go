package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Prefix is the path under which the REST API is served.
const Prefix = "/v1/"

// CheckParameters answers a request under Prefix whose path or query holds
// a parameter that is not valid UTF-8 (after percent-decoding) with 400 and
// a google.rpc.Status body, code INVALID_ARGUMENT, naming the parameter; it
// passes every other request to next. Such a parameter would otherwise reach
// a protobuf string field, which must be UTF-8, and fail as an internal
// error (500). Parameters that do not decode at all are left to the
// handlers behind, which answer 400 themselves.
//
// It stands in front of everything under Prefix, the gateway and any other
// handler of the REST API alike. It is safe for concurrent use.
func CheckParameters(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, Prefix) {
			if msg := invalidParameter(r.URL); msg != "" {
				writeStatus(w, http.StatusBadRequest, status.New(codes.InvalidArgument, msg))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
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
