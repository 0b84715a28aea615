// Package bus is Hearth's message bus: an embedded nats-server hub at the
// server, an embedded nats-server leaf node at every site dialing out to it,
// both on mutual TLS 1.3 with project certificates; the subject scheme and
// the per-participant NATS permissions generated from it and from who may
// address whom (pki.MayAddress: sites, admins and aggregators reach the
// server only). The hub cuts the live links of certificates a newly
// installed revocation list revokes.
//
// Signed envelopes live in bus/envelope, the actor bridge in bus/bridge,
// certificates in bus/pki, startup kits in bus/kit.
package bus
