// Package envelope signs and checks Hearth's envelopes: every message that
// crosses a process boundary travels as a hearth.v1.Envelope whose header and
// body bytes are signed with the sender's certificate key.
//
// A Signer turns an Outgoing message into envelope bytes. A Verifier opens
// envelope bytes and returns a Message only after every control has passed,
// in this order (cheap checks first; nothing is remembered before the
// signature verifies, so forgeries cannot poison the replay cache):
//
//  1. size (Config.MaxSize)
//  2. envelope and header parse; header fields present and well formed
//  3. recipient is this process (Config.Self)
//  4. sender certificate is the one the header names (SHA-256), parses, and
//     is trusted by Config.Trust (project root, validity, revocation)
//  5. certificate CN == header sender == the name the message arrived from
//  6. Ed25519 signature over the exact bytes received
//  7. message type known to Config.Registry, then allowed for the sender's
//     kind by Config.Allow
//  8. sent time within now ± Config.Window
//  9. message id not seen before (then remembered)
//  10. body decodes as the named type (plain bodies only)
//
// Every refusal is a *RefusedError wrapping one sentinel (ErrTooLarge,
// ErrMalformed, ...); Reason maps it to a short stable code for logs and
// metrics.
//
// The signature is Ed25519 over
//
//	"hearth.envelope.v1\x00" || uint32be(len(header)) || header || body
//
// where header and body are the bytes carried in the envelope; nothing is
// re-marshalled before verification, because protobuf encoding is not
// canonical.
//
// A sealed body (BODY_ENCODING_SEALED) is encrypted to the recipient's X25519
// key (see Seal), so that it can cross the hub unread. Open checks a sealed
// envelope like any other but returns its body undecoded; the owner of the
// recipient key decodes it with Verifier.DecodeSealed or Unseal.
package envelope
