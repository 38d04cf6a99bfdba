"""Observability: Prometheus metrics (`metrics`), OpenTelemetry spans (`tracing`) and the line per
request (`logs`).

Imports settings, the ledger, routing and the APIs' types; never the flow or the HTTP layer."""
