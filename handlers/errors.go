// Package handlers reacts to input: the REST API (which publishes to the bus)
// and the bus handlers (deliver outbound envelopes, apply control commands).
package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

// apiError is an error with its REST status and code.
type apiError struct {
	status  int
	code    string
	message string
	allow   string // the Allow header of a 405
}

func (e *apiError) Error() string { return e.message }

func badRequest(msg string) error { return &apiError{http.StatusBadRequest, "bad_request", msg, ""} }

var (
	errUnauthorized = &apiError{http.StatusUnauthorized, "unauthorized", "missing or invalid API key (X-API-Key or Authorization: Bearer)", ""}
	errNotFound     = &apiError{http.StatusNotFound, "not_found", "no such route", ""}
	errMediaType    = &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json", ""}
	errRateLimited  = &apiError{http.StatusTooManyRequests, "rate_limited", "too many requests for this API key; retry later", ""}
)

func errTooLarge(limit int64) error {
	return &apiError{http.StatusRequestEntityTooLarge, "payload_too_large",
		"request body exceeds MAX_PAYLOAD_BYTES (" + itoa(limit) + " bytes)", ""}
}

// writeError maps err to the REST error model; this is the one place errors
// become statuses.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, router.ErrBusUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		ae = &apiError{http.StatusServiceUnavailable, "bus_unavailable", "the bus did not accept the message; nothing was published: " + err.Error(), ""}
	case errors.Is(err, schemas.ErrInvalid):
		ae = &apiError{http.StatusBadRequest, "bad_request", err.Error(), ""}
	default:
		ae = &apiError{http.StatusInternalServerError, "internal", "internal error", ""}
	}
	if ae.allow != "" {
		w.Header().Set("Allow", ae.allow)
	}
	writeJSON(w, ae.status, map[string]any{"error": map[string]string{"code": ae.code, "message": ae.message}})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
