package stream

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// chunkKey is the NATS header that marks a chunk message and holds its
// index. The payload is the chunk's data alone, so a chunk of an in-memory
// stream goes out straight from the caller's slice.
const chunkKey = "Hearth-Chunk"

// Kinds of the other messages (their first byte; they have no header).
const (
	kindProbe         byte = 0x02 // sender -> recipient
	kindSenderAbort   byte = 0x03 // sender -> recipient: reason
	kindSplit         byte = 0x04 // sender -> cast recipient: your chunks come on your own subject now
	kindCredit        byte = 0x10 // recipient -> sender: ack, limit, seq
	kindReceiverAbort byte = 0x11 // recipient -> sender: reason
)

const (
	creditLen = 13  // kind, ack, limit, seq
	maxReason = 128 // bytes of an abort reason kept
)

// indexDigits is the width of a chunk's index in its header, zero-padded.
// A fixed width makes the header "NATS/1.0\r\nHearth-Chunk: dddddddd\r\n\r\n"
// 36 bytes long, so the data that follows it in the receiver's buffer
// starts 4-byte aligned and a model chunk can be read as float32s in
// place. It holds every index below MaxChunks.
const indexDigits = 8

// chunkMsg is the message carrying chunk index.
func chunkMsg(subject string, index int, data []byte) *nats.Msg {
	return &nats.Msg{Subject: subject, Header: nats.Header{chunkKey: {fmt.Sprintf("%0*d", indexDigits, index)}}, Data: data}
}

// isChunk reports whether msg is a chunk message.
func isChunk(msg *nats.Msg) bool { return msg.Header != nil && msg.Header[chunkKey] != nil }

// parseChunk returns a chunk message's index and data.
func parseChunk(msg *nats.Msg) (index int, data []byte, ok bool) {
	v := msg.Header[chunkKey]
	if len(v) != 1 || len(v[0]) > indexDigits {
		return 0, nil, false
	}
	i, err := strconv.Atoi(v[0])
	if err != nil || i < 0 {
		return 0, nil, false
	}
	return i, msg.Data, true
}

// credit is the recipient's flow-control state: chunks below ack are
// delivered, the sender may send chunks below limit, and a seq the sender
// has not applied yet asks it to rewind to ack.
type credit struct {
	ack, limit int
	seq        uint32
}

func (c credit) encode() []byte {
	b := make([]byte, creditLen)
	b[0] = kindCredit
	binary.BigEndian.PutUint32(b[1:5], uint32(c.ack))
	binary.BigEndian.PutUint32(b[5:9], uint32(c.limit))
	binary.BigEndian.PutUint32(b[9:13], c.seq)
	return b
}

func parseCredit(data []byte) (credit, bool) {
	if len(data) != creditLen || data[0] != kindCredit {
		return credit{}, false
	}
	return credit{
		ack:   int(binary.BigEndian.Uint32(data[1:5])),
		limit: int(binary.BigEndian.Uint32(data[5:9])),
		seq:   binary.BigEndian.Uint32(data[9:13]),
	}, true
}

// encodeAbort builds an abort message of the given kind.
func encodeAbort(kind byte, reason string) []byte {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	return append([]byte{kind}, reason...)
}

// parseAbort returns an abort message's reason, cut to maxReason bytes and
// made valid UTF-8 (it is the peer's text: print it with %q).
func parseAbort(data []byte) string {
	r := data[1:]
	if len(r) > maxReason {
		r = r[:maxReason]
	}
	return strings.ToValidUTF8(string(r), "?")
}
