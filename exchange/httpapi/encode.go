package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// decode reads exactly one JSON value of type T from the body, refusing
// unknown fields, trailing data, other media types and oversize bodies.
func decode[T any](r *http.Request) (T, error) {
	var v T
	ok, err := decodeOptional(r, &v)
	if err != nil {
		return v, err
	}
	if !ok {
		return v, fmt.Errorf("request body: empty: %w", errBadRequest)
	}
	return v, nil
}

// decodeOptional decodes the body into v if there is one, and reports
// whether there was.
func decodeOptional(r *http.Request, v any) (bool, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return false, fmt.Errorf("request body over %d bytes: %w", mbe.Limit, errTooLarge)
		}
		return false, fmt.Errorf("read request body: %v: %w", err, errBadRequest)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return false, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return false, fmt.Errorf("content type %q, want application/json: %w", ct, errMediaType)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return false, wrapBad("request body", err)
	}
	if dec.More() {
		return false, fmt.Errorf("request body: data after the JSON value: %w", errBadRequest)
	}
	return true, nil
}

// encode writes v as JSON with status.
func encode(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, "application/json", v)
}

func writeJSON(w http.ResponseWriter, status int, ctype string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		ctype = "application/problem+json"
		b = []byte(`{"type":"` + ProblemTypeBase + `internal","title":"Internal error","status":500,"detail":"internal error"}`)
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
