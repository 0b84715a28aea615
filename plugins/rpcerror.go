package plugins

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxErrorText bounds the text of a plugin's error.
const maxErrorText = 512

// RPCError is a kind's gRPC call that the plugin answered with an error,
// or that failed on the way. It keeps the gRPC status, so that a Process
// tells a broken connection (codes.Unavailable) from the plugin's answer,
// and its text clips what the plugin wrote.
type RPCError struct {
	Kind   string // the plugin kind, e.g. "authn"
	Op     string // the call, e.g. "authenticate"
	Status *status.Status
}

// NewRPCError wraps the error of a kind's gRPC call op.
func NewRPCError(kind, op string, err error) error {
	return &RPCError{Kind: kind, Op: op, Status: status.Convert(err)}
}

// Error reads e.g. `authn plugin: authenticate: ldap: dial: connection
// refused`, with the gRPC code when the plugin did not answer the error
// itself.
func (e *RPCError) Error() string {
	msg := e.Kind + " plugin: " + e.Op + ": "
	if e.Status.Code() != codes.Unknown {
		msg += e.Status.Code().String() + ": "
	}
	return msg + Clip(e.Status.Message(), maxErrorText)
}

// GRPCStatus is the call's gRPC status (status.Code reads it).
func (e *RPCError) GRPCStatus() *status.Status { return e.Status }
