package bus

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// internalUser is the NATS identity of a process's own actors on its
// embedded server. It is an nkey made fresh at every start that never leaves
// memory, and it may connect only in process, so no network peer can use it.
// (An nkey rather than a password: with certificate mapping on, password
// users would need a certificate too.)
type internalUser struct {
	kp  nkeys.KeyPair
	pub string
}

func newInternalUser() (*internalUser, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("internal user key: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return &internalUser{kp: kp, pub: pub}, nil
}

func (u *internalUser) user() *server.NkeyUser {
	return &server.NkeyUser{Nkey: u.pub, AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}}}
}

func (u *internalUser) option() nats.Option {
	return nats.Nkey(u.pub, u.kp.Sign)
}
