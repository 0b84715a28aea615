// Package envelope signs and checks Hearth's envelopes: every message that
// crosses a process boundary travels as a hearth.v1.Envelope whose header and
// body bytes are signed with the sender's certificate key.
//
// A Signer turns an Outgoing message into envelope bytes. A Verifier opens
// envelope bytes and returns a Message only after every control has passed,
// in this order (cheap checks first; nothing is remembered before the
// signature verifies, so forgeries cannot poison the replay cache):
//
//  1. the subject's sender token is a participant name, and that sender is
//     within its rate (Config.Rate, Config.Burst; one token bucket per
//     sender, sound before the signature because NATS permissions let a
//     participant publish only under its own name)
//  2. size (Config.MaxSize)
//  3. envelope and header parse; header fields present and well formed
//  4. recipient is this process (Config.Self)
//  5. sender certificate is the one the header names (SHA-256), parses, and
//     is trusted by Config.Trust (project root, validity, revocation)
//  6. certificate CN == header sender == the name the message arrived from
//  7. Ed25519 signature over the exact bytes received
//  8. message type known to Config.Registry, then allowed for the sender's
//     kind by Config.Allow
//  9. sent time within [now-Config.Window, now+Config.FutureSkew], and for
//     an admin's command not before this process started (Config.Started)
//  10. message id not seen before from this sender (then remembered), within
//     the sender's own quota (Config.MaxRemembered; Config.MaxSenders senders
//     at most), so one sender's flood refuses only that sender
//  11. body decodes as the named type (plain bodies only)
//
// Addressable then checks that the sender's kind may address the
// receiving participant's kind (pki.MayAddress); the bridge applies it to
// every message it opens.
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
