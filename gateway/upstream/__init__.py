"""Talking to upstreams: the forwarder (request, first byte, fallback, relay) and the circuit
breakers. Protocol-agnostic: what differs per API comes from `gateway.apis`.

Imports settings, routing's decisions and the APIs; never the flow, observability or HTTP."""
