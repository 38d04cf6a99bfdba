"""Whether routing keeps quality on live traffic: shadow judging (`shadow`).

Imports everything below the flow (settings, ledger, routing, APIs, forwarder); never the flow or
the HTTP layer. The offline learning code (train, distil, evaluate) is `gateway.learning`."""
