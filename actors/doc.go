// Package actors is the home of Hearth's actor roles, one package each:
// protocol (which cross-process messages exist and who may send them),
// liveness (answers pings), and, as the platform grows, coordinator,
// participant, aggregator and auditor. Actor code talks to other processes
// only through the bridge's PID (bus/bridge) and never sees NATS.
package actors
