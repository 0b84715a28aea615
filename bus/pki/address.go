package pki

// MayAddress reports whether a participant of kind from may send messages
// and streams to one of kind to. It is the table of who addresses whom:
//
//	from \ to    server  site  admin  aggregator
//	server       yes     yes   yes    yes
//	site         yes     yes*  -      yes*
//	admin        yes     -     -      -
//	aggregator   yes     yes*  -      -
//
// Admins command the server, which alone coordinates the sites; sites
// answer the server; aggregators report to it. An unknown kind addresses
// no one. (*) A site reaches another site only for swarm learning, where
// updates and models travel site to site, and an aggregation host (an
// attested aggregator) only for the jobs it aggregates, where the sites
// ask for its evidence and send it their updates sealed to the key the
// evidence binds: the table allows the link, and the receiving side admits
// only the messages of a job both are in (bus/bridge's Admit, fed by the
// participant), so a site is heard by another only while they learn
// together. The NATS permissions of every participant (bus.Permissions)
// and the receiving side (bus/bridge) both follow this table.
func MayAddress(from, to Kind) bool {
	switch from {
	case KindServer:
		return to.Valid()
	case KindSite:
		return to == KindServer || to == KindSite || to == KindAggregator
	case KindAggregator:
		return to == KindServer || to == KindSite
	case KindAdmin:
		return to == KindServer
	}
	return false
}

// HearsPeers reports whether a participant of kind k is addressed peer to
// peer (PeerToPeer) by some kind: sites (by sites and aggregation hosts)
// and aggregation hosts (by sites). It subscribes to its peer inbox.
func HearsPeers(k Kind) bool { return k == KindSite || k == KindAggregator }

// PeerToPeer reports whether a message from kind from to kind to passes
// between two participants neither of which is the server: such a message
// (site to site) is heard only when the recipient admits it.
func PeerToPeer(from, to Kind) bool { return from != KindServer && to != KindServer }
