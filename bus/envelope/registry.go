package envelope

import (
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Registry is the set of message types this process can decode, keyed by
// their fully qualified protobuf name (proto.MessageName). It is built
// explicitly from prototypes, never from a global registration, and is the
// only way a type name read from a header becomes a Go value: a name that is
// not in the registry is never decoded. A Registry is immutable and safe for
// concurrent use.
type Registry struct {
	types map[string]protoreflect.MessageType
}

// NewRegistry registers the types of prototypes (their values are not used).
// Nil prototypes are ignored; a type listed twice is registered once.
func NewRegistry(prototypes ...proto.Message) *Registry {
	r := &Registry{types: make(map[string]protoreflect.MessageType, len(prototypes))}
	for _, p := range prototypes {
		if p == nil {
			continue
		}
		mt := p.ProtoReflect().Type()
		r.types[string(mt.Descriptor().FullName())] = mt
	}
	return r
}

// Has reports whether name (e.g. "hearth.v1.Ping") is registered.
func (r *Registry) Has(name string) bool {
	_, ok := r.types[name]
	return ok
}

// Names lists the registered type names, sorted.
func (r *Registry) Names() []string {
	return slices.Sorted(maps.Keys(r.types))
}

// New returns a new, empty message of the registered type name, or false if
// name is not registered.
func (r *Registry) New(name string) (proto.Message, bool) {
	mt, ok := r.types[name]
	if !ok {
		return nil, false
	}
	return mt.New().Interface(), true
}

// decode unmarshals data as the registered type name. Unknown fields are
// kept (not discarded), as the wire contract asks.
func (r *Registry) decode(name string, data []byte) (proto.Message, error) {
	m, ok := r.New(name)
	if !ok {
		return nil, ErrUnknownType
	}
	if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(data, m); err != nil {
		return nil, err
	}
	return m, nil
}
