// Package stream moves large payloads (model tensors, hundreds of MB to many
// GB) between two participants through the NATS hub, in chunks checked
// against a signed manifest, with memory bounded by a window at both ends
// and at the hub, progress-based stall detection and resumption after a
// leaf reconnect.
//
// # Use
//
// One Manager per process subscribes bus.StreamInbox(Self) once and
// demultiplexes every stream by (peer, stream id). The sender calls Offer
// (OfferBytes for data in memory), which reads the source once to hash
// every chunk and returns an Outgoing whose Manifest the caller puts inside
// the signed message that offers the stream (bus/envelope): the manifest
// is authenticated by that signature, so chunks need no signature of their
// own. The recipient verifies that message, then calls Receive with the
// manifest and the sender's name; its Sink gets every chunk in order, after
// its hash matched the manifest (BLAKE3 by default, or SHA-256: the
// manifest names the function, see Hash). The sender's Outgoing.Wait returns once
// the recipient confirmed the last chunk. To send the same bytes to many
// recipients (the global model to every site), Prepare hashes them once and
// either OfferPayload opens one stream per recipient with those hashes, or
// OfferCast opens one cast to all of them: one manifest, each chunk
// published once and fanned out by the hub, so the sender's link and the
// hub's inbound carry the payload once instead of once per recipient.
//
// # Protocol
//
// Stream id is 128 random bits in hex. Two subjects carry a stream, and a
// third the chunks of a cast:
//
//	bus.Stream(recipient, sender, id)  sender -> recipient: chunks, probes, abort
//	bus.Stream(sender, recipient, id)  recipient -> sender: credit, abort
//	bus.Cast(sender, id)               sender -> every recipient of a cast: chunks
//
// NATS permissions let a participant publish only under its own name, so
// only the sender can publish chunks of its streams and only the recipient
// can grant credit for them. A chunk message carries its index in the NATS
// header Hearth-Chunk (decimal, zero-padded to 8 digits so that the payload
// lands 4-byte aligned at the recipient) and the chunk's bytes as its
// payload, so OfferBytes publishes chunks straight from the caller's
// memory. The other
// messages have no header and a binary payload whose first byte is the
// kind; integers are big-endian uint32:
//
//	chunk   Hearth-Chunk: index; data   one chunk, index < chunk count
//	probe   0x02                        "tell me where you are" (sender idle)
//	abort   0x03 reason                 the sender gave up (Cancel, Close, read error)
//	split   0x04                        of a cast: "your chunks come here now" (a probe too)
//	credit  0x10 ack limit seq          chunks < ack delivered; send chunks < limit;
//	                                    a seq the sender has not seen yet asks it
//	                                    to rewind to ack (go-back-N)
//	abort   0x11 reason                 the recipient gave up
//
// The sender sends nothing until the recipient grants credit, and then only
// chunks below the latest limit; the recipient grants credit in batches (a
// quarter of the window) as its Sink takes chunks, so the Sink's pace
// throttles the sender and at most a window of chunks is in flight.
//
// The recipient delivers strictly in order and keeps no reorder buffer:
//
//   - chunk == next, hash matches: delivered to the Sink; next advances.
//   - chunk == next, length wrong (a chunk other than the last shorter or
//     longer than the chunk size, or a last chunk that does not end the
//     stream): refused, never delivered, and the stream fails at once with
//     ErrChunkSize naming it, even if the manifest hashed it so.
//   - chunk == next, hash wrong: refused, never delivered, and
//     re-requested with a rewind; the third bad copy of one chunk fails
//     the stream with ErrCorrupt naming it.
//   - chunk > next (a gap: chunks were lost, e.g. while a leaf link was
//     down): dropped, and the recipient asks the sender to rewind to next;
//     until next arrives it drops later chunks without asking again.
//   - chunk < next: a duplicate, dropped.
//
// Because a rewind restarts at the first missing chunk, a transfer cut by
// a leaf reconnect resumes where it stopped instead of starting over.
//
// Liveness: with no chunk message arriving for RetryInterval (and none
// delivered) the recipient asks for a rewind to next, which restarts a
// sender whose chunks or credit were lost (after a leaf reconnect, say);
// each rewind asked for in vain doubles that wait, up to eight
// RetryIntervals or an eighth of StallTimeout, whichever is less (one
// RetryInterval at least: with a StallTimeout of eight RetryIntervals or
// less there is no backoff), so that on a congested path the resent chunks
// are not sent again and again behind each other, while a link that comes
// back more than that before the stall is still asked again in time. While
// chunks arrive, a lost one shows itself as a gap. Until the first chunk
// arrives it also repeats its first credit, quickly at first (50 ms,
// doubling), in case that was lost. With no chunk delivered for
// StallTimeout it fails with ErrStalled. A sender that has sent all it may
// and hears nothing for RetryInterval sends a probe, which the recipient
// answers with its credit (a Manager also answers probes for streams it
// finished within StallTimeout, in case the last credit was lost); hearing
// nothing for StallTimeout it fails with ErrStalled. The recipient must
// therefore start Receive within StallTimeout of the Offer. Cancel, Close,
// a cancelled context, a failed Sink or a corrupt chunk send an abort, so
// the peer fails at once with ErrAborted instead of waiting for the stall.
//
// # Casts
//
// A cast is one stream to several recipients (OfferCast), its manifest the
// same for all, with Cast set. Receive of such a manifest subscribes to
// bus.Cast(sender, id) before it grants its first credit (the subscription
// reaches the hub ahead of the credit, on the same connection) and
// unsubscribes when it returns; the chunks that arrive there go to the same
// receiver, by (sender, id), and are handled exactly as above. Everything
// else stays per recipient on its two unicast subjects: credit, rewinds,
// probes and aborts. The sender publishes chunk i on the cast subject once
// i is below every live recipient's limit, so the slowest paces the cast
// and each recipient has at most its window in flight (two just after a
// rewind): the sender honours no recipient's credit beyond its own Window
// past what that recipient confirmed, so no recipient's rewind resends more
// than that to the others. A rewind from one recipient resends from there
// on the cast subject, and the others drop the duplicates. The sender drops
// a recipient from the cast, with an abort on its unicast subject and an
// error naming it in the result that Cast.Wait returns, when it aborts,
// when nothing is heard from it for StallTimeout, when it confirms nothing
// new for the hold time while the cast waits on it (StallTimeout less two
// RetryIntervals, at least half of it, so that it goes before the
// recipients waiting behind it stall), or when its rewinds would resend
// more chunks than the stream has (at least Window; ErrRewinds), or when it
// confirms chunks never sent to it (ErrUnsent). The others go on. A
// recipient that held the others back for two RetryIntervals is split off
// instead of setting the pace. It is charged the time the cast may not send
// for want of its credit while most of the others wait on it (they
// confirmed every chunk sent before the next and have credit for it; a cast
// recipient confirms whenever it has nothing queued, so that its waiting
// shows), and a quarter of it while only some do: so a recipient racing
// ahead of the rest gets others split off only after four lags of setting
// the pace (unless there is one other), one that never waits delays a slow
// one's split to four lags at most, and honest recipients of one pace wait
// on each other only for a moment's jitter. The sender tells a split
// recipient so with a split message (and again in place of probes), sends
// its chunks on its unicast subject from what it confirmed, and it
// unsubscribes from the cast subject (it takes a chunk on its unicast
// subject as the same news, and drops the cast's chunks from then on). The
// cast ends when no recipient is left in it. NATS permissions let only the
// sender publish on its cast subject, and only the participants it may
// address peer to peer subscribe to it (bus Permissions): every such
// participant can hear every cast of the sender, so a cast's payload should
// be encrypted to its recipients.
//
// # Memory
//
// The sender holds one chunk buffer per stream (it re-reads the source to
// resend; Publish copies), none with OfferBytes. The recipient holds the
// chunks in flight (at most a window, twice that just after a rewind; more
// are dropped and re-requested) and verifies and delivers one at a time.
// All incoming streams of a Manager share ReceiveBudget bytes of window,
// which keeps the outbound buffer of the hub (or leaf) to the receiving
// connection well below its max_pending (bus.MaxPending), past which
// nats-server disconnects the client; the hub itself holds at most the
// windows in flight (for a cast, one window per recipient, in the
// outbound buffer to each recipient's leaf). Nothing
// grows with the stream's size but the manifest (32 bytes a chunk), which
// bounds a stream to MaxChunks chunks (MaxStreamBytes); Offer grows the
// chunk size beyond Config.ChunkBytes when a stream would need more.
package stream
