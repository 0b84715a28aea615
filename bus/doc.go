// Package bus is Hearth's message bus: an embedded nats-server hub at the
// server, an embedded nats-server leaf node at every site dialing out to it,
// both on mutual TLS 1.3 with project certificates; the subject scheme and
// the per-participant NATS permissions generated from it.
//
// Signed envelopes live in bus/envelope, the actor bridge in bus/bridge,
// certificates in bus/pki, startup kits in bus/kit.
package bus
