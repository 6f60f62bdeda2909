// Package apierr is the error vocabulary every layer of hoard shares: an error that
// leaves the service carries its wire code, HTTP status and message. The codes of the
// ElastiCache model are generated into package ecapi as Kinds; the AWS common errors
// (authentication, malformed requests) are defined here.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind is one error code with its HTTP status.
type Kind struct {
	Code   string
	Status int
	Sender bool // true: the caller's fault ("Sender"); false: the service's ("Receiver")
}

// Errorf makes an error of this kind with a formatted message.
func (k Kind) Errorf(format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Is reports whether err is an *Error of this kind.
func (k Kind) Is(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == k.Code
}

// Error is an error with everything the wire needs.
type Error struct {
	Kind
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// As returns err as an *Error when it is one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Common errors of every AWS query API (AWS "Common Errors"), with the statuses AWS gives them.
var (
	MissingAuthenticationToken = Kind{Code: "MissingAuthenticationToken", Status: http.StatusForbidden, Sender: true}
	IncompleteSignature        = Kind{Code: "IncompleteSignature", Status: http.StatusBadRequest, Sender: true}
	InvalidClientTokenID       = Kind{Code: "InvalidClientTokenId", Status: http.StatusForbidden, Sender: true}
	SignatureDoesNotMatch      = Kind{Code: "SignatureDoesNotMatch", Status: http.StatusForbidden, Sender: true}
	RequestExpired             = Kind{Code: "RequestExpired", Status: http.StatusBadRequest, Sender: true}
	MissingAction              = Kind{Code: "MissingAction", Status: http.StatusBadRequest, Sender: true}
	InvalidAction              = Kind{Code: "InvalidAction", Status: http.StatusBadRequest, Sender: true}
	MissingParameter           = Kind{Code: "MissingParameter", Status: http.StatusBadRequest, Sender: true}
	MalformedQueryString       = Kind{Code: "MalformedQueryString", Status: http.StatusNotFound, Sender: true}
	InvalidQueryParameter      = Kind{Code: "InvalidQueryParameter", Status: http.StatusBadRequest, Sender: true}
	// InvalidParameterValue is the common-error twin of the model's InvalidParameterValueException;
	// the codec uses it for values that do not parse as their declared type.
	InvalidParameterValue = Kind{Code: "InvalidParameterValue", Status: http.StatusBadRequest, Sender: true}
	InternalFailure       = Kind{Code: "InternalFailure", Status: http.StatusInternalServerError}
	// NotImplemented answers an action of the model that hoard has not built yet.
	NotImplemented = Kind{Code: "NotImplemented", Status: http.StatusNotImplemented}
)
