package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// errTrailing reports data after the request's JSON object.
var errTrailing = errors.New("unexpected data after the JSON object")

// decode reads the JSON object of r's body into v. On failure it returns
// an error answered with a message naming the problem.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeLimit(w, r, v, wire.MaxBodyBytes)
}

// decodeLimit is decode with a body limit of its own.
func decodeLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		// Browsers cannot send application/json across origins without a
		// preflight, so requiring it also closes off form-post CSRF.
		return errorf(http.StatusUnsupportedMediaType, "request body must be application/json")
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Exactly one object: anything after it is a client bug.
		if _, err = dec.Token(); err == io.EOF {
			return nil
		}
		var maxErr *http.MaxBytesError
		if !errors.As(err, &maxErr) {
			err = errTrailing
		}
	}
	status, msg := describeDecodeError(err)
	return &statusError{status: status, msg: msg}
}

// describeDecodeError turns a JSON decoding error into a status and a
// message for the client.
func describeDecodeError(err error) (int, string) {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", maxErr.Limit)
	case errors.As(err, &syntaxErr):
		return http.StatusBadRequest, fmt.Sprintf("request body is not valid JSON: %s (at byte %d)", strings.TrimPrefix(syntaxErr.Error(), "json: "), syntaxErr.Offset)
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return http.StatusBadRequest, fmt.Sprintf("request body: want a JSON object, found %s", typeErr.Value)
		}
		return http.StatusBadRequest, fmt.Sprintf("request body: field %q: want %s, found %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.Is(err, errTrailing):
		return http.StatusBadRequest, "request body: " + err.Error()
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "request body is empty; want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "request body ends inside the JSON object"
	}
	// encoding/json reports unknown fields only as text: json: unknown field "x".
	return http.StatusBadRequest, "request body: " + strings.TrimPrefix(err.Error(), "json: ")
}
