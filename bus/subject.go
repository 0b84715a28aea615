package bus

import (
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hearthfl/hearth/bus/pki"
)

// The subject scheme. Every subject Hearth uses is built here, and the NATS
// permissions of each participant are generated from the same builders, so
// the two cannot drift apart.
//
//	hearth.msg.<recipient>.<sender>          one signed envelope from sender to recipient
//	hearth.stream.<recipient>.<sender>.<id>  one chunk (or flow-control message) of stream id
//	hearth.peer.<recipient>.<sender>         one signed envelope between two sites (swarm learning)
//	hearth.cast.<sender>.<id>                one chunk of stream id, to every recipient of a cast
//
// Stream chunks are not signed one by one: the signed envelope that offers
// a stream carries the SHA-256 of every chunk (bus/stream).
//
// A participant may publish only on subjects that name it as the sender and
// a recipient its kind may address (pki.MayAddress), and subscribe only to
// subjects that name it as the recipient, with one exception: a cast
// names no recipient (the hub fans one message out to every leaf that
// subscribed), so a participant may subscribe to the casts of those that
// may address it peer to peer (see Permissions). Names are
// certificate CNs; a '.' in a name (admins are often e-mail addresses) is
// written as '~' in a subject token ('~' is not allowed in names, so the
// mapping is one to one).
const (
	subjectRoot   = "hearth"
	subjectDirect = subjectRoot + ".msg."
	subjectStream = subjectRoot + ".stream."
	subjectPeer   = subjectRoot + ".peer."
	subjectCast   = subjectRoot + ".cast."
)

// Token renders a participant name as one subject token.
func Token(name string) string { return strings.ReplaceAll(name, ".", "~") }

// nameOf reverses Token.
func nameOf(token string) string { return strings.ReplaceAll(token, "~", ".") }

// Direct is the subject for a message from sender to recipient.
func Direct(recipient, sender string) string {
	return subjectDirect + Token(recipient) + "." + Token(sender)
}

// Inbox is the subscription that receives every message addressed to name.
func Inbox(name string) string { return subjectDirect + Token(name) + ".*" }

// Peer is the subject for a message from one site to another: swarm
// traffic travels apart from the server's, so that a site hears sites on a
// subscription (and a queue) of its own and the server's messages never
// wait behind them.
func Peer(recipient, sender string) string {
	return subjectPeer + Token(recipient) + "." + Token(sender)
}

// PeerInbox is the subscription that receives every message another site
// addresses to name.
func PeerInbox(name string) string { return subjectPeer + Token(name) + ".*" }

// ParseDirect returns the recipient and sender a Direct subject names.
func ParseDirect(subject string) (recipient, sender string, ok bool) {
	recipient, sender, peer, ok := ParseEnvelopeSubject(subject)
	return recipient, sender, ok && !peer
}

// ParseEnvelopeSubject returns the recipient and sender a Direct or Peer
// subject names, and whether it is a Peer subject.
func ParseEnvelopeSubject(subject string) (recipient, sender string, peer, ok bool) {
	rest, found := strings.CutPrefix(subject, subjectDirect)
	if !found {
		if rest, found = strings.CutPrefix(subject, subjectPeer); !found {
			return "", "", false, false
		}
		peer = true
	}
	to, from, found := strings.Cut(rest, ".")
	if !found || to == "" || from == "" || strings.Contains(from, ".") {
		return "", "", false, false
	}
	return nameOf(to), nameOf(from), peer, true
}

// Stream is the subject of stream id's messages from sender to recipient.
func Stream(recipient, sender, id string) string {
	return subjectStream + Token(recipient) + "." + Token(sender) + "." + id
}

// StreamInbox is the subscription that receives every stream message
// addressed to name. It ends in '>' rather than "*.*": nats-server prunes
// the interest a hub sends to a leaf by the leaf's publish permissions
// (hearth.stream.<server>.<site>.*, see Permissions), and a "*.*" tail is
// not matched against them while '>' is (seen with nats-server 2.15.2).
// Publishers still cannot send anything deeper: their permissions have the
// exact token count.
func StreamInbox(name string) string { return subjectStream + Token(name) + ".>" }

// ParseStream returns the recipient, sender and stream id a Stream subject
// names.
func ParseStream(subject string) (recipient, sender, id string, ok bool) {
	rest, found := strings.CutPrefix(subject, subjectStream)
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return nameOf(parts[0]), nameOf(parts[1]), parts[2], true
}

// Cast is the subject of the chunks of stream id that sender casts to
// several recipients at once: published once, fanned out by the hub to
// every leaf with a subscriber. id "*" makes the permission that covers
// all of sender's casts.
func Cast(sender, id string) string { return subjectCast + Token(sender) + "." + id }

// ParseCast returns the sender and stream id a Cast subject names.
func ParseCast(subject string) (sender, id string, ok bool) {
	rest, found := strings.CutPrefix(subject, subjectCast)
	if !found {
		return "", "", false
	}
	from, id, found := strings.Cut(rest, ".")
	if !found || from == "" || id == "" || strings.Contains(id, ".") {
		return "", "", false
	}
	return nameOf(from), id, true
}

// Permissions are the NATS permissions of participant id among peers (the
// participants the hub admits, the server included), written from its point
// of view: it may publish only as itself, only to the peers its kind may
// address (pki.MayAddress: an admin reaches the server and no one else, a
// site the server and, on Peer subjects and streams, other sites), and
// receive only what is addressed to it. Casts (one stream to several
// recipients, bus/stream) travel peer to peer only (pki.PeerToPeer; the
// server streams one by one): a participant may publish on its own casts
// (Cast(self, "*")) when it may address some peer peer to peer, and
// subscribe to the casts of each peer that may address it peer to peer.
// A participant allowed to hear a peer's casts hears all of them, not only
// those offered to it, so a cast's payload is only as confidential as its
// sender makes it: encrypt it to the recipients (swarm does, under one key
// sealed to each holder). Nothing else is allowed:
// no JetStream API ($JS.API.>), no system subjects, no _INBOX (replies
// travel as Direct messages). A participant that may address no peer may
// publish nothing.
func Permissions(id pki.Identity, peers []pki.Identity) *server.Permissions {
	var pub, castFrom []string
	casts := false
	for _, p := range peers {
		if p.Name != id.Name && pki.MayAddress(p.Kind, id.Kind) && pki.PeerToPeer(p.Kind, id.Kind) {
			castFrom = append(castFrom, Cast(p.Name, "*"))
		}
		switch {
		case p.Name == id.Name || !pki.MayAddress(id.Kind, p.Kind):
		case pki.PeerToPeer(id.Kind, p.Kind):
			// Swarm traffic between sites: envelopes on Peer subjects,
			// and the chunks of models too large for one envelope
			// (encrypted, under the manifest in a sealed envelope).
			pub = append(pub, Peer(p.Name, id.Name), Stream(p.Name, id.Name, "*"))
			casts = true
		default:
			pub = append(pub, Direct(p.Name, id.Name), Stream(p.Name, id.Name, "*"))
		}
	}
	if casts {
		pub = append(pub, Cast(id.Name, "*"))
	}
	publish := &server.SubjectPermission{Allow: pub}
	if len(pub) == 0 {
		// An empty allow list would allow everything.
		publish = &server.SubjectPermission{Deny: []string{">"}}
	}
	sub := []string{Inbox(id.Name), StreamInbox(id.Name)}
	if pki.HearsPeers(id.Kind) {
		sub = append(sub, PeerInbox(id.Name))
	}
	sub = append(sub, castFrom...)
	return &server.Permissions{
		Publish:   publish,
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}
