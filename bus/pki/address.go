package pki

// MayAddress reports whether a participant of kind from may send messages
// and streams to one of kind to. It is the table of who addresses whom:
//
//	from \ to    server  site  admin  aggregator
//	server       yes     yes   yes    yes
//	site         yes     -     -      -
//	admin        yes     -     -      -
//	aggregator   yes     -     -      -
//
// Admins command the server, which alone reaches the sites; sites answer
// the server; aggregators report to it. An unknown kind addresses no one.
// The NATS permissions of every participant (bus.Permissions) and the
// receiving side (bus/bridge) both follow this table, so a compromised site
// can neither publish to another site nor be heard by one if its message
// somehow arrived.
func MayAddress(from, to Kind) bool {
	switch from {
	case KindServer:
		return to.Valid()
	case KindSite, KindAdmin, KindAggregator:
		return to == KindServer
	}
	return false
}
