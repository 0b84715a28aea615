package bus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hearthfl/hearth/bus/pki"
)

// ErrLinkRevoked marks a live connection the hub closed because a newer
// revocation list revokes the certificate it was opened with.
var ErrLinkRevoked = errors.New("live link closed: certificate revoked")

// revoker closes the hub's live connections whose certificates a newly
// installed revocation list revokes. The TLS check refuses a revoked
// certificate only when a connection opens; without this, a participant
// revoked mid-job would keep its link (and keep receiving) until it
// reconnected.
type revoker struct {
	srv    *server.Server
	trust  *pki.Trust
	now    func() time.Time
	report func(Refusal)
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// watch runs until stop: at each newer list installed in the trust
// (pki.Trust.CRLChanged) it sweeps every leaf and client connection.
func (r *revoker) watch() {
	defer r.wg.Done()
	for {
		changed := r.trust.CRLChanged() // before the sweep: a list installed during it is not missed
		r.sweep()
		select {
		case <-changed:
		case <-r.done:
			return
		}
	}
}

// stop ends watch and waits for it; it may be called more than once.
func (r *revoker) stop() {
	r.once.Do(func() { close(r.done) })
	r.wg.Wait()
}

// sweep closes every leaf and TLS client connection whose peer certificate
// the trust now calls revoked. In-process connections (the server's own
// actors) carry no certificate and are left alone.
func (r *revoker) sweep() {
	type conn struct {
		id       uint64
		listener string
		state    *tls.ConnectionState
	}
	var conns []conn
	if lz, err := r.srv.Leafz(nil); err == nil {
		for _, l := range lz.Leafs {
			if c := r.srv.GetLeafNode(l.ID); c != nil {
				listener := "leaf"
				if l.Websocket {
					listener = "websocket"
				}
				conns = append(conns, conn{id: l.ID, listener: listener, state: c.GetTLSConnectionState()})
			}
		}
	}
	// Connz lists clients still in their TLS handshake too; only those
	// that show peer certificates have finished it, so reading their state
	// cannot wait on a handshake.
	const page = 1024
	for offset := 0; ; offset += page {
		cz, err := r.srv.Connz(&server.ConnzOptions{Username: true, Offset: offset, Limit: page})
		if err != nil {
			break
		}
		for _, ci := range cz.Conns {
			if len(ci.TLSPeerCerts) == 0 {
				continue
			}
			if c := r.srv.GetClient(ci.Cid); c != nil {
				conns = append(conns, conn{id: ci.Cid, listener: "client", state: c.GetTLSConnectionState()})
			}
		}
		if len(cz.Conns) < page {
			break
		}
	}
	now := r.now()
	for _, c := range conns {
		if c.state == nil || len(c.state.PeerCertificates) == 0 {
			continue
		}
		cert := c.state.PeerCertificates[0]
		_, err := r.trust.Verify(cert, now)
		if !errors.Is(err, pki.ErrRevoked) {
			continue
		}
		if derr := r.srv.DisconnectClientByID(c.id); derr != nil {
			continue // gone already
		}
		r.report(Refusal{Listener: c.listener, Peer: cert.Subject.CommonName,
			Err: fmt.Errorf("%w: %w", ErrLinkRevoked, err)})
	}
}
